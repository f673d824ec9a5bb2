"""What is read from the machine and the process while a script runs.

The resource sampler and per-thread CPU, machine capacity probes, the
source line that built a stage (``callsite``), run bounds, the steady
window, and the network request tracer, probe and summary. Imports only
:mod:`plumber.records`.
"""

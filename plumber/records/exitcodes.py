"""Exit codes of the ``plumber`` command, documented in the README.

``plumber profile`` passes the profiled script's own status through, so its
codes only apply when plumber itself could not run the script. ``plumber
gate`` has codes of its own (10-13) so a CI job can tell a slower pipeline
from a broken baseline or a crashing script.
"""

OK = 0
#: Bad input: missing script, unreadable/corrupt/incompatible profile, bad flags.
USAGE = 2
#: plumber itself failed (a bug): the traceback is printed, the profile kept. sysexits'
#: EX_SOFTWARE, outside the small codes scripts use for themselves (``os._exit(3)``).
INTERNAL = 70
#: gate: a pipeline's throughput fell below its calibrated baseline beyond the tolerance.
GATE_REGRESSION = 10
#: gate: an input-bound pipeline has a different bottleneck (stage or kind) than its baseline.
GATE_NEW_BOTTLENECK = 11
#: gate: the baseline is missing, corrupt, from a newer plumber, or not a baseline.
GATE_BAD_BASELINE = 12
#: gate: the script being gated failed (non-zero exit status), so nothing was compared.
GATE_SCRIPT_FAILED = 13
#: run --data-service: the tf.data service the script read from went away (its dispatcher
#: or its workers), which tf.data service itself would wait out for good. sysexits'
#: EX_UNAVAILABLE.
SERVICE_LOST = 69
#: The profiled script was interrupted with Ctrl-C (as Python itself reports).
INTERRUPTED = 130

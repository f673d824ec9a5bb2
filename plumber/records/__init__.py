"""The records every layer shares (the bottom layer; it imports no other).

The Profile (``profile``) and how a saved one is loaded and checked
(``load``), the Plan (``plan``, ``planchecks``, and where a setting can be
applied: ``appliable``), stage kinds and knob values (``kinds``), stage
identity, number wording (``units``), plumber's folders and version, exit
codes, the redaction of secrets, and atomic JSON/text files (``files``).
Framework-free: nothing here imports tensorflow, torch or numpy.
"""

"""Exit codes of the ``plumber`` command, documented in the README.

``plumber profile`` passes the profiled script's own status through, so its
codes only apply when plumber itself could not run the script.
"""

OK = 0
#: Bad input: missing script, unreadable/corrupt/incompatible profile, bad flags.
USAGE = 2
#: plumber itself failed (a bug): the traceback is printed, the profile kept.
INTERNAL = 3
#: The profiled script was interrupted with Ctrl-C (as Python itself reports).
INTERRUPTED = 130

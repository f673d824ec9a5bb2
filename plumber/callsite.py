"""Find the user's source line that made a call, skipping framework frames.

Stages are keyed by where the user wrote them, so the frame we want is the
first one on the stack that belongs to none of the framework packages (and
not to plumber itself).
"""

from __future__ import annotations

import os
import sys
from types import FrameType

from plumber.record import SourceLocation

_PLUMBER_DIR = os.path.dirname(os.path.abspath(__file__))
_FRAMEWORK_MARKERS = (
    f"{os.sep}tensorflow{os.sep}",
    f"{os.sep}keras{os.sep}",
    f"{os.sep}tf_keras{os.sep}",
    f"{os.sep}torch{os.sep}",
    f"{os.sep}torchvision{os.sep}",
    f"{os.sep}absl{os.sep}",
    f"{os.sep}contextlib.py",
    f"{os.sep}functools.py",
    f"{os.sep}runpy.py",
    f"{os.sep}threading.py",
    f"{os.sep}abc.py",
)


def _is_framework(filename: str) -> bool:
    if filename.startswith("<"):
        return not filename.startswith("<ipython-input") and filename != "<stdin>"
    if filename.startswith(_PLUMBER_DIR):
        return True
    return any(marker in filename for marker in _FRAMEWORK_MARKERS)


def user_callsite(skip: int = 1) -> SourceLocation | None:
    """The innermost frame outside the frameworks and plumber, or None."""
    frame: FrameType | None = sys._getframe(skip)
    while frame is not None:
        code = frame.f_code
        if not _is_framework(code.co_filename):
            return SourceLocation(
                file=os.path.abspath(code.co_filename)
                if not code.co_filename.startswith("<")
                else code.co_filename,
                line=frame.f_lineno,
                function=code.co_name,
            )
        frame = frame.f_back
    return None

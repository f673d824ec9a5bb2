"""Find the user's source line that made a call, skipping framework frames.

Stages are keyed by where the user wrote them, so the frame we want is the
first one on the stack that belongs to none of the framework packages (and
not to plumber itself). Framework frames are recognised by the folders the
imported framework packages live in, not by folder names, so a user's own
``benchmarks/torch/train.py`` is the user's.
"""

from __future__ import annotations

import os
import sys
from types import FrameType

from plumber.record import SourceLocation

_PLUMBER_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_STDLIB_DIR = os.path.dirname(os.__file__) + os.sep

#: Packages whose frames are never the user's: their folders are found from
#: the imported modules, so a user's own folder named ``torch`` is not one.
_FRAMEWORK_PACKAGES = ("tensorflow", "keras", "tf_keras", "torch", "torchvision", "absl")

#: Standard-library modules that sit between the user's call and the framework.
_STDLIB_FILES = ("contextlib.py", "functools.py", "runpy.py", "threading.py", "abc.py")


def _framework_dirs() -> tuple[str, ...]:
    dirs = []
    for name in _FRAMEWORK_PACKAGES:
        module = sys.modules.get(name)
        file = getattr(module, "__file__", None)
        if file:
            dirs.append(os.path.dirname(os.path.abspath(file)) + os.sep)
    return tuple(dirs)


def _is_framework(filename: str, framework_dirs: tuple[str, ...]) -> bool:
    if filename.startswith("<"):
        return not filename.startswith("<ipython-input") and filename != "<stdin>"
    if filename.startswith(_PLUMBER_DIR):
        return True
    if os.path.basename(filename) in _STDLIB_FILES and filename.startswith(_STDLIB_DIR):
        return True
    return filename.startswith(framework_dirs) if framework_dirs else False


def user_callsite(skip: int = 1) -> SourceLocation | None:
    """The innermost frame outside the frameworks and plumber, or None."""
    frame: FrameType | None = sys._getframe(skip)
    framework_dirs = _framework_dirs()
    while frame is not None:
        code = frame.f_code
        name = code.co_filename
        file = name if name.startswith("<") else os.path.abspath(name)
        if not _is_framework(file, framework_dirs):
            return SourceLocation(file=file, line=frame.f_lineno, function=code.co_name)
        frame = frame.f_back
    return None

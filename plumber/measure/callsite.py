"""Find the user's source line that made a call, skipping framework frames.

Stages are keyed by where the user wrote them, so the frame we want is the
first one on the stack that belongs to none of the framework packages (and
not to plumber itself). Framework frames are recognised by the folders the
imported framework packages live in, not by folder names, so a user's own
``benchmarks/torch/train.py`` is the user's; any other installed package
(site-packages) is a library, never the user's code either.

When the user's line called a library function that built the stage
(Keras's ``image_dataset_from_directory`` calling ``Dataset.map``), the
location records that function in ``built_by``: the stage's knobs are that
function's business, not arguments at the user's line.
"""

from __future__ import annotations

import os
import site
import sys
import sysconfig
from types import FrameType

from plumber.records.profile import SourceLocation

#: The plumber package's folder (this module sits in its ``measure`` layer):
#: frames there are plumber's, never the user's.
_PLUMBER_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_STDLIB_DIR = os.path.dirname(os.__file__) + os.sep

#: Packages whose frames are never the user's: their folders are found from
#: the imported modules, so a user's own folder named ``torch`` is not one.
_FRAMEWORK_PACKAGES = ("tensorflow", "keras", "tf_keras", "torch", "torchvision", "absl")

#: Standard-library modules that sit between the user's call and the framework.
_STDLIB_FILES = ("contextlib.py", "functools.py", "runpy.py", "threading.py", "abc.py")

#: Modules whose functions build a stage directly: a call into them from the
#: user's line is the stage call itself (``dataset.map``, ``DataLoader``), so
#: its knobs are arguments at that line.
_STAGE_API_MODULES = ("tensorflow.python.data.ops.", "torch.utils.data.")

#: Modules of decorators and dispatchers that wrap a framework's functions:
#: skipped when naming the function the user's line called.
_WRAPPER_MODULES = ("tensorflow.python.util.",)


def _installed_dirs() -> tuple[str, ...]:
    """The folders installed packages live in (site-packages), where no user code is."""
    paths = sysconfig.get_paths()
    dirs = {paths.get("purelib"), paths.get("platlib"), *site.getsitepackages()}
    if site.ENABLE_USER_SITE:
        dirs.add(site.getusersitepackages())
    return tuple(os.path.abspath(d) + os.sep for d in dirs if d)


def _framework_dirs() -> tuple[str, ...]:
    dirs = list(_installed_dirs())
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
    """The innermost frame outside the frameworks and plumber, or None.

    ``built_by`` names the library function that frame called, when that is
    not a framework's own stage call.
    """
    frame: FrameType | None = sys._getframe(skip)
    framework_dirs = _framework_dirs()
    called = ""
    while frame is not None:
        code = frame.f_code
        name = code.co_filename
        file = name if name.startswith("<") else os.path.abspath(name)
        if not _is_framework(file, framework_dirs):
            return SourceLocation(file=file, line=frame.f_lineno, function=code.co_name,
                                  built_by=_library_builder(called))
        called = _library_function(frame, file) or called
        frame = frame.f_back
    return None


def _library_function(frame: FrameType, file: str) -> str:
    """``module.qualname`` of a library frame; empty for plumber, glue and wrapper frames."""
    if file.startswith(_PLUMBER_DIR) or file.startswith("<"):
        return ""
    if os.path.basename(file) in _STDLIB_FILES and file.startswith(_STDLIB_DIR):
        return ""
    module = frame.f_globals.get("__name__", "")
    if not module or module.startswith(_WRAPPER_MODULES):
        return ""
    code = frame.f_code
    return f"{module}.{getattr(code, 'co_qualname', code.co_name)}"


def _library_builder(called: str) -> str:
    """The function the user's line called, unless it is a framework's stage call."""
    return "" if called.startswith(_STAGE_API_MODULES) else called

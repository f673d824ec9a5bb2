"""Python hotspots per stage: py-spy's sampled stacks attributed to stages and folded.

A profile taken with ``--hotspots`` holds the raw stacks
(:class:`~plumber.records.profile.PythonSamples`). Each is given to the
stage whose code it was in, by process and by frames:

- a DataLoader worker's sample (its pid is one of the pipeline's workers)
  belongs to the stage plumber's timing wrapper around it names: the
  fetch (``_timed_fetch``: the dataset's ``__getitem__``), a transform
  (``TimedTransform.__call__``, told apart by the class or function name of
  the code it calls, which is the stage's ``op``) or the collate function
  (``_timed_collate``); a worker outside all three is the pool waiting for
  work, but for its imports (a spawned worker's start-up). The same wrappers
  run in the main process when ``num_workers`` is 0.
  A sample in plumber's own code there (its timing around the stage) is
  plumber's, not the stage's, and is not attributed. It stands for waiting
  for a core more than for the wrapper's work (about 2 us a call against a
  transform's milliseconds): in torchvision's reference loader on 2 cores
  py-spy found 55% of the transform's samples in it with 16 workers, 10%
  with 2 (one run each);
- a sample inside a Python function a tf.data stage calls (the body of its
  ``py_function``, ``numpy_function`` or ``from_generator``; the profile
  lists them with their line ranges) belongs to that stage; a body AutoGraph
  converted (defined inside the function given to ``map``) ran generated
  code, whose frames are named by the user's lines it was made from;
- the main thread's other samples are the training loop (the consumer), but
  for its imports (start-up) and plumber's check of whether a DataLoader's
  transforms are random (it applies them again); inside a library
  iterator's ``__next__`` it waits for data, and those samples are idle;
- anything else (plumber's and the frameworks' own threads, other child
  processes) is counted as not attributed.

Within a stage the frames are folded: library frames (the standard library,
installed packages, plumber) under the user's frame that called them become
one node named by the library and its entry function (and, where the call
went on into another library, that one's entry too), so a stage's hottest
function is the user's own line, with the library call it spent the time in.
A sample is *idle* when its innermost frame is a known waiting call of the
standard library (a lock, condition, queue, select or socket wait); a C call
that blocks outside them (``time.sleep`` called directly) reads as running,
since py-spy's raw output does not carry its own idle flag.

Pure: records in, results out.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from plumber.records.kinds import POOL
from plumber.records.profile import Pipeline, Profile, PyFrame, PythonSamples, StageCode

#: The stage of the training loop's samples (the script's main thread outside the loaders).
CONSUMER = "consumer"

#: plumber's wrappers around a DataLoader's stages (``plumber/torch/workerside.py``),
#: by the function name py-spy reads: a sample inside one is in that stage.
FETCH_WRAPPER, TRANSFORM_WRAPPER, COLLATE_WRAPPER = (
    "_timed_fetch", "TimedTransform.__call__", "_timed_collate",
)
_WRAPPER_FILE = os.path.join("plumber", "torch", "workerside.py")
#: The files of plumber's measuring inside those wrappers (their timing, the outputs' sizes).
_MEASURING_FILES = (_WRAPPER_FILE, os.path.join("plumber", "torch", "sizes.py"))

#: plumber's check of a DataLoader's randomness (``plumber/torch/randomness.py``), which
#: runs the user's fetch and transforms in the main thread when the loader is iterated.
RANDOMNESS_CHECK = "decide_randomness"
_RANDOMNESS_FILE = os.path.join("plumber", "torch", "randomness.py")

#: Where a worker process begins its work, forked or spawned (multiprocessing's frame).
BOOTSTRAP = "BaseProcess._bootstrap"

#: Standard-library calls that wait (by module and function name): a sample
#: whose innermost frame is one of them is idle.
WAITING_CALLS = {
    "threading": {"wait", "join", "acquire", "_wait_for_tstate_lock"},
    "queue": {"get", "put"},
    "selectors": {"select"},
    "multiprocessing": {"wait", "poll", "_poll", "recv", "_recv", "recv_bytes", "_recv_bytes",
                        "accept", "get", "join"},
    "socket": {"accept", "recv", "recv_into", "readinto"},
    "ssl": {"read", "recv", "recv_into", "do_handshake"},  # an HTTPS read (S3, GCS)
    "subprocess": {"wait", "_wait", "_try_wait", "communicate"},
    "concurrent": {"wait", "result"},
    "asyncio": {"select", "run_forever", "_run_once"},
}

#: Joins a folded library call's entry to the library it went on into (see :func:`fold`).
CALLS_INTO = " → "

#: Fewer samples than this in a stage make its shares rough (one share of a
#: half from 20 samples is off by about 11 points, one standard deviation).
FEW_SAMPLES = 20

#: How many functions per stage and folded stacks per stage a result keeps.
TOP_FUNCTIONS = 10
TOP_FOLDED = 200


@dataclass(frozen=True)
class HotFunction:
    """One user function of a stage: where it is, and its samples.

    ``self_samples`` are the samples where it was the innermost user frame
    (the library calls it made included); ``total_samples`` those where it
    was anywhere on the stack; ``idle_samples`` the self samples that were
    waiting. ``line`` and ``library`` say where most of its computing self
    samples were: that line, and the library call made from it (empty when
    its own code ran); for a function that only waited, where most of its
    waiting ones were. A line that waited does not stand for one that
    computed.
    """

    function: str
    file: str
    line: int
    self_samples: int
    total_samples: int
    idle_samples: int = 0
    library: str = ""

    @property
    def computing_samples(self) -> int:
        return self.self_samples - self.idle_samples


@dataclass(frozen=True)
class FoldedStack:
    """One folded stack of a stage: user frames and library calls, outermost first."""

    labels: tuple[str, ...]
    samples: int
    idle_samples: int = 0


@dataclass(frozen=True)
class LibraryCall:
    """Library code a stage ran with no frame of the user's on the stack: a folded node
    (a torchvision dataset's ``__getitem__`` decoding with PIL, say) and its samples."""

    call: str
    samples: int
    idle_samples: int = 0

    @property
    def computing_samples(self) -> int:
        return self.samples - self.idle_samples


@dataclass(frozen=True)
class StageHotspots:
    """The sampled Python time of one stage: its top functions and folded stacks.

    ``pipeline`` is the pipeline's id, empty for the training loop
    (:data:`CONSUMER`), whose samples belong to the script as a whole.
    ``seconds`` is thread time (samples over the sampling rate).
    """

    pipeline: str
    stage: str
    samples: int
    idle_samples: int
    seconds: float
    functions: tuple[HotFunction, ...] = ()
    folded: tuple[FoldedStack, ...] = ()
    library_calls: tuple[LibraryCall, ...] = ()

    @property
    def hottest(self) -> HotFunction | None:
        """The user function with the most computing self samples, if it computed at all."""
        best = max(self.functions, key=lambda f: f.computing_samples, default=None)
        return best if best is not None and best.computing_samples > 0 else None

    @property
    def hottest_call(self) -> LibraryCall | None:
        """The library call, outside any user function, with the most computing samples."""
        best = max(self.library_calls, key=lambda c: c.computing_samples, default=None)
        return best if best is not None and best.computing_samples > 0 else None

    @property
    def library_leads(self) -> bool:
        """Whether a library call outside the user's functions (a library dataset decoding
        images) computed more than any user function: it is then what the stage spent on."""
        call, function = self.hottest_call, self.hottest
        return call is not None and (function is None
                                     or call.computing_samples > function.computing_samples)

    @property
    def few_samples(self) -> bool:
        """Whether the stage was sampled too rarely for its shares to be more than rough."""
        return self.samples < FEW_SAMPLES

    def share(self, samples: int) -> float:
        """``samples`` as a share of this stage's samples."""
        return samples / self.samples if self.samples else 0.0


@dataclass(frozen=True)
class Hotspots:
    """Every stage's hotspots, the samples no stage could be given, and py-spy's own CPU.

    ``samples`` are those the profile kept; ``dropped_samples`` those of its
    rarest stacks, left out to bound its size (the shares are of the kept).
    """

    stages: tuple[StageHotspots, ...]
    samples: int
    unattributed_samples: int
    rate_hz: float
    sampler_cpu_s: float | None = None
    dropped_samples: int = 0

    def stage(self, pipeline: str, stage: str) -> StageHotspots | None:
        for found in self.stages:
            if found.pipeline == pipeline and found.stage == stage:
                return found
        return None


def hotspots(profile: Profile) -> Hotspots | None:
    """The profile's sampled stacks attributed to stages; None when it has none."""
    sampled = profile.hotspots
    if sampled is None:
        return None
    libraries = Libraries(sampled.library_roots)
    owners = _WorkerOwners(profile.pipelines)
    users_lines = _users_lines(sampled.stage_code)
    stage_stacks: dict[tuple[str, str], list[tuple[list[PyFrame], int]]] = defaultdict(list)
    unattributed = 0
    for stack in sampled.stacks:
        frames = [sampled.frames[i] for i in stack.frames]
        attributed = _attribute(sampled, owners, stack.pid, stack.tid, frames, libraries)
        if attributed is None:
            unattributed += stack.samples
            continue
        key, own_frames = attributed
        own_frames = [users_lines.get((f.file, f.line), f) for f in own_frames]
        stage_stacks[key].append((own_frames, stack.samples))
    stages = tuple(
        _stage_hotspots(pipeline, stage, stacks, libraries, sampled.rate_hz)
        for (pipeline, stage), stacks in sorted(stage_stacks.items())
    )
    return Hotspots(stages=stages, samples=sum(s.samples for s in sampled.stacks),
                    unattributed_samples=unattributed, rate_hz=sampled.rate_hz,
                    sampler_cpu_s=sampled.sampler_cpu_s, dropped_samples=sampled.dropped_samples)


class Libraries:
    """Which files are library code, and the library a file belongs to."""

    def __init__(self, roots: Sequence[str]) -> None:
        # The deepest root first: site-packages lies inside the standard library's folder.
        self.roots = sorted((r.rstrip(os.sep) + os.sep for r in roots if r), key=len,
                            reverse=True)

    def library_of(self, file: str) -> str | None:
        """``PIL`` for ``.../site-packages/PIL/Image.py``, ``plumber`` for the console script
        ``.../bin/plumber``; None for the user's own file."""
        if file.startswith("<frozen "):
            return file.strip("<>").split()[-1].split(".")[0]
        if file.startswith("<") and file != "<stdin>":  # code made by exec (dataclasses)
            return file
        for root in self.roots:
            if file.startswith(root):
                rest = file[len(root):]
                if os.sep not in rest and not rest.endswith(".py"):  # a console script
                    return rest
                name = os.path.basename(root.rstrip(os.sep))
                if name.isidentifier():  # a package's own folder (plumber's)
                    return name
                return rest.split(os.sep, 1)[0].removesuffix(".py")
        if f"{os.sep}site-packages{os.sep}" in file or f"{os.sep}dist-packages{os.sep}" in file:
            tail = file.split("-packages" + os.sep, 1)[1]
            return tail.split(os.sep, 1)[0].removesuffix(".py")
        return None


class _WorkerOwners:
    """The pipeline each DataLoader worker pid belongs to, and the in-process loaders."""

    def __init__(self, pipelines: Sequence[Pipeline]) -> None:
        self.by_pid = {w.pid: p for p in pipelines for w in p.workers if w.pid}
        self.in_process = [p for p in pipelines if p.workers == () and p.is_loader]


def _attribute(
    sampled: PythonSamples, owners: _WorkerOwners, pid: int, tid: int,
    frames: list[PyFrame], libraries: Libraries,
) -> tuple[tuple[str, str], list[PyFrame]] | None:
    """The (pipeline, stage) a sample belongs to and the frames of it that are the stage's."""
    if not frames:  # a thread in native code with no Python frame: nothing to name
        return None
    marker = _deepest_wrapper(frames)
    if pid != sampled.pid:
        pipeline = owners.by_pid.get(pid)
        if pipeline is None or tid != pid:  # a worker's own threads feed its queues
            return None
        if marker is None:
            if _starting(frames):
                return None
            return (pipeline.id, POOL), _after_fork(frames)
        return _wrapped(pipeline, frames, marker)
    if marker is not None:
        pipeline = _in_process_pipeline(owners, frames, marker)
        if pipeline is not None:
            return _wrapped(pipeline, frames, marker)
    called = _stage_code_at(sampled.stage_code, frames)
    if called is not None:
        index, code = called
        return (code.pipeline, code.stage), frames[index:]
    if tid == pid and not _importing(frames) and not _checking(frames):
        return ("", CONSUMER), _from_user_code(frames, libraries)
    return None


def _users_lines(codes: Sequence[StageCode]) -> dict[tuple[str, int], PyFrame]:
    """(generated file, line) -> the user's frame, for stage code AutoGraph generated."""
    return {(code.file, line.line): PyFrame(line.function or code.function, line.file,
                                            line.original_line)
            for code in codes for line in code.generated_from}


def _stage_code_at(
    codes: Sequence[StageCode], frames: Sequence[PyFrame]
) -> tuple[int, StageCode] | None:
    """The innermost frame inside a Python function a tf.data stage calls, and that function."""
    for index in range(len(frames) - 1, -1, -1):
        frame = frames[index]
        for code in codes:
            if frame.file == code.file and code.first_line <= frame.line <= code.last_line:
                return index, code
    return None


def _importing(frames: Sequence[PyFrame]) -> bool:
    """Whether the thread was importing a module (start-up, not the loop or the workers' work)."""
    return any(f.function == "_find_and_load" and f.file.startswith("<frozen ") for f in frames)


def _checking(frames: Sequence[PyFrame]) -> bool:
    """Whether the main thread was in plumber's check that applies the user's transforms again
    to see whether they are random: plumber's work, not the training loop's."""
    return any(f.function == RANDOMNESS_CHECK and f.file.endswith(_RANDOMNESS_FILE)
               for f in frames)


def _starting(frames: Sequence[PyFrame]) -> bool:
    """Whether a worker was still starting: importing modules, or (spawned) running the
    script's top level again before its process began its work (``BaseProcess._bootstrap``)."""
    return _importing(frames) or not any(f.function == BOOTSTRAP for f in frames)


def _waiting_for_data(frames: Sequence[PyFrame], libraries: Libraries) -> bool:
    """Whether the training loop was inside a library iterator's ``__next__`` (waiting for data)."""
    return any(f.function.rsplit(".", 1)[-1] == "__next__"
               and libraries.library_of(f.file) is not None for f in frames)


def _deepest_wrapper(frames: Sequence[PyFrame]) -> int | None:
    """The index of the innermost frame that is one of plumber's stage wrappers."""
    for index in range(len(frames) - 1, -1, -1):
        frame = frames[index]
        if frame.function in (FETCH_WRAPPER, TRANSFORM_WRAPPER, COLLATE_WRAPPER) and \
                frame.file.endswith(_WRAPPER_FILE):
            return index
    return None


def _wrapped(
    pipeline: Pipeline, frames: list[PyFrame], marker: int
) -> tuple[tuple[str, str], list[PyFrame]] | None:
    """The stage a sample inside plumber's wrapper ran, or None when it was in plumber's own
    measuring there (the timing and sizing around the stage's code, not that code)."""
    inner = frames[marker + 1:]
    if all(f.file.endswith(_MEASURING_FILES) for f in inner):
        return None
    function = frames[marker].function
    if function == FETCH_WRAPPER:
        return (pipeline.id, "fetch"), inner
    if function == COLLATE_WRAPPER:
        return (pipeline.id, "collate"), inner
    stage = _transform_stage(pipeline, inner)
    return (pipeline.id, stage or POOL), inner


def _transform_stage(pipeline: Pipeline, inner: Sequence[PyFrame]) -> str | None:
    """The transform stage whose op (class or function name) the wrapper's callee is.

    The first frame below the wrapper naming one of the transforms' ops decides
    (two transforms of one class are the first of them); with a single
    transform it is that one. None when no frame names one.
    """
    transforms = [s for s in pipeline.stages if s.id.startswith("transform_")]
    ops = {}
    for stage in transforms:
        ops.setdefault(stage.op, stage.id)
    for frame in inner:
        parts = frame.function.split(".")
        for name in (parts[0], parts[-1]):
            if name in ops:
                return ops[name]
    return transforms[0].id if len(transforms) == 1 else None


def _in_process_pipeline(
    owners: _WorkerOwners, frames: list[PyFrame], marker: int
) -> Pipeline | None:
    """The loader without workers whose chain a main-process sample ran (the first such)."""
    candidates = owners.in_process
    if frames[marker].function == TRANSFORM_WRAPPER:
        named = [p for p in candidates if _transform_stage(p, frames[marker + 1:]) is not None]
        candidates = named or candidates
    return candidates[0] if candidates else None


def _after_fork(frames: list[PyFrame]) -> list[PyFrame]:
    """A worker's frames below its process's start (those above are its parent's, at the fork)."""
    for index in range(len(frames) - 1, -1, -1):
        if frames[index].function == BOOTSTRAP:
            return frames[index + 1:]
    return frames


def _from_user_code(frames: list[PyFrame], libraries: Libraries) -> list[PyFrame]:
    """The frames from the first user frame on (plumber's runner and the runpy frames dropped)."""
    for index, frame in enumerate(frames):
        if libraries.library_of(frame.file) is None:
            return frames[index:]
    return frames


def fold(frames: Sequence[PyFrame], libraries: Libraries) -> list[tuple[PyFrame | None, str]]:
    """The user frames of a stack, each library run below one folded into a node.

    Returns (user frame, "") for a user frame and (None, "PIL Image.resize")
    for the library call a user frame (or the stage's entry) made, naming the
    library and the first function called in it; where that call went on
    into another library, the node names the innermost one too, where the
    time went: "torch _MapDatasetFetcher.fetch → PIL Image.convert".
    """
    folded: list[tuple[PyFrame | None, str]] = []
    run: list[tuple[str, PyFrame]] = []
    for frame in frames:
        library = libraries.library_of(frame.file)
        if library is not None:
            run.append((library, frame))
            continue
        if run:
            folded.append((None, _library_call(run)))
            run = []
        folded.append((frame, ""))
    if run:
        folded.append((None, _library_call(run)))
    return folded


def _library_call(run: Sequence[tuple[str, PyFrame]]) -> str:
    """A run of library frames as one node: its entry, and the innermost library's entry."""
    entry_library, entry = run[0]
    inner = len(run) - 1
    while inner > 0 and run[inner - 1][0] == run[-1][0]:
        inner -= 1
    call = f"{entry_library} {entry.function}"
    if inner == 0:
        return call
    library, frame = run[inner]
    return f"{call}{CALLS_INTO}{library} {frame.function}"


def innermost_call(node: str) -> tuple[str, str]:
    """The library and function a folded library node spent its time in.

    ``("PIL", "Image.convert")`` for "torch _MapDatasetFetcher.fetch → PIL Image.convert".
    """
    library, _, function = node.rpartition(CALLS_INTO)[2].partition(" ")
    return library, function


def is_waiting(frame: PyFrame, libraries: Libraries) -> bool:
    """Whether a sample whose innermost frame is ``frame`` was waiting (see the module doc)."""
    library = libraries.library_of(frame.file)
    if library is None:
        return False
    names = WAITING_CALLS.get(library)
    return names is not None and frame.function.rsplit(".", 1)[-1] in names


def label(frame: PyFrame) -> str:
    """``slow_resize (transforms.py:12)``: a user frame as a folded stack shows it."""
    return f"{frame.function} ({os.path.basename(frame.file)}:{frame.line})"


def _stage_hotspots(
    pipeline: str, stage: str, stacks: list[tuple[list[PyFrame], int]],
    libraries: Libraries, rate_hz: float,
) -> StageHotspots:
    self_count: Counter[tuple[str, str]] = Counter()
    total_count: Counter[tuple[str, str]] = Counter()
    idle_count: Counter[tuple[str, str]] = Counter()
    # (line, library call) of each function's self samples, computing and waiting apart
    computing_at: dict[tuple[str, str], Counter[tuple[int, str]]] = defaultdict(Counter)
    waiting_at: dict[tuple[str, str], Counter[tuple[int, str]]] = defaultdict(Counter)
    calls: Counter[str] = Counter()
    calls_idle: Counter[str] = Counter()
    folded: Counter[tuple[str, ...]] = Counter()
    folded_idle: Counter[tuple[str, ...]] = Counter()
    samples = idle = 0
    for frames, count in stacks:
        waiting = bool(frames) and (is_waiting(frames[-1], libraries) or (
            stage == CONSUMER and _waiting_for_data(frames, libraries)))
        samples += count
        idle += count if waiting else 0
        nodes = fold(frames, libraries)
        labels = tuple(label(f) if f is not None else text for f, text in nodes)
        folded[labels] += count
        folded_idle[labels] += count if waiting else 0
        users = [(i, f) for i, (f, _) in enumerate(nodes) if f is not None]
        for key in {(f.function, f.file) for _, f in users}:
            total_count[key] += count
        if not users:
            if nodes:  # library code only, folded into one node
                call = nodes[0][1]
                calls[call] += count
                calls_idle[call] += count if waiting else 0
            continue
        position, leaf = users[-1]
        key = (leaf.function, leaf.file)
        self_count[key] += count
        idle_count[key] += count if waiting else 0
        below = nodes[position + 1:]
        where = (leaf.line, below[0][1] if below else "")
        (waiting_at if waiting else computing_at)[key][where] += count
    functions = []
    for key, count in _computing_first(self_count, idle_count):
        line, library = (computing_at[key] or waiting_at[key]).most_common(1)[0][0]
        functions.append(HotFunction(
            function=key[0], file=key[1], line=line, self_samples=count,
            total_samples=total_count[key], idle_samples=idle_count[key], library=library,
        ))
    return StageHotspots(
        pipeline=pipeline, stage=stage, samples=samples, idle_samples=idle,
        seconds=samples / rate_hz if rate_hz > 0 else 0.0, functions=tuple(functions),
        folded=tuple(FoldedStack(labels, count, folded_idle[labels])
                     for labels, count in folded.most_common(TOP_FOLDED)),
        library_calls=tuple(LibraryCall(call, count, calls_idle[call])
                            for call, count in _computing_first(calls, calls_idle)),
    )


def _computing_first(counts: Counter[Any], idle: Counter[Any]) -> list[tuple[Any, int]]:
    """The :data:`TOP_FUNCTIONS` keys of ``counts`` that computed most (most samples on ties)."""
    ranked = sorted(counts.items(), key=lambda kv: (-(kv[1] - idle[kv[0]]), -kv[1]))
    return ranked[:TOP_FUNCTIONS]

"""Which transforms plumber can show to be deterministic, from what they are.

A sample cache placed after a transform serves that transform's output in
every epoch, so it may go after a transform only when the transform gives
the same output for the same input every time. This module classifies a
transform without running it, into one of three verdicts:

- ``RANDOM``: there is evidence that it draws random numbers (a torchvision
  random transform, a class named ``Random*`` or known to be random, a
  ``random = True`` attribute, torchvision's ``get_params``/``make_params``
  sampling, a random number generator it holds, or a random-looking name in
  the code it runs), or it holds such a transform anywhere inside it
  (``Compose`` v1 or v2, lists, ``Lambda``, ``functools.partial``, a class's
  attributes, a function's globals, closure and defaults). A callable with
  no Python code to read, and a nesting too deep to follow, are ``RANDOM``
  too: unknown means random.
- ``DETERMINISTIC``: a torchvision transform known to compute its output
  from its input alone (``ToTensor``, ``Normalize``, ``Resize``, ...), or a
  container of only such.
- ``UNPROVEN``: Python code (a user's function, lambda or class) in which
  plumber found no sign of randomness. Names alone cannot show code
  deterministic (a call through an object may draw random numbers under any
  name), so the rule is: such a transform counts as deterministic only when
  the repeat check (:mod:`plumber.torch.repeatability`) also finds equal
  outputs.

:mod:`plumber.torch.randomness` combines the two checks. Pure: no torch import.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from plumber.torch.transforms import transform_op, unwrap

RANDOM, DETERMINISTIC, UNPROVEN = "random", "deterministic", "unproven"

#: torchvision transforms (v1 and v2) whose output depends on their input alone.
DETERMINISTIC_TORCHVISION = frozenset({
    "CenterCrop", "ClampBoundingBoxes", "ClampKeyPoints", "ConvertBoundingBoxFormat",
    "ConvertImageDtype", "FiveCrop", "Grayscale", "Identity", "LinearTransformation",
    "Normalize", "PILToTensor", "Pad", "RGB", "Resize", "SanitizeBoundingBoxes",
    "SanitizeKeyPoints", "SetClampingMode", "TenCrop", "ToDtype", "ToImage", "ToPILImage",
    "ToPureTensor", "ToTensor", "UniformTemporalSubsample",
})

#: Transform classes that draw random numbers without ``Random`` in their name.
RANDOM_CLASSES = frozenset({
    "AugMix", "AutoAugment", "ColorJitter", "CutMix", "ElasticTransform", "GaussianNoise",
    "JPEG", "MixUp", "RReLU", "RandAugment", "ScaleJitter", "TrivialAugmentWide",
})

#: Names in code that draw random numbers (besides any name starting with ``rand``).
RANDOM_NAMES = frozenset({
    "Dropout", "Generator", "RandomState", "SystemRandom", "bernoulli", "bernoulli_",
    "binomial", "cauchy_", "choice", "choices", "default_rng", "dropout", "exponential_",
    "gauss", "geometric_", "get_params", "getrandbits", "integers", "log_normal_",
    "manual_seed", "multinomial", "normal", "normal_", "permutation", "poisson", "sample",
    "secrets", "seed", "shuffle", "token_bytes", "token_hex", "uniform", "uniform_",
    "urandom", "uuid1", "uuid4",
})

#: Types of random number generators (Python's, numpy's, torch's).
GENERATOR_TYPES = frozenset({"Generator", "Random", "RandomState", "SystemRandom"})

#: Modules whose use draws random numbers.
RANDOM_MODULES = frozenset({"numpy.random", "random", "secrets", "torch.random"})

#: Methods through which a transform object does its work.
CALL_METHODS = ("__call__", "forward", "transform", "_transform")

#: How deep transforms nested in transforms are followed before giving up (random).
MAX_DEPTH = 8

#: How deep functions called by a transform's code are searched for randomness.
MAX_HELPER_DEPTH = 2

#: Attribute values of one object looked at (a bound on the cost).
MAX_ATTRIBUTES = 64


@dataclass(frozen=True)
class Verdict:
    """What plumber can say about a transform without running it, and why.

    ``evident`` is true when the verdict is the transform's torchvision class
    itself (nothing to explain in a report).
    """

    kind: str
    why: str
    evident: bool = False


def classify(transform: Any) -> Verdict:
    """The static verdict on one transform (never raises)."""
    try:
        return _Classifier().verdict(transform, 0)
    except Exception as exc:  # noqa: BLE001 - user objects may raise anything
        return Verdict(RANDOM, f"inspecting it raised {type(exc).__name__}")


def is_random(transform: Any) -> bool:
    """Whether a transform is known to be random from what it is (no cache may follow it)."""
    return classify(transform).kind == RANDOM


def describe_transforms(callables: Sequence[Any]) -> tuple[tuple[str, bool], ...]:
    """(op, random by its static verdict) of each callable, in order."""
    return tuple((transform_op(t), is_random(t)) for t in callables)


class _Classifier:
    """One classification: remembers what it has seen, so shared and cyclic objects end."""

    def __init__(self) -> None:
        self._seen: dict[int, Verdict] = {}

    def verdict(self, obj: Any, depth: int) -> Verdict:
        obj = unwrap(obj)
        known = self._seen.get(id(obj))
        if known is not None:
            return known
        if depth > MAX_DEPTH:
            return Verdict(RANDOM, "transforms nested too deeply for plumber to inspect")
        self._seen[id(obj)] = Verdict(UNPROVEN, "inspected above")
        result = self._verdict(obj, depth)
        self._seen[id(obj)] = result
        return result

    def _verdict(self, obj: Any, depth: int) -> Verdict:
        name = _name(obj)
        if _safe_getattr(obj, "random") is True:
            return Verdict(RANDOM, f"{name}: says so (random = True)")
        if isinstance(obj, functools.partial):
            parts = [obj.func, *obj.args, *obj.keywords.values()]
            return self._all(name, [p for p in parts if _transform_like(p)], depth)
        if isinstance(obj, (list, tuple)):
            return self._all("the list", [p for p in obj if _transform_like(p)], depth)
        if isinstance(obj, types.MethodType):
            owner = obj.__self__
            if _is_generator(owner):
                return Verdict(RANDOM, f"{name}: a method of a random number generator")
            return self._code(obj.__func__, depth, owner=owner)
        if isinstance(obj, types.FunctionType):
            return self._code(obj, depth)
        if isinstance(obj, types.BuiltinFunctionType):
            return _compiled(obj, name)
        if isinstance(obj, type):
            return self._class(obj, depth)
        return self._instance(obj, depth)

    def _all(self, what: str, parts: list[Any], depth: int) -> Verdict:
        """RANDOM if any part is, else UNPROVEN if any part is, else DETERMINISTIC."""
        verdicts = [self.verdict(p, depth + 1) for p in parts]
        for verdict in verdicts:
            if verdict.kind == RANDOM:
                return Verdict(RANDOM, f"{what} > {verdict.why}")
        unproven = [v for v in verdicts if v.kind == UNPROVEN]
        if unproven:
            return Verdict(UNPROVEN, unproven[0].why)
        return Verdict(DETERMINISTIC, f"{what} holds only deterministic torchvision transforms",
                       evident=all(v.evident for v in verdicts))

    def _instance(self, obj: Any, depth: int) -> Verdict:
        cls = type(obj)
        name = cls.__name__
        if _is_generator(obj):
            return Verdict(RANDOM, f"{name}: a random number generator")
        if _in_torchvision(cls):
            return self._torchvision(obj, name, depth)
        random_class = _random_class(cls)
        if random_class is not None:
            return Verdict(RANDOM, random_class)
        if cls.__module__.startswith("torch.nn.modules.container"):
            return self._all(name, list(_attribute_values(obj)), depth)
        if cls.__module__.startswith("torch.nn.modules."):
            return Verdict(UNPROVEN, f"{name} is a torch.nn layer that draws no random numbers")
        methods = _call_path(cls)
        if not methods and not _derives_from_deterministic_torchvision(cls):
            return Verdict(RANDOM, f"{name}: no Python code plumber can read")
        for method in methods:
            verdict = self._code(method, depth, owner=obj)
            if verdict.kind == RANDOM:
                return verdict
        for value in _attribute_values(obj):
            if _is_generator(value):
                return Verdict(RANDOM, f"{name} > {type(value).__name__}: a random number "
                                       f"generator")
            verdict = self.verdict(value, depth + 1)
            if verdict.kind == RANDOM:
                return Verdict(RANDOM, f"{name} > {verdict.why}")
        return Verdict(UNPROVEN, f"no random call found in {name} or what it holds")

    def _torchvision(self, obj: Any, name: str, depth: int) -> Verdict:
        if name == "Compose":
            return self._all("Compose", list(_safe_getattr(obj, "transforms") or ()), depth)
        if name == "Lambda":
            inner = self.verdict(_safe_getattr(obj, "lambd"), depth + 1)
            return Verdict(inner.kind, f"Lambda > {inner.why}" if inner.kind == RANDOM
                           else inner.why, inner.evident)
        if name == "GaussianBlur":
            sigma = tuple(_safe_getattr(obj, "sigma") or ())
            if len(sigma) == 2 and sigma[0] == sigma[1]:
                return Verdict(DETERMINISTIC, "GaussianBlur with a fixed sigma", evident=True)
            return Verdict(RANDOM, f"GaussianBlur: draws its sigma from {sigma}")
        if name in DETERMINISTIC_TORCHVISION:
            return Verdict(DETERMINISTIC, f"{name} is a deterministic torchvision transform",
                           evident=True)
        random_class = _random_class(type(obj))
        if random_class is not None:
            return Verdict(RANDOM, random_class, evident=True)
        return Verdict(RANDOM, f"{name}: a torchvision transform plumber does not know")

    def _class(self, cls: type, depth: int, helpers: int = MAX_HELPER_DEPTH) -> Verdict:
        """A class named in code: random by what it is, else by its call path."""
        random_class = _random_class(cls)
        if random_class is not None:
            return Verdict(RANDOM, random_class)
        for method in _call_path(cls):
            verdict = self._code(method, depth, helpers=helpers)
            if verdict.kind == RANDOM:
                return verdict
        return Verdict(UNPROVEN, f"no random call found in {cls.__name__}")

    def _code(self, func: types.FunctionType, depth: int, owner: Any = None,
              helpers: int = MAX_HELPER_DEPTH) -> Verdict:
        """Search a function's code, and what it names, for randomness (RANDOM or UNPROVEN).

        ``helpers`` bounds how deep the functions it calls are searched in turn.
        """
        name = getattr(func, "__qualname__", _name(func))
        code_names = set(_names(func.__code__))
        found = sorted(n for n in code_names if _looks_random(n))
        if found:
            return Verdict(RANDOM, f"{name}: calls {found[0]}")
        for value in _referenced(func, code_names, owner):
            verdict = self._referenced(value, depth, helpers)
            if verdict is not None:
                return Verdict(RANDOM, f"{name} > {verdict.why}")
        return Verdict(UNPROVEN, f"no random call found in {name}")

    def _referenced(self, value: Any, depth: int, helpers: int) -> Verdict | None:
        """A RANDOM verdict on something a function names, or None when none is found."""
        if isinstance(value, types.ModuleType):
            module = value.__name__
            if module in RANDOM_MODULES or module.startswith("numpy.random."):
                return Verdict(RANDOM, f"{module}: a module of random functions")
            return None
        if _is_generator(value) or _is_generator(getattr(value, "__self__", None)):
            return Verdict(RANDOM, f"{_name(value)}: a random number generator")
        if helpers <= 0 or not callable(value):
            return None
        if isinstance(value, types.FunctionType):
            verdict = self._code(value, depth + 1, helpers=helpers - 1)
        elif isinstance(value, types.MethodType):
            verdict = self._code(value.__func__, depth + 1, value.__self__, helpers - 1)
        elif isinstance(value, types.BuiltinFunctionType):
            verdict = _compiled(value, _name(value))
        elif isinstance(value, type):
            if _in_torchvision(value) or value.__module__.split(".")[0] in ("torch", "builtins"):
                random_class = _random_class(value)
                return Verdict(RANDOM, random_class) if random_class is not None else None
            verdict = self._class(value, depth + 1, helpers - 1)
        else:
            verdict = self.verdict(value, depth + 1)
        return verdict if verdict.kind == RANDOM else None


def _compiled(func: Any, name: str) -> Verdict:
    """A compiled function: random by its name or its generator, else UNPROVEN."""
    owner = getattr(func, "__self__", None)
    if _is_generator(owner) or _looks_random(getattr(func, "__name__", "")):
        return Verdict(RANDOM, f"{name}: draws random numbers")
    return Verdict(UNPROVEN, f"{name} is compiled code whose name says nothing random")


def _random_class(cls: type) -> str | None:
    """Why instances of ``cls`` are random by what the class is, or None."""
    for base in cls.__mro__:
        name = base.__name__
        if name.startswith("Random") or name in RANDOM_CLASSES or "Dropout" in name:
            return f"{cls.__name__}: a random transform" + (f" ({name})" if base is not cls else "")
        if name == "_RandomApplyTransform":
            return f"{cls.__name__}: applies itself at random (torchvision's _RandomApplyTransform)"
    if callable(getattr(cls, "get_params", None)):
        return f"{cls.__name__}: samples its parameters (get_params)"
    make_params = getattr(cls, "make_params", None)
    owner = getattr(make_params, "__qualname__", "").split(".")[0]
    if make_params is not None and owner not in ("Transform", ""):
        return f"{cls.__name__}: samples its parameters (make_params)"
    return None


def _in_torchvision(cls: type) -> bool:
    return cls.__module__.startswith("torchvision.transforms")


def _derives_from_deterministic_torchvision(cls: type) -> bool:
    """A subclass of a deterministic torchvision transform (its code is torchvision's)."""
    return any(_in_torchvision(base) and base.__name__ in DETERMINISTIC_TORCHVISION
               for base in cls.__mro__[1:])


def _call_path(cls: type) -> list[types.FunctionType]:
    """The Python methods through which instances of ``cls`` transform, outside torch's code."""
    methods = []
    for name in CALL_METHODS:
        method = getattr(cls, name, None)
        if isinstance(method, types.FunctionType) and not method.__module__.startswith(
            ("torch.", "torchvision.")
        ):
            methods.append(method)
    return methods


def _names(code: types.CodeType) -> Iterator[str]:
    """Global and attribute names a code object and the code nested in it use."""
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _names(const)


def _referenced(func: types.FunctionType, names: set[str], owner: Any) -> Iterator[Any]:
    """What a function reaches: named globals, closure cells, defaults, the owner's methods."""
    scope = func.__globals__
    for name in sorted(names):
        if name in scope:
            yield scope[name]
        method = getattr(type(owner), name, None) if owner is not None else None
        if isinstance(method, types.FunctionType):
            yield types.MethodType(method, owner)
    for cell in func.__closure__ or ():
        try:
            yield cell.cell_contents
        except ValueError:  # an empty cell
            continue
    yield from func.__defaults__ or ()
    yield from (func.__kwdefaults__ or {}).values()


def _attribute_values(obj: Any) -> Iterator[Any]:
    """Transform-like values an object holds: in attributes, and in lists and dicts there."""
    own = _safe_getattr(obj, "__dict__")
    values: list[Any] = list(own.values()) if isinstance(own, dict) else []
    seen = 0
    for value in values:
        items = value.values() if isinstance(value, dict) else (
            value if isinstance(value, (list, tuple)) else (value,))
        for item in items:
            if seen >= MAX_ATTRIBUTES:
                return
            seen += 1
            if _is_generator(item) or _transform_like(item):
                yield item


def _transform_like(value: Any) -> bool:
    """A callable that may transform data (not a class, module or plain data)."""
    return (
        callable(value) and not isinstance(value, (type, types.ModuleType))
        or isinstance(value, (list, tuple)) and any(map(_transform_like, value))
    )


def _is_generator(value: Any) -> bool:
    cls = type(value)
    return cls.__name__ in GENERATOR_TYPES and cls.__module__.split(".")[0] in (
        "random", "numpy", "torch")


def _looks_random(name: str) -> bool:
    return name in RANDOM_NAMES or name.lower().startswith("rand") or name.endswith("variate")


def _name(obj: Any) -> str:
    if isinstance(obj, functools.partial):
        return f"partial({_name(obj.func)})"
    if isinstance(obj, (types.FunctionType, types.BuiltinFunctionType, types.MethodType)):
        return getattr(obj, "__qualname__", obj.__name__)
    return type(obj).__name__


def _safe_getattr(obj: Any, name: str) -> Any:
    try:
        return getattr(obj, name, None)
    except Exception:  # noqa: BLE001 - a user property may raise anything
        return None

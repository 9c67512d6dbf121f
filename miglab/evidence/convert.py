"""Answers and inputs as plain JSON, the only form evidence travels in.

:func:`to_json` turns whatever a test cell passes or an answer returns into
JSON made of lists, string-keyed dicts, strings, numbers, booleans and
``None``, plus a few tagged dicts for what JSON cannot say:

* ``{"$map": [[key, value], ...]}``: a mapping whose keys are not all plain
  strings (a migration graph keyed by ``(app, name)`` pairs);
* ``{"$set": [...]}``: a set, its elements in a fixed order;
* ``{"$op": "AddField", "args": [...], "kwargs": {...}}``: a Django migration
  operation, from its own ``deconstruct()``;
* ``{"$field": "CharField", "args": [...], "kwargs": {...}}``: a model field;
* ``{"$model": "library.Book", "module": ...}``: a model class;
* ``{"$object": "Value", "path": ..., "args": [...], "kwargs": {...}}``: any
  other Django value that describes itself with ``deconstruct()``
  (expressions such as ``Value("x")`` or ``Now()``, validators, indexes,
  constraints, ``Q``), so two different ``db_default`` values never look
  alike;
* ``{"$function": "module.qualname"}``, ``{"$float": "nan"}``,
  ``{"$bytes": hex}``, ``{"$object": "TypeName"}``: the rest (only the
  type's name survives).

Any mapping converts like a dict and any iterable like a list, so a
``defaultdict``, an ``OrderedDict``, a tuple or a generator answer is read
for what it holds. Nothing here is a security boundary: the kernel that runs
it also runs the student's code, so the judge validates whatever arrives.
What matters is that both sides convert alike, so :func:`digest` of the
same inputs is the same in the kernel and in the judge.

:func:`from_json` is the judge's way back: Django operations and fields are
rebuilt from an allow-list (``django.db.migrations``, ``django.db.models``
and ``django.core.validators`` only), mappings become dicts with hashable
keys.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

MAX_DEPTH = 40  # nesting of one converted value
MAX_NODES = 50_000  # values in one converted value (a generator that never ends stops here)


class ConversionError(ValueError):
    """A value that cannot be turned into evidence (too deep, too big, unreadable)."""


class PlaceholderInput(ConversionError):
    """A judge-side placeholder for a student's answer showed up among a check's inputs."""


class Placeholder:
    """Stands in for a name the student defines, while the judge reads the test cells.

    Calling it, indexing it or reading an attribute gives another placeholder,
    so instructor code such as ``print(pending_migrations(plan, {}))`` runs
    harmlessly; converting one to evidence raises :class:`PlaceholderInput`.
    """

    def __init__(self, name: str = "answer") -> None:
        self._name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Placeholder:
        return Placeholder(f"{self._name}(...)")

    def __getattr__(self, name: str) -> Placeholder:
        if name.startswith("__"):
            raise AttributeError(name)
        return Placeholder(f"{self._name}.{name}")

    def __getitem__(self, key: Any) -> Placeholder:
        return Placeholder(f"{self._name}[...]")

    def __iter__(self) -> Iterator[Any]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"<placeholder for {self._name}>"


class _Budget:
    def __init__(self) -> None:
        self.nodes = 0

    def spend(self, depth: int) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise ConversionError(f"the value holds more than {MAX_NODES} items")
        if depth > MAX_DEPTH:
            raise ConversionError(f"the value is nested more than {MAX_DEPTH} levels deep")


def to_json(value: Any) -> Any:
    """``value`` as plain JSON (see the module docstring)."""
    return _convert(value, 0, _Budget())


def canonical(data: Any) -> str:
    """One fixed text for a JSON value: sorted keys, no spaces, NaN refused."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def digest(data: Any) -> str:
    """A short fingerprint of a JSON value (same value, same fingerprint, in every process)."""
    return hashlib.sha256(canonical(data).encode()).hexdigest()[:24]


_NOT_SCALAR = object()


def _convert(x: Any, depth: int, budget: _Budget) -> Any:
    budget.spend(depth)
    if isinstance(x, Placeholder):
        raise PlaceholderInput(f"an input depends on the student's answer ({x!r})")
    scalar = _scalar(x)
    if scalar is not _NOT_SCALAR:
        return scalar
    special = _django(x, depth, budget)
    if special is not None:
        return special
    if isinstance(x, Mapping):
        return _mapping(x, depth, budget)
    if isinstance(x, (set, frozenset)):
        return {"$set": sorted((_convert(v, depth + 1, budget) for v in x), key=canonical)}
    if isinstance(x, (list, tuple)):
        return [_convert(v, depth + 1, budget) for v in x]
    if callable(x) and hasattr(x, "__qualname__"):
        return {"$function": f"{getattr(x, '__module__', '?')}.{x.__qualname__}"}
    if isinstance(x, Iterable):
        return [_convert(v, depth + 1, budget) for v in _bounded(x)]
    return {"$object": type(x).__name__}


def _scalar(x: Any) -> Any:
    """A plain value as JSON (subclasses read for the value they hold), or ``_NOT_SCALAR``."""
    if x is None or isinstance(x, bool):
        return None if x is None else bool(x)
    if isinstance(x, int):
        return int.__int__(x)
    if isinstance(x, float):
        f = float.__float__(x)
        return f if math.isfinite(f) else {"$float": repr(f)}
    if isinstance(x, str):
        return str.__str__(x)
    if isinstance(x, (bytes, bytearray)):
        return {"$bytes": bytes(x).hex()}
    return _NOT_SCALAR


def _bounded(iterable: Iterable[Any]) -> Iterator[Any]:
    for i, v in enumerate(iterable):
        if i >= MAX_NODES:
            raise ConversionError(f"the value holds more than {MAX_NODES} items")
        yield v


def _mapping(x: Mapping[Any, Any], depth: int, budget: _Budget) -> Any:
    pairs = [(_convert(k, depth + 1, budget), _convert(v, depth + 1, budget)) for k, v in _bounded(x.items())]
    if all(type(k) is str and not k.startswith("$") for k, _ in pairs):
        return dict(pairs)
    return {"$map": sorted(([k, v] for k, v in pairs), key=lambda kv: canonical(kv[0]))}


def _django(x: Any, depth: int, budget: _Budget) -> Any:
    """Django operations, fields and model classes, described by Django itself; else None."""
    module = type(x).__module__ or ""
    if isinstance(x, type) and hasattr(x, "_meta") and hasattr(x._meta, "label"):
        return {"$model": x._meta.label, "module": x.__module__}
    if not module.startswith("django."):
        return None
    from django.db.migrations.operations.base import Operation
    from django.db.models import Field

    if isinstance(x, Operation):
        _, args, kwargs = x.deconstruct()
        return {
            "$op": type(x).__name__,
            "args": _convert(list(args), depth + 1, budget),
            "kwargs": _convert(dict(kwargs), depth + 1, budget),
        }
    if isinstance(x, Field):
        _, path, args, kwargs = x.deconstruct()
        name = path.rsplit(".", 1)[-1] if path.startswith("django.db.models") else path
        return {
            "$field": name,
            "args": _convert(list(args), depth + 1, budget),
            "kwargs": _convert(dict(kwargs), depth + 1, budget),
        }
    if hasattr(x, "deconstruct"):
        return _deconstructed(x, depth, budget)
    return None


def _deconstructed(x: Any, depth: int, budget: _Budget) -> Any:
    """Django's other self-describing values (``Value``, ``Now()``, validators, ``Index``, ``Q``)."""
    try:
        path, args, kwargs = x.deconstruct()
    except Exception as exc:  # any failure means the value cannot be described
        raise ConversionError(f"a {type(x).__name__} that Django cannot describe ({exc})") from exc
    return {
        "$object": type(x).__name__,
        "path": str(path),
        "args": _convert(list(args), depth + 1, budget),
        "kwargs": _convert(dict(kwargs), depth + 1, budget),
    }


# ----------------------------------------------------------------- the way back


TAGS = ("$map", "$set", "$op", "$field", "$model", "$function", "$float", "$bytes", "$object")


def tag(data: Any) -> str | None:
    """The tag of a tagged dict (``"$op"``, ``"$map"``, ...), or None for anything else."""
    if isinstance(data, dict):
        for key in TAGS:
            if key in data:
                return key
    return None


def from_json(data: Any) -> Any:
    """Plain JSON back to Python: tuples for keys, Django objects for ``$op`` and ``$field``.

    Raises ValueError for anything unexpected (an operation or field class that
    is not Django's own, a malformed tag): evidence is data, never a recipe.
    """
    if isinstance(data, list):
        return [from_json(v) for v in data]
    if not isinstance(data, dict):
        return data
    kind = tag(data)
    if kind is None:
        return {k: from_json(v) for k, v in data.items()}
    if kind == "$map":
        return {hashable(from_json(k)): from_json(v) for k, v in _pairs(data["$map"])}
    if kind == "$set":
        return [from_json(v) for v in _list(data["$set"])]
    if kind == "$op":
        return _operation(data)
    if kind == "$field":
        return _field(data)
    if kind == "$object" and "path" in data:
        return _rebuilt(data)
    return data


def hashable(x: Any) -> Any:
    """Lists become tuples, all the way down (so a decoded ``[app, name]`` can be a dict key)."""
    if isinstance(x, list):
        return tuple(hashable(v) for v in x)
    if isinstance(x, dict):
        return tuple(sorted((k, hashable(v)) for k, v in x.items()))
    return x


def _list(x: Any) -> list[Any]:
    if not isinstance(x, list):
        raise ValueError("expected a list")
    return x


def _pairs(x: Any) -> list[Any]:
    items = _list(x)
    if not all(isinstance(p, list) and len(p) == 2 for p in items):
        raise ValueError("a $map holds [key, value] pairs")
    return items


def _operation(data: dict[str, Any]) -> Any:
    from django.db import migrations
    from django.db.migrations.operations.base import Operation

    cls = getattr(migrations, str(data["$op"]), None)
    if not (isinstance(cls, type) and issubclass(cls, Operation)):
        raise ValueError(f"{data['$op']!r} is not a Django migration operation")
    args = [_decode_arg(a) for a in _list(data.get("args", []))]
    kwargs = {str(k): _decode_arg(v) for k, v in dict(data.get("kwargs", {})).items()}
    return cls(*args, **kwargs)


def _field(data: dict[str, Any]) -> Any:
    from django.db import models

    cls = getattr(models, str(data["$field"]), None)
    if not (isinstance(cls, type) and issubclass(cls, models.Field)):
        raise ValueError(f"{data['$field']!r} is not a Django model field")
    args = [_decode_arg(a) for a in _list(data.get("args", []))]
    kwargs = {str(k): _decode_arg(v) for k, v in dict(data.get("kwargs", {})).items()}
    return cls(*args, **kwargs)


REBUILT_FROM = ("django.db.models.", "django.core.validators.")


def _rebuilt(data: dict[str, Any]) -> Any:
    """A deconstructed Django value made again, from Django's own modules only."""
    import importlib

    path = str(data["path"])
    module_name, _, name = path.rpartition(".")
    if not path.startswith(REBUILT_FROM) or not name.isidentifier():
        raise ValueError(f"{path!r} is not a Django value this grader rebuilds")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"{path!r} is not a Django value") from exc
    if not isinstance(cls, type):
        raise ValueError(f"{path!r} is not a class")
    args = [_decode_arg(a) for a in _list(data.get("args", []))]
    if name == "Q":  # a Q's children are (lookup, value) pairs
        args = [tuple(a) if isinstance(a, list) else a for a in args]
    kwargs = {str(k): _decode_arg(v) for k, v in dict(data.get("kwargs", {})).items()}
    return cls(*args, **kwargs)


def _decode_arg(x: Any) -> Any:
    """An argument of an operation or field: CreateModel's fields become (name, field) pairs."""
    value = from_json(x)
    if (
        isinstance(value, list)
        and all(isinstance(v, list) and len(v) == 2 and isinstance(v[0], str) for v in value)
        and value
    ):
        return [(v[0], v[1]) for v in value]
    if isinstance(value, dict) and tag(value) is not None:
        raise ValueError(f"an operation argument cannot be {tag(value)}")
    return value


def normalized(data: Any, ignore_order: bool = False) -> Any:
    """``data`` with sets as sorted lists (and every list sorted, if ``ignore_order``), for comparing."""
    if isinstance(data, list):
        items = [normalized(v, ignore_order) for v in data]
        return sorted(items, key=canonical) if ignore_order else items
    if isinstance(data, dict):
        if tag(data) == "$set":
            return sorted((normalized(v, ignore_order) for v in _list(data["$set"])), key=canonical)
        if tag(data) == "$map":
            pairs = [[normalized(k, ignore_order), normalized(v, ignore_order)] for k, v in _pairs(data["$map"])]
            return {"$map": sorted(pairs, key=lambda kv: canonical(kv[0]))}
        return {k: normalized(v, ignore_order) for k, v in data.items()}
    return data


def equal_json(a: Any, b: Any, ignore_order: bool = False) -> bool:
    """Do two JSON values say the same (sets unordered; lists too if ``ignore_order``)?"""
    try:
        return canonical(normalized(a, ignore_order)) == canonical(normalized(b, ignore_order))
    except (TypeError, ValueError):
        return False


def shown(data: Any, limit: int = 300) -> str:
    """A short Python-looking text of a JSON value, for messages about visible examples."""
    try:
        text = repr(from_json(data))
    except (TypeError, ValueError):
        text = canonical(data)
    return text if len(text) <= limit else text[: limit - 1] + "…"

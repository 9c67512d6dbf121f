"""Ways of looking at an answer, picked by ``check(..., probe=...)``.

A probe turns the student's answer into plain JSON *facts* about what it does;
the rule then judges those facts. Probes run in the student's kernel, so a
probe never decides anything: it describes.

* ``"value"`` (no inputs): the answer itself;
* ``"call"`` (inputs given): what the function returns on a copy of them;
* ``"raises"``: whether the function raises on the inputs, and what
  (``{"raised": true, "type": "ValueError", "value_error": true, "message": ...}``);
* ``"apps"``: calls the function as a data migration would,
  ``fn(apps, schema_editor)``, where ``apps`` is a historical model registry
  holding the models of the ``models=`` parameter
  (``{"library.Book": ["title"]}``); records every ``apps.get_model`` call and
  which model of the registry, if any, came back.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any

from .convert import to_json

MAX_MESSAGE = 2000


class AnswerError(ValueError):
    """The answer is not the kind of thing the check needs (not a function, say)."""


class AnswerRaised(Exception):
    """The student's function raised: ``evidence`` for the grader, ``text`` for the learner."""

    def __init__(self, exc: BaseException):
        from .record import student_frames

        name = type(exc).__name__
        self.evidence = {"raised": name, "builtin": getattr(builtins, name, None) is type(exc)}
        self.text = f"{name}: {exc}\n{student_frames(exc)}".strip()
        super().__init__(self.text)


def collect(probe: str, answer: Any, args: tuple[Any, ...], params: dict[str, Any]) -> Any:
    """The JSON facts ``probe`` reads off ``answer`` (see the module docstring)."""
    look = PROBES.get(probe)
    if look is None:
        raise AnswerError(f"unknown probe {probe!r}; the probes are {', '.join(sorted(PROBES))}")
    return look(answer, args, params)


def _value(answer: Any, args: tuple[Any, ...], params: dict[str, Any]) -> Any:
    return to_json(answer)


def _call(answer: Any, args: tuple[Any, ...], params: dict[str, Any]) -> Any:
    return to_json(_invoke(answer, args))


def _invoke(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None) -> Any:
    if not callable(fn):
        raise AnswerError(f"this should be a function, but it is a {type(fn).__name__}")
    try:
        return fn(*args, **(kwargs or {}))
    except Exception as exc:  # noqa: BLE001 - the student's bug: reported as facts, never as our crash
        raise AnswerRaised(exc) from None


def _raises(answer: Any, args: tuple[Any, ...], params: dict[str, Any]) -> dict[str, Any]:
    if not callable(answer):
        raise AnswerError(f"this should be a function, but it is a {type(answer).__name__}")
    try:
        answer(*args)
    except Exception as exc:  # noqa: BLE001 - whatever the student's function raises is the fact recorded
        words = " ".join(_plain(a) for a in exc.args)
        return {
            "raised": True,
            "type": type(exc).__name__,
            "value_error": isinstance(exc, ValueError),
            "message": words[:MAX_MESSAGE],
        }
    return {"raised": False}


def _plain(x: Any) -> str:
    """The words of an exception argument (strings, numbers, and collections of them)."""
    if isinstance(x, str):
        return str.__str__(x)
    if isinstance(x, bool | int):
        return int.__repr__(int(x))
    if isinstance(x, list | tuple | set | frozenset):
        return " ".join(_plain(v) for v in list(x)[:200])
    return ""


def _apps(answer: Any, args: tuple[Any, ...], params: dict[str, Any]) -> dict[str, Any]:
    """Call ``answer(apps, None)`` with a recording historical registry (see the module docstring)."""
    from .django_setup import historical_registry

    registry = historical_registry(params.get("models") or {})
    calls: list[dict[str, Any]] = []

    class RecordingApps:
        """What a RunPython function receives as ``apps``, reduced to ``get_model``."""

        def get_model(self, *a: Any, **kw: Any) -> Any:
            calls.append({"args": [_text(v) for v in a], "kwargs": {str(k): _text(v) for k, v in kw.items()}})
            return registry.get_model(*a, **kw)

        def __getattr__(self, name: str) -> Any:
            raise AttributeError(f"the apps registry of a migration has no {name!r} in this exercise")

    returned = _invoke(answer, (RecordingApps(), None))
    same = [f"{m._meta.app_label}.{m.__name__}" for m in registry.get_models() if m is returned]
    return {
        "calls": calls[:50],
        "returned": to_json(returned) if isinstance(returned, type) else {"$object": type(returned).__name__},
        "registry_model": same[0] if same else None,
    }


def _text(value: Any) -> Any:
    return str.__str__(value) if isinstance(value, str) else {"$object": type(value).__name__}


PROBES: dict[str, Callable[[Any, tuple[Any, ...], dict[str, Any]], Any]] = {
    "value": _value,
    "call": _call,
    "raises": _raises,
    "apps": _apps,
}

"""What a rule is given and what it answers.

A *rule* decides one ``check(...)`` call of a test cell. It is a plain
function ``rule(call) -> verdict`` where ``call`` is a :class:`Call` and the
verdict is ``True``/``False``, a ``(bool, reason)`` pair, or a
:class:`Verdict`. Rules live in an assignment's ``source/<a>/rules.py``
(named by a string in the test cell: ``rule="leaves_like_django"``), or are
public checkers of this package passed as functions (``rule=valid_plan``),
which the learner's kernel can run too for instant feedback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .convert import from_json

NOTHING: Any = type("Nothing", (), {"__repr__": lambda self: "NOTHING", "__bool__": lambda self: False})()


@dataclass(frozen=True)
class Verdict:
    """Whether one call passed, and why, in words a student can read."""

    ok: bool
    reason: str = ""


def as_verdict(value: Any) -> Verdict:
    """A rule's answer as a :class:`Verdict` (``True``, ``(False, "why")``, a Verdict...)."""
    if isinstance(value, Verdict):
        return value
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], bool):
        return Verdict(value[0], str(value[1]))
    if isinstance(value, bool):
        return Verdict(value, "")
    raise TypeError(f"a rule must return True/False, (bool, reason) or a Verdict, not {type(value).__name__}")


@dataclass(frozen=True)
class Call:
    """One ``check(...)`` call as a rule sees it.

    ``args`` are the inputs the test cell passed (plain JSON, as the judge
    knows them from the instructor's notebook, never from the kernel);
    ``output`` is the student's answer (plain JSON from the evidence: check
    its shape before trusting it); ``expect`` is the ``expect=`` value or
    ``NOTHING``; ``params`` are the call's other keyword arguments;
    ``context`` runs code for the rules that need to (a data migration, say).
    """

    args: list[Any]
    output: Any
    expect: Any = NOTHING
    params: dict[str, Any] = field(default_factory=dict)
    context: Any = None
    hidden: bool = False

    def arg(self, index: int = 0) -> Any:
        """Input ``index`` decoded: tuples for pair keys, Django objects for operations."""
        return from_json(self.args[index])

    def param(self, name: str, default: Any = NOTHING) -> Any:
        """Keyword argument ``name`` of the call, decoded like :meth:`arg`."""
        if name not in self.params:
            if default is NOTHING:
                raise KeyError(f"the check has no {name}= argument")
            return default
        return from_json(self.params[name])

    @property
    def has_expect(self) -> bool:
        return self.expect is not NOTHING


class BadAnswer(ValueError):
    """The answer's evidence does not have the shape this rule needs (it fails, with the message)."""

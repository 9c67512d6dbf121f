"""An assignment's rules: the functions its ``check(...)`` calls name, found for the judge.

A call names its rule in one of two ways:

* ``rule="leaves_like_django"``: a function of that name in the assignment's
  own ``source/<assignment>/rules.py`` (which students never get); the
  file's text travels with the assignment (:class:`RuleBook`), so a grading
  worker on another machine needs no copy of ``source/``;
* ``rule=valid_plan``: a function importable by name (``module:qualname``),
  such as the public checkers of :mod:`miglab.evidence.checkers`.
"""

from __future__ import annotations

import importlib
import types
from collections.abc import Callable
from typing import Any, cast

RULES_FILE = "rules.py"


class RuleError(Exception):
    """A call names a rule that cannot be found (an assignment problem, reported by ``check``)."""


class RuleBook:
    """The rules one assignment's calls can name."""

    def __init__(self, source: str | None = None, origin: str = RULES_FILE, assignment: str = "assignment"):
        self.origin = origin
        self._module: types.ModuleType | None = None
        if source is not None:
            module = types.ModuleType(f"miglab_rules_{assignment}")
            module.__file__ = origin
            exec(compile(source, origin, "exec"), module.__dict__)
            self._module = module

    def names(self) -> list[str]:
        """The public functions of ``rules.py``."""
        if self._module is None:
            return []
        return sorted(
            n
            for n, v in vars(self._module).items()
            if not n.startswith("_") and callable(v) and getattr(v, "__module__", "") == self._module.__name__
        )

    def resolve(self, ref: dict[str, Any] | None) -> Callable[..., Any] | None:
        """The function ``ref`` names (None when the call has no rule); RuleError if there is none."""
        if ref is None:
            return None
        if "name" in ref:
            name = str(ref["name"])
            fn = getattr(self._module, name, None) if self._module is not None else None
            if not callable(fn):
                have = ", ".join(self.names()) or "none"
                raise RuleError(f"rule {name!r} is not a function of {self.origin} (its rules: {have})")
            return cast(Callable[..., Any], fn)
        return import_ref(str(ref.get("ref", "")))


def import_ref(ref: str) -> Callable[..., Any]:
    """``"package.module:qualname"`` imported (a public checker)."""
    module_name, _, qualname = ref.partition(":")
    if not module_name or not qualname or module_name == "__main__":
        raise RuleError(
            f"rule {ref!r} is not importable: pass a function from a module (not one defined in the "
            "notebook), or name a rule of rules.py with a string"
        )
    try:
        target: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise RuleError(f"rule {ref!r} cannot be imported ({exc})") from None
    if not callable(target):
        raise RuleError(f"rule {ref!r} is not a function")
    return cast(Callable[..., Any], target)

"""Visible checks for practice cells: a tick when the learner got it, a hint when not.

    answer = None   # <- your turn: replace None
    verify(lambda: answer == "0002_book_pages", "that is the migration Django wrote",
          hint="look at the file name makemigrations printed")

``verify`` never raises, so running an untouched lesson from top to bottom
still works (it prints the hint instead). Pass a ``lambda`` when the
condition itself could fail on the blank default (``answer.lower()`` with
``answer = None``): the error then counts as "not yet".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

PASS = "✓"
FAIL = "✗ Not yet"


class Verified(int):
    """True or False (``== True``, ``if verify(...)``), that a notebook does not echo as ``Out[n]``."""

    def __new__(cls, ok: bool):
        return super().__new__(cls, bool(ok))

    def __repr__(self) -> str:
        return "True" if self else "False"

    __str__ = __repr__

    def _ipython_display_(self) -> None:
        pass  # the printed ✓/✗ line already says it


def verify(condition: Any | Callable[[], Any], success_message: str, hint: str = "") -> Verified:
    """Print ``✓ success_message`` if ``condition`` holds, else ``✗ Not yet: hint``; return which.

    The result compares equal to True or False; a cell ending in ``verify(...)``
    shows only the printed line.

    ``condition`` is a value (its truth is used) or a function of no arguments
    (called here). Anything that goes wrong while deciding counts as "not yet".
    """
    try:
        value = condition() if callable(condition) else condition
        ok = bool(value)
    except Exception as e:  # noqa: BLE001 - the learner's expression failed: a hint, not a traceback
        ok = False
        problem = f"{type(e).__name__}: {e}"
        hint = f"{hint} ({problem})" if hint else problem
    if ok:
        print(f"{PASS} {success_message}")
    else:
        print(f"{FAIL}: {hint}" if hint else f"{FAIL}.")
    return Verified(ok)

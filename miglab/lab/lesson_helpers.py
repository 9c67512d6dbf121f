"""Helpers that lesson cells share: machinery only, nothing a lesson teaches.

:func:`catch_up` keeps a lesson runnable from top to bottom whether or not the
learner has done a practice cell yet. A practice cell asks the learner to run
a fix themselves; the lesson's next cells look at what that fix did. Such a
next cell starts with ``catch_up(...)``: when the practice step has happened it
says so and does nothing, otherwise it runs the step and says that it did::

    catch_up(lab, "makemigrations --merge", input="y\\n",
             done=lambda: len(migration_graph(lab).leaves["library"]) == 1)
"""

from __future__ import annotations

from collections.abc import Callable

from .project import Lab


def _holds(done: Callable[[], object]) -> bool:
    try:
        return bool(done())
    except Exception:  # noqa: BLE001 - e.g. a table the step would have created is not there yet: not done
        return False


def catch_up(
    lab: Lab,
    command: str,
    done: Callable[[], object],
    input: str | None = None,
    before: Callable[[], object] | None = None,
) -> None:
    """Run ``python manage.py <command>`` in ``lab`` unless ``done()`` says it has already happened.

    ``before``, if given, runs first when catching up (an edit the practice step asked for).
    Prints one line either way, then the command's result when it ran (and returns
    nothing, so a cell that ends with it shows that result once).
    """
    if _holds(done):
        print("✓ Done in your practice cell above: nothing to catch up.")
        return
    print(f"(Not done above yet, so this cell did it for you: python manage.py {command})")
    if before is not None:
        before()
    print(lab.manage(command, input=input))

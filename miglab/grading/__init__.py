"""Batch grading: every submission of an assignment graded by real nbgrader, in parallel.

    python -m miglab.grading grade deep_dive        # in the course folder
    python -m miglab.grading --help

``grade_submission(task) -> Result`` grades one student in a private scratch
course (the worker); ``grade_assignment(...)`` runs it over a class with any
executor and is the only writer of the gradebook (the coordinator).

The names below are imported on first use: the sandboxed kernel's launcher
(``python -m miglab.grading.sandbox_kernel``) starts once per student and
needs none of nbgrader or SQLAlchemy, so importing this package costs it
nothing.
"""

import importlib

_EXPORTS = {
    "grade_assignment": "coordinator", "Summary": "coordinator",
    "grade_submission": "worker",
    "Task": "model", "Result": "model", "CellScore": "model", "Limits": "model",
    "KernelOptions": "model", "AssignmentInfo": "model",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))

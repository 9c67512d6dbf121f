"""The grading engine: any nbgrader assignment of ``source/``, graded by real nbgrader, in parallel.

    python -m miglab.grading grade deep_dive        # in the course folder (or: miglab-grade grade deep_dive)
    python -m miglab.grading check deep_dive        # is the assignment ready?
    python -m miglab.grading --help

``grade_submission(task) -> Result`` grades one student in a private scratch
course (the worker: read → autograde → judge → feedback); ``grade_assignment``
runs it over a class with any executor and is the only writer of the
gradebook (the coordinator). The engine names no assignment: it loads each
one from ``source/<assignment>/`` (:mod:`~miglab.grading.assignment`).

The names below are imported on first use, so importing this package costs
a process nothing it does not use.
"""

import importlib

_EXPORTS = {
    "grade_assignment": "coordinator",
    "Summary": "coordinator",
    "grade_submission": "worker",
    "Task": "model",
    "Result": "model",
    "CellScore": "model",
    "TimeLimits": "model",
    "KernelOptions": "model",
    "AssignmentInfo": "model",
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

"""Batch grading: every submission of an assignment graded by real nbgrader, in parallel.

    python -m miglab.grading grade deep_dive        # in the course folder
    python -m miglab.grading --help

``grade_submission(task) -> Result`` grades one student in a private scratch
course (the worker); ``grade_assignment(...)`` runs it over a class with any
executor and is the only writer of the gradebook (the coordinator).
"""

from .coordinator import Summary, grade_assignment
from .model import AssignmentInfo, CellScore, KernelOptions, Limits, Result, Task
from .worker import grade_submission

__all__ = ["grade_assignment", "grade_submission", "Summary", "Task", "Result", "CellScore",
           "Limits", "KernelOptions", "AssignmentInfo"]

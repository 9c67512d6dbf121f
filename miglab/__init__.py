"""Machinery of the Migrations Deep Dive course.

Layers (each imports only the ones above it):

* :mod:`miglab.lab`: the Django lab, graphs, quizzes and practice checks for lessons;
* :mod:`miglab.evidence`: ``check(...)`` for assignments' test cells, and the
  public checkers and input generators they use;
* :mod:`miglab.sandbox`: bubblewrap sandboxes for students' code;
* :mod:`miglab.grading`: the generic grading engine (it loads each assignment
  from ``source/<assignment>/``; it never imports one).
"""

from .lab import CommandResult, Lab, LabError, Table

__all__ = ["CommandResult", "Lab", "LabError", "Table"]

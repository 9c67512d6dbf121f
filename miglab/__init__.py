"""Machinery of the Migrations Deep Dive course: lessons and grader import from here."""

from .lab import CommandResult, Lab, LabError, Table

__all__ = ["Lab", "LabError", "CommandResult", "Table"]

"""The data that travels between the coordinator and the workers.

A :class:`Task` holds everything needed to grade one student's submission
(the files as bytes, the assignment with its seed gradebook, plan and rules,
the limits, how to start a kernel), so a worker needs no shared file system
and no gradebook of its own: it can run in a local process pool or on a
remote Dask worker. A :class:`Result` holds everything the coordinator
writes back. Both are plain picklable dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Statuses of a graded submission. Student-caused ones first; ``error`` is the grader's fault alone.
OK = "ok"  # every cell ran (answers may still be wrong)
TAMPERED = "tampered"  # nbgrader settings of cells were changed or added; they were put back, then graded
TIMEOUT = "timeout"  # a cell passed the cell time limit; it was interrupted and the rest ran
HUNG = "hung"  # a cell passed the limit and the kernel ignored the interrupt; it was killed
DEAD_KERNEL = "dead_kernel"  # the kernel died; cells after that point did not run
WALL_LIMIT = "wall_limit"  # the whole submission passed its wall-clock limit; the rest did not run
OUTPUT_LIMIT = "output_limit"  # a notebook sent more output than its whole budget; the rest did not run
KERNEL_FAILED = "kernel_failed"  # no kernel could be started (tried twice)
MALFORMED = "malformed"  # a submitted notebook is not a readable notebook
TOO_LARGE = "too_large"  # the submission (or a notebook) is over the size limit
MISSING = "missing"  # the submission lacks a notebook of the assignment
ERROR = "error"  # the grader itself failed on this submission (not the student's fault)

STATUSES = (
    OK,
    TAMPERED,
    TIMEOUT,
    HUNG,
    DEAD_KERNEL,
    WALL_LIMIT,
    OUTPUT_LIMIT,
    KERNEL_FAILED,
    MALFORMED,
    TOO_LARGE,
    MISSING,
    ERROR,
)
NOT_RUN = (MALFORMED, TOO_LARGE, MISSING, ERROR)  # statuses where no notebook ran

# Who decided a cell's score (the CSV's "scored_in_kernel" column lists the cells nbgrader decided).
BY_JUDGE = "judge"  # the trusted judge, outside the kernel, from evidence
BY_NBGRADER = "nbgrader"  # nbgrader's in-kernel result (asserts): forgeable by code in that kernel
BY_HAND = "manual"  # a manually graded cell


@dataclass(frozen=True)
class TimeLimits:
    """Time limits, in seconds."""

    cell_timeout: float = 60.0  # one cell, then the kernel is interrupted
    wall: float = 600.0  # one whole submission (all its notebooks)
    interrupt_grace: float = 5.0  # after an interrupt, how long the kernel has to become responsive
    startup: float = 60.0  # starting the kernel


@dataclass(frozen=True)
class KernelOptions:
    """How a worker starts kernels.

    ``kernel_name`` picks a kernel spec (None: the one in the notebook);
    ``manager_class`` is an import path ``"package.module:Class"`` of a
    jupyter_client ``AsyncKernelManager`` subclass (None: the default one);
    ``manager_kwargs`` are passed to it. The sandbox plugs in here.
    """

    kernel_name: str | None = None
    manager_class: str | None = None
    manager_kwargs: dict[str, Any] = field(default_factory=dict)
    extra_arguments: tuple[Any, ...] = ()

    @property
    def sandboxed(self) -> bool:
        return self.manager_class is not None and self.manager_class.startswith("miglab.sandbox.")


@dataclass(frozen=True)
class CellInfo:
    """One cell of the released notebook, as nbgrader's metadata describes it."""

    grade_id: str
    cell_type: str
    grade: bool
    solution: bool
    locked: bool
    points: float
    source: str  # the released source (for a cell that must be put back)


@dataclass(frozen=True)
class AssignmentInfo:
    """One assignment as a worker needs it: never a solution on the kernel's disk.

    ``seed_db`` is an SQLite gradebook holding just this assignment, made by
    nbgrader's ``generate_assignment`` from ``source/``. ``support_files`` are
    the assignment's other released files, copied next to each submission as
    nbgrader does. ``plan`` (:class:`miglab.grading.plan.Plan` as JSON) says
    what each test cell checks; ``rules`` is the text of ``rules.py``, which
    only the judge reads. ``version`` is a hash of everything that decides a
    grade. ``config`` is the course's nbgrader configuration (a plain dict).
    """

    assignment_id: str
    course_id: str
    notebooks: tuple[str, ...]  # notebook ids, without .ipynb
    seed_db: bytes
    support_files: dict[str, bytes]  # relative path -> bytes
    version: str
    config: dict[str, Any] = field(default_factory=dict)
    grade_cells: tuple[tuple[str, str, float], ...] = ()  # (notebook id, grade_id, points), in order
    cells: dict[str, tuple[CellInfo, ...]] = field(default_factory=dict)  # notebook id -> its cells, in order
    plan: dict[str, Any] = field(default_factory=dict)  # Plan.to_json()
    rules: str | None = None  # text of source/<a>/rules.py


@dataclass(frozen=True)
class Task:
    student_id: str
    assignment: AssignmentInfo
    files: dict[str, bytes]  # relative path inside submitted/<student>/<assignment>/ -> bytes
    submission_hash: str
    limits: TimeLimits = TimeLimits()
    kernel: KernelOptions = KernelOptions()
    timestamp: str | None = None
    feedback: bool = True
    notes: tuple[str, ...] = ()  # what reading the folder found (links skipped, a bad timestamp)
    skipped: tuple[tuple[str, str], ...] = ()  # (relative path, why) of what was there but not read


@dataclass
class CellScore:
    grade_id: str
    notebook: str
    score: float | None
    max_score: float
    reason: str = ""  # why points were lost (from the judge or the run)
    scored_by: str = BY_NBGRADER
    nbgrader_score: float | None = None  # what nbgrader's in-kernel verdict gave, for the record
    messages: list[str] = field(default_factory=list)  # the judge's lines for feedback


@dataclass
class Result:
    student_id: str
    assignment_id: str
    submission_hash: str
    assignment_version: str
    status: str
    reason: str = ""  # the main cause, first line in the CSV
    scores: list[CellScore] = field(default_factory=list)  # notebook order
    comments: dict[tuple[str, str], str | None] = field(default_factory=dict)  # (notebook, grade_id) -> comment
    autograded: dict[str, bytes] = field(default_factory=dict)  # relative path -> bytes (autograded/<s>/<a>/)
    feedback: dict[str, bytes] = field(default_factory=dict)  # relative path -> bytes (feedback/<s>/<a>/)
    timestamp: str | None = None
    notes: list[str] = field(default_factory=list)  # for the student: what was fixed or skipped
    review: list[str] = field(default_factory=list)  # for the instructor: answers worth a human look
    seconds: float = 0.0  # whole task inside the worker
    kernel_start: float = 0.0  # starting kernels (sum over notebooks)
    cell_seconds: float = 0.0  # running cells (sum)
    judged: bool = False  # the judge scored the judged cells
    phases: dict[str, float] = field(default_factory=dict)  # seconds per step: autograde, judge, feedback
    log: str = ""  # nbgrader's log tail and every traceback, for reports/<a>/logs/

    @property
    def total(self) -> float:
        return float(sum(s.score or 0.0 for s in self.scores))

    @property
    def max_total(self) -> float:
        return float(sum(s.max_score for s in self.scores))

    @property
    def scored_in_kernel(self) -> list[str]:
        return [s.grade_id for s in self.scores if s.scored_by == BY_NBGRADER]

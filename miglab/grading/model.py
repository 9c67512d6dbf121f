"""The data that travels between the coordinator and the workers.

A :class:`Task` holds everything needed to grade one student's submission
(the files as bytes, the assignment as a seed gradebook, the limits, how to
start a kernel), so a worker needs no shared file system and no gradebook of
its own: it can run in a local process pool or on a remote Dask worker. A
:class:`Result` holds everything the coordinator writes back. Both are plain
picklable dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Statuses of a graded submission, most common first.
OK = "ok"                  # every cell ran (answers may still be wrong)
TIMEOUT = "timeout"        # a cell passed the cell time limit; it was interrupted and the rest ran
HUNG = "hung"              # a cell passed the limit and the kernel ignored the interrupt; it was killed
DEAD_KERNEL = "dead_kernel"  # the kernel died; cells after that point did not run
WALL_LIMIT = "wall_limit"  # the whole submission passed its wall-clock limit; the rest did not run
KERNEL_FAILED = "kernel_failed"  # no kernel could be started
MALFORMED = "malformed"    # a submitted file is not a readable notebook
MISSING = "missing"        # the submission lacks a notebook of the assignment
ERROR = "error"            # the grader itself failed on this submission (not the student's fault)

STATUSES = (OK, TIMEOUT, HUNG, DEAD_KERNEL, WALL_LIMIT, KERNEL_FAILED, MALFORMED, MISSING, ERROR)


@dataclass(frozen=True)
class Limits:
    """Time limits, in seconds."""

    cell_timeout: float = 60.0      # one cell, then the kernel is interrupted
    wall: float = 600.0             # one whole submission (all its notebooks)
    interrupt_grace: float = 5.0    # after an interrupt, how long the kernel has to become responsive
    startup: float = 60.0           # starting the kernel


@dataclass(frozen=True)
class KernelOptions:
    """How a worker starts kernels.

    ``kernel_name`` picks a kernel spec (None: the one in the notebook);
    ``manager_class`` is an import path ``"package.module:Class"`` of a
    jupyter_client ``AsyncKernelManager`` subclass (None: the default one);
    ``manager_kwargs`` are passed to it. The isolation layer plugs in here.
    """

    kernel_name: str | None = None
    manager_class: str | None = None
    manager_kwargs: dict = field(default_factory=dict)
    extra_arguments: tuple = ()


@dataclass(frozen=True)
class AssignmentInfo:
    """One assignment as a worker needs it: no solutions on disk, only what nbgrader keeps.

    ``seed_db`` is an SQLite gradebook holding just this assignment (cells,
    points, the locked cells' sources with hidden tests), made by
    ``nbgrader generate_assignment`` from ``source/``. ``support_files`` are the
    assignment's non-notebook files, copied next to each submission as nbgrader does.
    ``config`` is the course's nbgrader configuration (a plain dict).
    """

    assignment_id: str
    course_id: str
    notebooks: tuple            # notebook ids, without .ipynb
    seed_db: bytes
    support_files: dict         # relative path -> bytes
    version: str                # hash of everything that decides a grade
    config: dict = field(default_factory=dict)
    grade_cells: tuple = ()     # (notebook id, grade_id, points), in notebook order
    judge_key: dict | None = None  # private data of the judge (quiz answer key), never written near a kernel


@dataclass(frozen=True)
class Task:
    student_id: str
    assignment: AssignmentInfo
    files: dict                 # relative path inside submitted/<student>/<assignment>/ -> bytes
    submission_hash: str
    limits: Limits = Limits()
    kernel: KernelOptions = KernelOptions()
    timestamp: str | None = None
    feedback: bool = True


@dataclass
class CellScore:
    grade_id: str
    notebook: str
    score: float
    max_score: float
    reason: str = ""            # why points were lost (from the judge or the run)
    nbgrader_score: float | None = None   # what nbgrader's in-kernel verdict gave, for the record


@dataclass
class Result:
    student_id: str
    assignment_id: str
    submission_hash: str
    assignment_version: str
    status: str
    reason: str = ""
    scores: list = field(default_factory=list)          # CellScore, notebook order
    comments: dict = field(default_factory=dict)        # (notebook, grade_id) -> auto comment or None
    autograded: dict = field(default_factory=dict)      # relative path -> bytes (autograded/<s>/<a>/)
    feedback: dict = field(default_factory=dict)        # relative path -> bytes (feedback/<s>/<a>/)
    timestamp: str | None = None
    seconds: float = 0.0           # whole task inside the worker
    kernel_start: float = 0.0      # starting kernels (sum over notebooks)
    cell_seconds: float = 0.0      # running cells (sum)
    judged: bool = False           # scores come from miglab.judges
    phases: dict = field(default_factory=dict)  # seconds per step: autograde, judge, feedback
    log: str = ""                  # tail of nbgrader's log, for the instructor

    @property
    def total(self) -> float:
        return sum(s.score for s in self.scores)

    @property
    def max_total(self) -> float:
        return sum(s.max_score for s in self.scores)

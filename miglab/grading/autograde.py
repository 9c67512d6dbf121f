"""nbgrader's part of grading one student, in a private one-student course of its own.

:class:`ScratchCourse` lays out a throwaway nbgrader course (a copy of the
seed gradebook, the assignment's support files, the student's files with
their notebooks already repaired) and runs real nbgrader in it:

* :meth:`ScratchCourse.autograde`: ``Autograde`` (restore locked cells from
  the gradebook, execute with :class:`~miglab.grading.execute.ResilientExecute`,
  save nbgrader's own grades) → :class:`AutogradeRun`;
* :meth:`ScratchCourse.record_scores`: the final scores into the private
  gradebook, and the judge's messages into the autograded notebooks;
* :meth:`ScratchCourse.feedback`: ``GenerateFeedback`` with
  :class:`~miglab.grading.feedback.GradingFeedback`, hidden tests cleared.
"""

from __future__ import annotations

import io
import json
import logging
import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .model import CellScore, Task

FEEDBACK_PREPROCESSORS = [
    "nbgrader.preprocessors.GetGrades",
    "miglab.grading.feedback.GradingFeedback",
    "nbgrader.preprocessors.ClearHiddenTests",
    "miglab.grading.feedback.ShortTracebacks",
]


@dataclass
class AutogradeRun:
    """What nbgrader's autograde left: the autograded notebooks, its own scores, how each run went."""

    notebooks: dict = field(default_factory=dict)  # notebook id -> autograded NotebookNode
    nbgrader_scores: dict = field(default_factory=dict)  # (notebook, grade_id) -> in-kernel score
    comments: dict = field(default_factory=dict)  # (notebook, grade_id) -> auto comment
    runs: list = field(default_factory=list)  # ResilientExecute's outcome per notebook
    failure: str = ""  # nbgrader's exception, if it raised
    seconds: float = 0.0


class ScratchCourse:
    """A private nbgrader course for one submission; a context manager that deletes itself."""

    def __init__(self, task: Task, notebooks: dict[str, bytes]):
        self.task = task
        self.root = Path(tempfile.mkdtemp(prefix=f"miglab-grade-{task.student_id}-"))
        self.log_buffer = io.StringIO()
        self.log = _logger(self.log_buffer)
        a = task.assignment
        self.db = self.root / "gradebook.db"
        self.db.write_bytes(a.seed_db)
        self.db_url = f"sqlite:///{self.db}"
        _write_files(self.root / "source" / a.assignment_id, a.support_files)
        (self.root / "source" / a.assignment_id).mkdir(parents=True, exist_ok=True)
        # nbgrader reads timestamp.txt itself: it gets the time the grader read and checked, never the
        # student's bytes (a garbage timestamp would stop nbgrader on this submission).
        submitted = {k: v for k, v in task.files.items() if k != "timestamp.txt"}
        submitted.update({f"{nb}.ipynb": data for nb, data in notebooks.items()})
        if task.timestamp:
            submitted["timestamp.txt"] = task.timestamp.encode()
        _write_files(self.root / "submitted" / task.student_id / a.assignment_id, submitted)
        self.out_dir = self.root / "autograded" / task.student_id / a.assignment_id

    def __enter__(self) -> ScratchCourse:
        return self

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def log_text(self, limit: int = 20_000) -> str:
        return self.log_buffer.getvalue()[-limit:]

    # ---------------------------------------------------------------- autograde

    def autograde(self, deadline: float) -> AutogradeRun:
        from nbgrader.converters import Autograde
        from nbgrader.coursedir import CourseDirectory

        from .execute import outcome

        a = self.task.assignment
        self.config = nbgrader_config(self.task, self.root, self.db_url, str(self.root), deadline)
        self.coursedir = CourseDirectory(config=self.config, log=self.log)
        app = Autograde(coursedir=self.coursedir, config=self.config, log=self.log)
        app.force = True
        app.create_student = True
        run = AutogradeRun()
        t0 = time.monotonic()
        try:
            app.start()
        except Exception as exc:  # noqa: BLE001 - nbgrader reports per-submission failures this way
            run.failure = f"{type(exc).__name__}: {exc}"
        run.runs = outcome(str(self.root))
        run.seconds = time.monotonic() - t0
        import nbformat

        for nb_id in a.notebooks:
            path = self.out_dir / f"{nb_id}.ipynb"
            if path.exists():
                run.notebooks[nb_id] = nbformat.read(str(path), as_version=4)
        if len(run.notebooks) == len(a.notebooks):
            run.nbgrader_scores, run.comments = self._nbgrader_grades()
        return run

    def _nbgrader_grades(self) -> tuple[dict, dict]:
        from nbgrader.api import Gradebook

        a, sid = self.task.assignment, self.task.student_id
        scores, comments = {}, {}
        with Gradebook(self.db_url, a.course_id) as gb:
            for nb_id in a.notebooks:
                snb = gb.find_submission_notebook(nb_id, a.assignment_id, sid)
                for grade in snb.grades:
                    scores[(nb_id, grade.name)] = grade.auto_score
                for comment in snb.comments:
                    comments[(nb_id, comment.name)] = comment.auto_comment
        return scores, comments

    # ------------------------------------------------------------ scores, feedback

    def record_scores(self, scores: list[CellScore], notes: list[str], run: AutogradeRun) -> None:
        """The final scores into the private gradebook (feedback shows them) and the notebooks."""
        from nbgrader.api import Gradebook

        a, sid = self.task.assignment, self.task.student_id
        with Gradebook(self.db_url, a.course_id) as gb:
            for s in scores:
                gb.find_grade(s.grade_id, s.notebook, a.assignment_id, sid).auto_score = s.score
            gb.db.commit()
        by_cell = {(s.notebook, s.grade_id): s for s in scores}
        import nbformat

        for nb_id, nb in run.notebooks.items():
            for cell in nb.cells:
                gid = cell.metadata.get("nbgrader", {}).get("grade_id")
                s = by_cell.get((nb_id, gid)) if cell.metadata.get("nbgrader", {}).get("grade") else None
                if s is not None:
                    cell.metadata["miglab"] = {"scored_by": s.scored_by, "messages": list(s.messages)}
            nb.metadata["miglab"] = {"notes": list(notes)}
            nbformat.write(nb, str(self.out_dir / f"{nb_id}.ipynb"))

    def feedback(self) -> dict[str, bytes]:
        from nbgrader.converters import GenerateFeedback

        fb = GenerateFeedback(coursedir=self.coursedir, config=self.config, log=self.log)
        fb.force = True
        fb.start()
        return read_tree(self.root / "feedback" / self.task.student_id / self.task.assignment.assignment_id)

    def autograded_files(self) -> dict[str, bytes]:
        return read_tree(self.out_dir)


# ------------------------------------------------------------------ nbgrader's settings


def nbgrader_config(task: Task, root: Path, db_url: str, run_key: str, deadline: float) -> Any:
    """The course's nbgrader configuration, pointed at the scratch course, with our preprocessors."""
    from traitlets.config import Config

    a = task.assignment
    cfg = Config(json.loads(json.dumps(a.config)))
    cd = cfg.CourseDirectory
    cd.root, cd.db_url, cd.course_id = str(root), db_url, a.course_id
    cd.assignment_id, cd.student_id, cd.notebook_id = a.assignment_id, task.student_id, "*"
    _autograde_preprocessors(cfg, a.config)
    _execute_settings(cfg, task, run_key, deadline)
    feedback = [
        p
        for p in (a.config.get("GenerateFeedback", {}).get("preprocessors") or [])
        if not str(p).endswith(("ClearHiddenTests", "GetGrades", "ShortTracebacks", "GradingFeedback"))
    ]
    cfg.GenerateFeedback.preprocessors = FEEDBACK_PREPROCESSORS + (
        feedback or ["nbconvert.preprocessors.CSSHTMLHeaderPreprocessor"]
    )
    cfg.GenerateFeedback.exporter_class = "miglab.grading.feedback.CachedTemplateHTMLExporter"
    return cfg


def _autograde_preprocessors(cfg: Any, course: dict) -> None:
    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.converters import Autograde
    from nbgrader.preprocessors import (
        AssignLatePenalties,
        CheckCellMetadata,
        IgnorePattern,
        LimitOutput,
        SaveAutoGrades,
    )

    from .execute import FastCheckCellMetadata, ResilientExecute

    cfg.Autograde.autograde_preprocessors = [
        ResilientExecute,
        IgnorePattern,
        ClearMetadataPreprocessor,
        LimitOutput,
        SaveAutoGrades,
        AssignLatePenalties,
        FastCheckCellMetadata,
    ]
    # nbgrader's first pass (sanitize: clear outputs, put back locked cells, check metadata) runs
    # its own metadata check too: the same, faster one there.
    sanitize = (
        course.get("Autograde", {}).get("sanitize_preprocessors")
        or Autograde.class_traits()["sanitize_preprocessors"].default()
    )
    cfg.Autograde.sanitize_preprocessors = [
        FastCheckCellMetadata if p is CheckCellMetadata or str(p).endswith(".CheckCellMetadata") else p
        for p in sanitize
    ]
    # Validate each notebook once, after all of a pass's preprocessors, not after each of them
    # (nbconvert's default: a dozen schema validations of the whole notebook per submission).
    cfg.Exporter.optimistic_validation = True


def _execute_settings(cfg: Any, task: Task, run_key: str, deadline: float) -> None:
    lim, k = task.limits, task.kernel
    ex = cfg.ResilientExecute
    ex.timeout = int(max(1, round(lim.cell_timeout)))
    ex.startup_timeout = int(max(1, round(lim.startup)))
    ex.deadline, ex.interrupt_grace, ex.run_key = deadline, lim.interrupt_grace, run_key
    if k.kernel_name:
        ex.kernel_name = k.kernel_name
    # Without a sandbox: jupyter_client's default manager, minus its 0.1 s polls while a kernel stops.
    ex.kernel_manager_class = (k.manager_class or "miglab.grading.execute:FastKernelManager").replace(":", ".")
    if k.manager_kwargs:
        ex.manager_kwargs = dict(k.manager_kwargs)
    if k.extra_arguments:
        ex.extra_arguments = list(k.extra_arguments)
    ex.shutdown_kernel = "immediate"  # nothing in a graded kernel is worth a graceful shutdown


# ------------------------------------------------------------------------- files


def _logger(buffer: io.StringIO) -> logging.Logger:
    log = logging.getLogger(f"miglab.grading.autograde.{id(buffer)}")
    log.propagate = False
    log.setLevel(logging.INFO)
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("[%(levelname)s] %(message)s"))
    log.handlers = [handler]
    return log


def _write_files(base: Path, files: dict) -> None:
    """Files the grader itself collected (safe relative paths); anything escaping ``base`` is dropped."""
    base.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        dest = base / rel
        if not dest.resolve().is_relative_to(base.resolve()):
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)


def read_tree(base: Path) -> dict[str, bytes]:
    """Every regular file under ``base`` (the scratch course, written by the grader and nbgrader)."""
    out = {}
    if base.is_dir():
        for p in sorted(base.rglob("*")):
            if p.is_file() and not p.is_symlink():
                out[p.relative_to(base).as_posix()] = p.read_bytes()
    return out


def fast_scratch_sqlite() -> None:
    """A scratch gradebook is thrown away after one student: skip SQLite's fsyncs on it."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    if getattr(fast_scratch_sqlite, "done", False):
        return
    scratch = str(Path(tempfile.gettempdir()) / "miglab-grade-")

    @event.listens_for(Engine, "connect")
    def _pragmas(dbapi_connection: Any, record: Any) -> None:
        # Only SQLite's own connections are asked: a statement sent to any other database (a
        # PostgreSQL gradebook) could fail and leave its connection in an aborted transaction.
        if not isinstance(dbapi_connection, sqlite3.Connection):
            return
        rows = dbapi_connection.execute("PRAGMA database_list").fetchall()
        if any(str(r[2]).startswith(scratch) for r in rows):
            dbapi_connection.execute("PRAGMA synchronous=OFF")
            dbapi_connection.execute("PRAGMA journal_mode=MEMORY")

    fast_scratch_sqlite.done = True  # type: ignore[attr-defined]

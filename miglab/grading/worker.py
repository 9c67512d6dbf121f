"""Grade one submission: ``grade_submission(task) -> Result``.

A pure function as far as the course is concerned: it reads nothing but its
:class:`~miglab.grading.model.Task` and writes nothing but a private scratch
folder, which it deletes. Inside that folder it lays out a one-student
nbgrader course (a copy of the seed gradebook, the submitted files) and runs
real nbgrader there:

1. ``Autograde`` (sanitize, restore locked cells and deleted test cells,
   execute with :class:`~miglab.grading.execute.ResilientExecute`, save
   nbgrader's grades in the private gradebook);
2. the trusted judge, ``miglab.judges.judge_notebook``, when it exists: it
   reads the evidence in the autograded notebook and decides the scores,
   which replace nbgrader's in the private gradebook;
3. ``GenerateFeedback`` with hidden tests cleared and tracebacks of test cells
   cut to their last line.

The coordinator copies the result into the real course. Because workers share
nothing, any executor can run this function: a process pool here, Dask
workers on other machines later.
"""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

from . import model
from .model import CellScore, Result, Task


class WallClockAlarm(BaseException):
    """Raised in the worker when a submission overruns its hard limit (last resort)."""


def _hard_alarm(seconds: float):
    """Arm SIGALRM when running in a main thread (a process pool); otherwise do nothing."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        return lambda: None

    def handler(signum, frame):
        raise WallClockAlarm()

    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)

    def disarm():
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

    return disarm


def _logger(buffer: io.StringIO) -> logging.Logger:
    log = logging.getLogger(f"miglab.grading.worker.{id(buffer)}")
    log.propagate = False
    log.setLevel(logging.INFO)
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("[%(levelname)s] %(message)s"))
    log.handlers = [handler]
    return log


def read_notebook(data: bytes):
    """Parse a submitted notebook; raise ValueError with a plain reason if it is not one."""
    import nbformat

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("the file is not text (not UTF-8), so it is not a notebook")
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"the file is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})")
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as exc:
        raise ValueError(f"the file is JSON but not a notebook ({exc.__class__.__name__}: {exc})")
    if not isinstance(nb.get("cells"), list):
        raise ValueError("the file is JSON but not a notebook (no list of cells)")
    return nb


def _config(task: Task, root: Path, db_url: str, run_key: str, deadline: float):
    from traitlets.config import Config

    from nbgrader.converters import Autograde
    from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, IgnorePattern, LimitOutput,
                                        SaveAutoGrades)
    from nbconvert.preprocessors import ClearMetadataPreprocessor

    from .execute import FastCheckCellMetadata, ResilientExecute

    a = task.assignment
    cfg = Config(json.loads(json.dumps(a.config)))
    cfg.CourseDirectory.root = str(root)
    cfg.CourseDirectory.db_url = db_url
    cfg.CourseDirectory.course_id = a.course_id
    cfg.CourseDirectory.assignment_id = a.assignment_id
    cfg.CourseDirectory.student_id = task.student_id
    cfg.CourseDirectory.notebook_id = "*"
    cfg.Autograde.autograde_preprocessors = [
        ResilientExecute, IgnorePattern, ClearMetadataPreprocessor, LimitOutput,
        SaveAutoGrades, AssignLatePenalties, FastCheckCellMetadata,
    ]
    # nbgrader's first pass (sanitize: clear outputs, put back locked cells, check metadata) runs
    # its own metadata check too: the same, faster one there.
    sanitize = a.config.get("Autograde", {}).get("sanitize_preprocessors") or Autograde.class_traits()[
        "sanitize_preprocessors"].default()
    cfg.Autograde.sanitize_preprocessors = [
        FastCheckCellMetadata if p is CheckCellMetadata or str(p).endswith(".CheckCellMetadata") else p
        for p in sanitize]
    # Validate each notebook once, after all of a pass's preprocessors, not after each of them
    # (nbconvert's default: a dozen schema validations of the whole notebook per submission).
    cfg.Exporter.optimistic_validation = True
    lim, k = task.limits, task.kernel
    ex = cfg.ResilientExecute
    ex.timeout = int(max(1, round(lim.cell_timeout)))
    ex.startup_timeout = int(max(1, round(lim.startup)))
    ex.deadline = deadline
    ex.interrupt_grace = lim.interrupt_grace
    ex.run_key = run_key
    if k.kernel_name:
        ex.kernel_name = k.kernel_name
    if k.manager_class:
        ex.kernel_manager_class = k.manager_class.replace(":", ".")
    else:  # jupyter_client's default manager, minus its 0.1 s polls while a kernel stops
        ex.kernel_manager_class = "miglab.grading.execute.FastKernelManager"
    if k.manager_kwargs:
        ex.manager_kwargs = dict(k.manager_kwargs)
    if k.extra_arguments:
        ex.extra_arguments = list(k.extra_arguments)
    feedback_pps = list(a.config.get("GenerateFeedback", {}).get("preprocessors", [])) or [
        "nbgrader.preprocessors.GetGrades",
        "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
    ]
    feedback_pps = [p for p in feedback_pps if not str(p).endswith("ClearHiddenTests")]
    feedback_pps[1:1] = ["nbgrader.preprocessors.ClearHiddenTests",
                         "miglab.grading.feedback.ShortTracebacks"]
    cfg.GenerateFeedback.preprocessors = feedback_pps
    cfg.GenerateFeedback.exporter_class = "miglab.grading.feedback.CachedTemplateHTMLExporter"
    ex.shutdown_kernel = "immediate"  # nothing in a graded kernel is worth a graceful shutdown
    return cfg


def _write_files(base: Path, files: dict) -> None:
    for rel, data in files.items():
        dest = base / rel
        if not dest.resolve().is_relative_to(base.resolve()):
            continue  # a path that escapes the folder is ignored
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)


def _read_tree(base: Path) -> dict:
    out = {}
    if base.is_dir():
        for p in sorted(base.rglob("*")):
            if p.is_file():
                out[p.relative_to(base).as_posix()] = p.read_bytes()
    return out


def judge_module():
    """``miglab.judges`` if it exists (the trusted scorer), else None."""
    if importlib.util.find_spec("miglab.judges") is None:
        return None
    import miglab.judges

    return miglab.judges


def _judge_kwargs(judges, task: Task) -> dict:
    """The judge's answer key (shipped in the task, never on the kernel's disk) and migration runner."""
    import inspect

    params = inspect.signature(judges.judge_notebook).parameters
    kwargs = {}
    if "key" in params and task.assignment.judge_key is not None:
        kwargs["key"] = dict(task.assignment.judge_key)
    if "migration_runner" in params:
        try:
            from .sandbox import migration_runner
        except ImportError:
            pass
        else:
            runner = migration_runner(task.kernel)
            if runner is not None:
                kwargs["migration_runner"] = runner
    return kwargs


def _verdict_fields(v):
    if isinstance(v, dict):
        return v.get("score"), v.get("max_score"), v.get("reason", "")
    return getattr(v, "score"), getattr(v, "max_score", None), getattr(v, "reason", "")


def _zero_result(task: Task, status: str, reason: str, started: float) -> Result:
    a = task.assignment
    return Result(
        student_id=task.student_id, assignment_id=a.assignment_id,
        submission_hash=task.submission_hash, assignment_version=a.version,
        status=status, reason=reason, timestamp=task.timestamp,
        scores=[CellScore(grade_id=g, notebook=n, score=0.0, max_score=m, reason=reason)
                for n, g, m in a.grade_cells],
        feedback={f"{n}.html": _plain_feedback(task, n, status, reason) for n in a.notebooks} if task.feedback else {},
        seconds=time.monotonic() - started,
    )


def _plain_feedback(task: Task, notebook: str, status: str, reason: str) -> bytes:
    import html

    a = task.assignment
    total = sum(m for n, _, m in a.grade_cells if n == notebook)
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Feedback</title></head><body>"
        f"<h1>{html.escape(a.assignment_id)} / {html.escape(notebook)}: feedback for {html.escape(task.student_id)}</h1>"
        f"<p><strong>Score: 0 / {total:g}</strong></p>"
        f"<p>Your submission could not be graded ({html.escape(status)}): {html.escape(reason)}.</p>"
        "<p>Submit the notebook file itself (File &rarr; Save, then upload the .ipynb) and ask your instructor "
        "to grade it again.</p></body></html>"
    ).encode()


def _fast_scratch_sqlite() -> None:
    """A scratch gradebook is thrown away after one student: skip SQLite's fsyncs on it."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    if getattr(_fast_scratch_sqlite, "done", False):
        return

    @event.listens_for(Engine, "connect")
    def _pragmas(dbapi_connection, record):
        try:
            rows = dbapi_connection.execute("PRAGMA database_list").fetchall()
        except Exception:
            return
        if any(str(r[2]).startswith(str(Path(tempfile.gettempdir()) / "miglab-grade-")) for r in rows):
            dbapi_connection.execute("PRAGMA synchronous=OFF")
            dbapi_connection.execute("PRAGMA journal_mode=MEMORY")

    _fast_scratch_sqlite.done = True


def quiet_worker() -> None:
    """Process-pool initializer: kernels and libraries write their chatter to a log file, not the terminal."""
    import warnings

    warnings.filterwarnings("ignore", module="nbgrader")
    warnings.filterwarnings("ignore", module="nbformat")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    path = Path(tempfile.gettempdir()) / f"miglab-grading-worker-{os.getpid()}.log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    _fast_scratch_sqlite()
    warm_up()


# Modules a worker imports lazily while grading its first student (nbgrader's preprocessors, the
# kernel machinery, the feedback page, the judge's Django parts).
WARM_MODULES = (
    "nbgrader.preprocessors", "nbgrader.converters", "nbconvert.exporters.html", "nbconvert.filters",
    "jupyter_client.manager", "jupyter_client.asynchronous.client", "pygments.lexers.python",
    "pygments.formatters.html", "django.db.migrations.graph", "django.db.migrations.optimizer",
    "django.db.migrations.state", "django.db.migrations.operations", "django.utils.text",
    "miglab.grading.execute", "miglab.grading.feedback", "miglab.grading.sandbox", "miglab.lab",
)


def warm_up() -> None:
    """Do once, before any student, what every worker would otherwise do on its first one.

    The batch grader imports this in its process pool's fork server, so the
    work (about a second of CPU: imports, Django's set-up, the 80 random cases
    the judge draws with Hypothesis) is done once, while the coordinator
    prepares the assignment, and every worker starts with it. It is also each
    worker's initializer (for executors without that fork server), where it
    costs nothing when already done. Never raises: a module that will not
    import only costs the speed it would have saved.
    """
    import importlib

    if getattr(warm_up, "done", False):
        return
    for name in WARM_MODULES:
        try:
            importlib.import_module(name)
        except Exception:
            pass
    judges = judge_module()
    if judges is not None:
        try:
            from miglab import oracle

            oracle.ensure_django()
            oracle.replay_random_cases()
            oracle.squash_random_cases()
        except Exception:
            pass
    warm_up.done = True


def grade_submission(task: Task) -> Result:
    """Grade one student's submission in a private scratch course; never raises for bad input."""
    started = time.monotonic()
    _fast_scratch_sqlite()
    a = task.assignment
    sid = task.student_id
    # Read every notebook first: a file that is not a notebook is recorded, not run.
    for nb_id in a.notebooks:
        data = task.files.get(f"{nb_id}.ipynb")
        if data is None:
            return _zero_result(task, model.MISSING, f"{nb_id}.ipynb was not submitted", started)
        try:
            read_notebook(data)
        except ValueError as exc:
            return _zero_result(task, model.MALFORMED, f"{nb_id}.ipynb: {exc}", started)

    result = _attempt(task, started)
    if result.status == model.KERNEL_FAILED:
        # No student code ran: the kernel failed to start (a machine hiccup). Try once more.
        time.sleep(1.0)
        result = _attempt(task, started)
    return result


def _attempt(task: Task, started: float) -> Result:
    sid = task.student_id
    buffer = io.StringIO()
    log = _logger(buffer)
    scratch = Path(tempfile.mkdtemp(prefix=f"miglab-grade-{sid}-"))
    deadline = time.time() + task.limits.wall
    disarm = _hard_alarm(task.limits.wall + task.limits.startup + 30)
    try:
        return _grade_in(scratch, task, log, buffer, deadline, started)
    except WallClockAlarm:
        result = _zero_result(task, model.WALL_LIMIT, "the submission overran its wall-clock limit", started)
        result.log = buffer.getvalue()[-4000:]
        return result
    except Exception as exc:  # a grader failure: recorded, never fatal for the class
        result = _zero_result(task, model.ERROR, f"the grader failed: {exc.__class__.__name__}: {exc}", started)
        result.log = buffer.getvalue()[-4000:]
        return result
    finally:
        disarm()
        shutil.rmtree(scratch, ignore_errors=True)


def _grade_in(scratch: Path, task: Task, log, buffer, deadline: float, started: float) -> Result:
    from nbgrader.api import Gradebook
    from nbgrader.converters import Autograde, GenerateFeedback
    from nbgrader.coursedir import CourseDirectory
    import nbformat

    from .execute import NOT_RUN, outcome

    a = task.assignment
    sid = task.student_id
    db = scratch / "gradebook.db"
    db.write_bytes(a.seed_db)
    db_url = f"sqlite:///{db}"
    _write_files(scratch / "source" / a.assignment_id, a.support_files)
    (scratch / "source" / a.assignment_id).mkdir(parents=True, exist_ok=True)
    _write_files(scratch / "submitted" / sid / a.assignment_id, task.files)
    run_key = str(scratch)
    cfg = _config(task, scratch, db_url, run_key, deadline)

    coursedir = CourseDirectory(config=cfg, log=log)
    app = Autograde(coursedir=coursedir, config=cfg, log=log)
    app.force = True
    app.create_student = True
    failure = None
    phases = {}
    t0 = time.monotonic()
    try:
        app.start()
    except Exception as exc:  # nbgrader reports per-submission failures this way
        failure = f"{exc.__class__.__name__}: {exc}"
    runs = outcome(run_key)
    phases["autograde"] = time.monotonic() - t0

    out_dir = scratch / "autograded" / sid / a.assignment_id
    graded = {}
    for nb_id in a.notebooks:
        path = out_dir / f"{nb_id}.ipynb"
        if path.exists():
            graded[nb_id] = nbformat.read(str(path), as_version=4)
    if len(graded) < len(a.notebooks):
        tail = [line for line in buffer.getvalue().splitlines() if "ERROR" in line][-3:]
        why = failure or "nbgrader did not produce an autograded notebook"
        result = _zero_result(task, model.ERROR, f"nbgrader could not grade it: {why} {' | '.join(tail)}".strip(),
                              started)
        result.log = buffer.getvalue()[-4000:]
        return result

    status, reasons = model.OK, []
    rank = {s: i for i, s in enumerate(model.STATUSES)}
    for run in runs:
        if rank[run["status"]] > rank[status]:
            status = run["status"]
        if run["reason"]:
            reasons.append(run["reason"])

    # nbgrader's scores, then the judge's.
    scores: list[CellScore] = []
    comments: dict = {}
    with Gradebook(db_url, a.course_id) as gb:
        found = {}
        for nb_id in a.notebooks:
            snb = gb.find_submission_notebook(nb_id, a.assignment_id, sid)
            for grade in snb.grades:
                found[(nb_id, grade.name)] = grade.auto_score
            for comment in snb.comments:
                comments[(nb_id, comment.name)] = comment.auto_comment
    why_cell = {}
    for nb_id, nb in graded.items():
        for cell in nb.cells:
            gid = cell.metadata.get("nbgrader", {}).get("grade_id")
            errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            if gid and errors:
                e = errors[-1]
                why_cell[(nb_id, gid)] = (e.get("evalue", "") if e.get("ename") == NOT_RUN
                                          else f"{e.get('ename', 'Error')}: {e.get('evalue', '')}"[:200])
    for nb_id, grade_id, max_score in a.grade_cells:
        auto = found.get((nb_id, grade_id))
        why = "" if auto is None or auto >= max_score else why_cell.get((nb_id, grade_id), "the test cell failed")
        scores.append(CellScore(grade_id=grade_id, notebook=nb_id, score=auto, max_score=max_score,
                                nbgrader_score=auto, reason=why))

    t0 = time.monotonic()
    judges = judge_module()
    judged = False
    if judges is not None:
        by_id = {(s.notebook, s.grade_id): s for s in scores}
        try:
            for nb_id, nb in graded.items():
                verdicts = judges.judge_notebook(nb, **_judge_kwargs(judges, task))
                for grade_id, verdict in verdicts.items():
                    cell = by_id.get((nb_id, grade_id))
                    if cell is None:
                        continue
                    score, _, why = _verdict_fields(verdict)
                    cell.score = float(score)
                    ran = why_cell.get((nb_id, grade_id), "")
                    if cell.score >= cell.max_score:
                        cell.reason = ""
                    elif ran and any(r and r in ran for r in reasons):
                        cell.reason = ran  # it never ran: say why, not "no evidence"
                    else:
                        cell.reason = why or ran or "the check failed"
            judged = True
        except Exception as exc:
            # nbgrader's scores were made inside the student's kernel and can be forged: never fall back
            # to them. The submission is recorded as a grader error (exit 1) with every cell at 0.
            status = model.ERROR
            why = f"the judge failed ({exc.__class__.__name__}: {exc}); scores withheld (0) until regraded"
            reasons.append(why)
            for s in scores:
                s.score, s.reason = 0.0, why
        if judged or status == model.ERROR:
            with Gradebook(db_url, a.course_id) as gb:
                for s in scores:
                    grade = gb.find_grade(s.grade_id, s.notebook, a.assignment_id, sid)
                    grade.auto_score = s.score
                gb.db.commit()

    # Cells that could not run lose their points for that reason.
    if status != model.OK:
        for s in scores:
            if s.score is not None and s.score < s.max_score and not s.reason:
                s.reason = "; ".join(reasons)

    phases["judge"] = time.monotonic() - t0
    t0 = time.monotonic()
    feedback = {}
    if task.feedback:
        fb = GenerateFeedback(coursedir=coursedir, config=cfg, log=log)
        fb.force = True
        try:
            fb.start()
            feedback = _read_tree(scratch / "feedback" / sid / a.assignment_id)
        except Exception as exc:
            reasons.append(f"no feedback file ({exc.__class__.__name__})")

    return Result(
        student_id=sid, assignment_id=a.assignment_id, submission_hash=task.submission_hash,
        assignment_version=a.version, status=status, reason="; ".join(reasons),
        scores=scores, comments=comments, autograded=_read_tree(out_dir), feedback=feedback,
        timestamp=task.timestamp, seconds=time.monotonic() - started,
        kernel_start=sum(r["kernel_start"] for r in runs),
        cell_seconds=sum(r["cell_seconds"] for r in runs),
        judged=judged, log=buffer.getvalue()[-4000:], phases={**phases, "feedback": time.monotonic() - t0},
    )

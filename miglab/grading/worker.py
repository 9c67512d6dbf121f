"""Grade one submission: ``grade_submission(task) -> Result``.

A pure function as far as the course is concerned: it reads nothing but its
:class:`~miglab.grading.model.Task` and writes nothing but a private scratch
course, which it deletes. Its stages, each with typed inputs and outputs:

1. **read** (:mod:`~miglab.grading.submission`): each notebook parsed and its
   nbgrader cells repaired, or the submission refused (``malformed``,
   ``too_large``, ``missing``);
2. **autograde** (:mod:`~miglab.grading.autograde`): real nbgrader in the
   scratch course, kernels sandboxed → :class:`AutogradeRun`;
3. **judge** (:mod:`~miglab.grading.judge`): the judged cells scored outside
   the kernel from their evidence; the rest keep nbgrader's in-kernel score,
   labelled so → :class:`Judgement`;
4. **feedback**: nbgrader's feedback page, with verdicts and without hidden tests;
5. the :class:`~miglab.grading.model.Result` the coordinator records.

Because workers share nothing, any executor can run this function: a
process pool here, Dask workers on other machines.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from . import model
from .autograde import AutogradeRun, ScratchCourse, fast_scratch_sqlite
from .execute import NOT_RUN
from .model import CellScore, Result, Task
from .submission import NotebookReading, NotebookRefused, read_notebook


class WallClockAlarm(BaseException):
    """Raised in the worker when a submission overruns its hard limit (last resort)."""


@dataclass
class Judgement:
    """Stage 3's answer: every graded cell's score and who decided it."""

    scores: list = field(default_factory=list)  # CellScore, in the assignment's order
    judged: bool = False
    review: list = field(default_factory=list)  # flags for the instructor
    log: list = field(default_factory=list)


def grade_submission(task: Task) -> Result:
    """Grade one student's submission in a private scratch course; never raises for a student's input."""
    started = time.monotonic()
    fast_scratch_sqlite()
    try:
        readings = read_notebooks(task)
    except NotebookRefused as refused:
        return zero_result(task, refused.status, str(refused), started)
    result = _attempt(task, readings, started)
    if result.status == model.KERNEL_FAILED:
        # No student code ran: the kernel failed to start (a machine hiccup). Try once more.
        time.sleep(1.0)
        result = _attempt(task, readings, started)
    return result


# -------------------------------------------------------------------- 1. read


def read_notebooks(task: Task) -> dict[str, NotebookReading]:
    """Every notebook of the assignment, parsed and repaired (NotebookRefused when one cannot be)."""
    readings = {}
    skipped = dict(task.skipped)
    for nb_id in task.assignment.notebooks:
        name = f"{nb_id}.ipynb"
        data = task.files.get(name)
        if data is None and name in skipped:  # there, but not read: a link, a device, too big
            status = model.TOO_LARGE if skipped[name].startswith("larger than") else model.MISSING
            raise NotebookRefused(status, f"{name} was not read: {skipped[name]}")
        if data is None:
            raise NotebookRefused(model.MISSING, f"{name} was not submitted")
        readings[nb_id] = read_notebook(data, task.assignment.cells.get(nb_id, ()), f"{nb_id}.ipynb")
    return readings


# ------------------------------------------------------------------ the stages


def _attempt(task: Task, readings: dict[str, NotebookReading], started: float) -> Result:
    notes = [*task.notes, *(n for r in readings.values() for n in r.notes)]
    disarm = _hard_alarm(task.limits.wall + task.limits.startup + 30)
    course = None
    try:
        if task.kernel.sandboxed:  # a warm kernel's zygote imports while nbgrader lays out and sanitizes
            from ..sandbox.kernel import prestart_zygote

            prestart_zygote(task.kernel.manager_kwargs)
        with ScratchCourse(task, {nb: r.data() for nb, r in readings.items()}) as course:
            run = course.autograde(deadline=time.time() + task.limits.wall)
            if len(run.notebooks) < len(task.assignment.notebooks):
                why = run.failure or "nbgrader did not produce an autograded notebook"
                return zero_result(
                    task,
                    model.ERROR,
                    f"nbgrader could not grade it: {why}",
                    started,
                    log=course.log_text(),
                    notes=notes,
                )
            return _graded(task, course, run, readings, notes, started)
    except WallClockAlarm:
        return zero_result(
            task,
            model.WALL_LIMIT,
            "the submission overran its wall-clock limit",
            started,
            log=course.log_text() if course else "",
            notes=notes,
        )
    except Exception as exc:  # noqa: BLE001 - a grader failure: recorded with its traceback, never fatal for the class
        log = (course.log_text() if course else "") + "\n" + traceback.format_exc()
        return zero_result(
            task, model.ERROR, f"the grader failed: {type(exc).__name__}: {exc}", started, log=log, notes=notes
        )
    finally:
        disarm()


def _graded(
    task: Task,
    course: ScratchCourse,
    run: AutogradeRun,
    readings: dict[str, NotebookReading],
    notes: list[str],
    started: float,
) -> Result:
    """The result of a submission nbgrader ran: judged outside the kernel, recorded, with feedback."""
    status, reasons = _run_status(run, readings)
    judgement = judge(task, run, reasons)
    if not judgement.judged and _has_judged_cells(task):
        status = model.ERROR
    course.record_scores(judgement.scores, notes, run)
    feedback = _feedback(course, task, reasons)
    return Result(
        student_id=task.student_id,
        assignment_id=task.assignment.assignment_id,
        submission_hash=task.submission_hash,
        assignment_version=task.assignment.version,
        status=status,
        reason=_main_reason(status, reasons, judgement),
        scores=judgement.scores,
        comments=run.comments,
        autograded=course.autograded_files(),
        feedback=feedback,
        timestamp=task.timestamp,
        notes=notes,
        review=judgement.review,
        seconds=time.monotonic() - started,
        kernel_start=sum(r["kernel_start"] for r in run.runs),
        cell_seconds=sum(r["cell_seconds"] for r in run.runs),
        judged=judgement.judged,
        phases={"autograde": run.seconds},
        log="\n".join([course.log_text(), *judgement.log]),
    )


def _run_status(run: AutogradeRun, readings: dict[str, NotebookReading]) -> tuple[str, list[str]]:
    """The worst status of the notebooks' runs, and every reason given."""
    status = model.TAMPERED if any(r.tampered for r in readings.values()) else model.OK
    reasons = []
    rank = {s: i for i, s in enumerate(model.STATUSES)}
    for r in run.runs:
        if rank[r["status"]] > rank[status]:
            status = r["status"]
        if r["reason"]:
            reasons.append(r["reason"])
    return status, reasons


def _has_judged_cells(task: Task) -> bool:
    return any(c.get("calls") for c in task.assignment.plan.get("cells", []))


def _main_reason(status: str, reasons: list[str], judgement: Judgement) -> str:
    if status == model.ERROR:
        return next((line for line in judgement.log if line.startswith("the judge failed")), "the judge failed")
    if status == model.TAMPERED and not reasons:
        return "nbgrader settings of some cells were changed or added; they were put back (see the notes)"
    return "; ".join(reasons)


# ------------------------------------------------------------------- 3. judge


def judge(task: Task, run: AutogradeRun, reasons: list[str]) -> Judgement:
    """Every graded cell's score: the judge's for judged cells, nbgrader's (labelled) for the rest."""
    from .judge import judge_notebook
    from .scan import scan_sources

    plan, rules = _plan_and_rules(task)
    scan = scan_sources(
        [c.source for nb in run.notebooks.values() for c in nb.cells if c.cell_type == "code" and _students_code(c)]
    )
    judgement = Judgement(review=scan.review_flags(), judged=not any(c.judged for c in plan.cells))
    verdicts: dict = {}
    if judgement.judged:  # nothing to judge: every cell keeps nbgrader's in-kernel score
        judgement.scores = _scores(task, run, plan, verdicts, reasons, True)
        return judgement
    try:
        with _judge_context(task.kernel) as context:
            for nb_id, nb in run.notebooks.items():
                for gid, v in judge_notebook(nb, nb_id, plan, rules, context, scan).items():
                    verdicts[(nb_id, gid)] = v
        judgement.judged = True
    except Exception as exc:  # noqa: BLE001 - the judge itself broke: scores withheld, never the kernel's as a fall-back
        judgement.log.append(
            f"the judge failed ({type(exc).__name__}: {exc}); scores withheld (0) until "
            f"regraded\n{traceback.format_exc()}"
        )
    judgement.scores = _scores(task, run, plan, verdicts, reasons, judgement.judged)
    judgement.log += [line for v in verdicts.values() for line in v.log]
    return judgement


def _students_code(cell: Any) -> bool:
    meta = cell.metadata.get("nbgrader", {})
    return bool(meta.get("solution")) or not meta.get("locked")


_prepared: dict[str, tuple] = {}


def _plan_and_rules(task: Task) -> tuple:
    """The assignment's plan and rule book, made once per process and assignment version."""
    from .plan import Plan
    from .rulebook import RuleBook

    a = task.assignment
    if a.version not in _prepared:
        rules = RuleBook(a.rules, origin=f"source/{a.assignment_id}/rules.py", assignment=a.assignment_id)
        _prepared[a.version] = (Plan.from_json(a.plan), rules)
    return _prepared[a.version]


def _judge_context(kernel: model.KernelOptions) -> contextlib.AbstractContextManager:
    """Sandboxed kernels: students' migrations run in the worker's judge sandbox; --unsafe: locally."""
    from .context import JudgeContext, local_runner, worker_sandbox

    if kernel.sandboxed:
        return worker_sandbox().student()
    return contextlib.nullcontext(JudgeContext(local_runner))


def _scores(
    task: Task, run: AutogradeRun, plan: Any, verdicts: dict, reasons: list[str], judged: bool
) -> list[CellScore]:
    why_not_run = _cell_errors(run)
    scores = []
    for nb_id, gid, max_score in task.assignment.grade_cells:
        auto = run.nbgrader_scores.get((nb_id, gid))
        cp = plan.cell(nb_id, gid)
        s = CellScore(grade_id=gid, notebook=nb_id, score=auto, max_score=max_score, nbgrader_score=auto)
        ran = why_not_run.get((nb_id, gid), "")
        if cp is not None and cp.judged:
            s.scored_by = model.BY_JUDGE
            v = verdicts.get((nb_id, gid))
            s.score = v.score if (judged and v is not None) else 0.0
            s.messages = list(v.messages) if v is not None else []
            s.reason = (
                ""
                if s.score >= max_score
                else (ran if ran and ran in reasons else (v.reason if v else "the judge failed"))
            )
        elif _manual(task, nb_id, gid):
            s.scored_by = model.BY_HAND
        else:
            s.score = auto if judged else 0.0
            s.reason = "" if (s.score or 0) >= max_score else (ran or "the test cell failed")
        if s.score is not None and s.score < max_score and not s.reason:
            s.reason = "; ".join(reasons)
        scores.append(s)
    return scores


def _manual(task: Task, nb_id: str, gid: str) -> bool:
    return any(c.grade_id == gid and c.grade and c.solution for c in task.assignment.cells.get(nb_id, ()))


def _cell_errors(run: AutogradeRun) -> dict:
    """(notebook, grade_id) -> why the cell failed: our not-run note, or the error's name and message."""
    out = {}
    for nb_id, nb in run.notebooks.items():
        for cell in nb.cells:
            gid = cell.metadata.get("nbgrader", {}).get("grade_id")
            errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            if gid and errors:
                e = errors[-1]
                out[(nb_id, gid)] = (
                    e.get("evalue", "")
                    if e.get("ename") == NOT_RUN
                    else f"{e.get('ename', 'Error')}: {e.get('evalue', '')}"[:200]
                )
    return out


# ---------------------------------------------------------------- 4. feedback


def _feedback(course: ScratchCourse, task: Task, reasons: list[str]) -> dict:
    if not task.feedback:
        return {}
    try:
        return course.feedback()
    except Exception as exc:  # noqa: BLE001 - a page that could not be made: said, and logged
        reasons.append(f"no feedback file ({type(exc).__name__})")
        course.log.error("feedback failed:\n%s", traceback.format_exc())
        return {}


# -------------------------------------------------------------------- results


def zero_result(
    task: Task, status: str, reason: str, started: float, *, log: str = "", notes: list | None = None
) -> Result:
    """A submission that could not be graded: 0 everywhere, a reason, and a plain feedback page."""
    a = task.assignment
    return Result(
        student_id=task.student_id,
        assignment_id=a.assignment_id,
        submission_hash=task.submission_hash,
        assignment_version=a.version,
        status=status,
        reason=reason,
        timestamp=task.timestamp,
        notes=list(notes or task.notes),
        scores=[CellScore(grade_id=g, notebook=n, score=0.0, max_score=m, reason=reason) for n, g, m in a.grade_cells],
        feedback={f"{n}.html": plain_feedback(task, n, status, reason) for n in a.notebooks} if task.feedback else {},
        seconds=time.monotonic() - started,
        log=log,
    )


def plain_feedback(task: Task, notebook: str, status: str, reason: str) -> bytes:
    import html

    a = task.assignment
    total = sum(m for n, _, m in a.grade_cells if n == notebook)
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Feedback</title></head><body>"
        f"<h1>{html.escape(a.assignment_id)} / {html.escape(notebook)}: feedback for "
        f"{html.escape(task.student_id)}</h1>"
        f"<p><strong>Score: 0 / {total:g}</strong></p>"
        f"<p>Your submission could not be graded ({html.escape(status)}): {html.escape(reason)}.</p>"
        "<p>Submit the notebook file itself (File &rarr; Save, then upload the .ipynb) and ask your instructor "
        "to grade it again.</p></body></html>"
    ).encode()


def _hard_alarm(seconds: float):
    """Arm SIGALRM when running in a main thread (a process pool); otherwise do nothing."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        return lambda: None

    def handler(signum: int, frame: Any) -> None:
        raise WallClockAlarm()

    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)

    def disarm() -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

    return disarm

"""Grade every submission of an assignment: many workers, one gradebook writer.

``grade_assignment`` prepares the assignment from ``source/``, finds
``submitted/<student>/<assignment>/``, reads each folder safely
(:mod:`~miglab.grading.collect`), skips students whose submission and
assignment are unchanged since their last recorded result, and hands one
:class:`Task` per student to an executor (anything with ``submit(fn, arg)``
returning futures with ``add_done_callback``: a process pool by default, a
``dask.distributed.Client`` works the same way). Workers never touch the
course; as each result comes back, this process alone writes it (files, then
one gradebook transaction), so a student is never graded by two processes
and an interruption loses at most the students in flight.
"""

from __future__ import annotations

import hashlib
import os
import queue
import signal
import sys
import threading
import time
from collections import Counter
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import model
from .assignment import ensure_tools_on_path, load_course_config, prepare
from .collect import read_submission, submission_time
from .gradebook import GradebookWriter, remove_assignment, sync_gradebook
from .model import AssignmentInfo, KernelOptions, Result, Task, TimeLimits
from .pool import local_executor, stop_fork_server, stop_workers, warm_up_workers
from .worker import grade_submission, zero_result


@dataclass
class Summary:
    assignment: str
    total: int = 0  # submissions found
    graded: int = 0  # graded in this run
    skipped: int = 0  # unchanged since their last result
    seconds: float = 0.0
    workers: int = 0
    statuses: Counter = field(default_factory=Counter)
    results: list = field(default_factory=list)
    scored_in_kernel: list = field(default_factory=list)  # grade ids nbgrader's in-kernel result decides
    csv: Path | None = None
    chart: Path | None = None
    logs: Path | None = None
    interrupted: bool = False

    def text(self) -> str:
        lines = [
            f"{self.assignment}: {self.total} submissions; graded {self.graded} in {self.seconds:.1f} s "
            f"with {self.workers} workers; {self.skipped} unchanged (skipped)."
        ]
        if self.statuses:
            lines.append("  status: " + ", ".join(f"{k} {v}" for k, v in sorted(self.statuses.items())))
        if self.scored_in_kernel:
            lines.append(
                "  scored in the kernel by nbgrader (asserts; forgeable by the student's code): "
                + ", ".join(self.scored_in_kernel)
            )
        lines += self._figures()
        for r in self.results:
            if r.status != model.OK:
                lines.append(f"  {r.student_id}: {r.status}: {r.reason.splitlines()[0] if r.reason else ''}")
        for label, path in (("grades CSV", self.csv), ("score chart", self.chart), ("logs", self.logs)):
            if path:
                lines.append(f"  {label}: {path}")
        if self.interrupted:
            lines.append("  interrupted: run the same command again to finish the class.")
        return "\n".join(lines)

    def _figures(self) -> list[str]:
        if not self.results:
            return []
        mean = sum(r.total for r in self.results) / len(self.results)
        lines = [f"  mean score of this run: {mean:.2f} / {self.results[0].max_total:g}"]
        ran = [r for r in self.results if r.status not in model.NOT_RUN]
        if ran:
            k = sum(r.kernel_start for r in ran) / len(ran)
            c = sum(r.cell_seconds for r in ran) / len(ran)
            w = sum(r.seconds for r in ran) / len(ran)
            lines.append(f"  per submission: {w:.2f} s in the worker (kernel start {k:.2f} s + cells {c:.2f} s)")
        return lines


def content_hash(files: dict) -> str:
    h = hashlib.sha256()
    for rel in sorted(files):
        h.update(rel.encode() + b"\0" + hashlib.sha256(files[rel]).digest())
    return h.hexdigest()[:32]


def discover(root: Path, assignment: str, students: list[str] | None = None) -> list[tuple[str, Path]]:
    """``(student, folder)`` for every ``submitted/<student>/<assignment>/`` (links included, never followed)."""
    base = Path(root) / "submitted"
    found = []
    if base.is_dir() and not base.is_symlink():
        for d in sorted(base.iterdir()):
            folder = d / assignment
            if (
                (not students or d.name in students)
                and not d.is_symlink()
                and d.is_dir()
                and (folder.is_symlink() or folder.is_dir())
            ):
                found.append((d.name, folder))
    return found


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def default_kernel(unsafe: bool = False, check: bool = True) -> KernelOptions:
    """Kernels in the sandbox (:func:`miglab.sandbox.kernel.grading_kernel`), which refuses when
    isolation is not available here unless ``unsafe=True`` (the ``--unsafe`` flag: plain local kernels).
    ``check=False``: the kernels run elsewhere (Dask workers), whose isolation is checked there."""
    from ..sandbox.kernel import grading_kernel

    return KernelOptions() if unsafe else KernelOptions(**grading_kernel(check=check))


def _preload_chart() -> None:
    from .reports import pyplot

    try:
        pyplot()
    except Exception:  # noqa: BLE001 - the report says so later, if it matters
        return


@dataclass
class _Options:
    limits: TimeLimits
    kernel: KernelOptions
    feedback: bool
    force: bool


def grade_assignment(
    root: Any,
    assignment: str,
    *,
    db_url: str | None = None,
    workers: int | None = None,
    executor: Any = None,
    force: bool = False,
    students: list[str] | None = None,
    limits: TimeLimits | None = None,
    kernel: KernelOptions | None = None,
    progress: bool = True,
    feedback: bool = True,
    reports: bool = True,
    rebuild_gradebook: bool = False,
) -> Summary:
    """Grade all (new or changed) submissions of ``assignment`` in the course at ``root``."""
    root = Path(root).resolve()
    ensure_tools_on_path()  # nbgrader's Gradebook runs `alembic` when it makes a new database
    config = load_course_config(root)
    db_url = db_url or config.get("CourseDirectory", {}).get("db_url") or f"sqlite:///{root / 'gradebook.db'}"
    if executor is None:
        warm_up_workers()
    try:
        summary, info = _grade_class(
            root,
            assignment,
            config,
            db_url,
            executor,
            workers,
            rebuild_gradebook,
            students,
            progress,
            reports,
            _Options(limits or _course_limits(config), kernel or default_kernel(), feedback, force),
        )
    finally:
        if executor is None:  # our pool's fork server ends with the run that started it
            stop_fork_server()
    summary.results.sort(key=lambda r: r.student_id)
    if not summary.interrupted:
        summary.logs = _write_logs(root / "reports" / assignment / "logs", summary.results)
        if reports:
            from .reports import write_reports

            summary.csv, summary.chart = write_reports(
                db_url, info.course_id, assignment, root / "reports" / assignment
            )
    return summary


def _grade_class(
    root: Path,
    assignment: str,
    config: dict,
    db_url: str,
    executor: Any,
    workers: int | None,
    rebuild: bool,
    students: list[str] | None,
    progress: bool,
    reports: bool,
    opts: _Options,
) -> tuple[Summary, AssignmentInfo]:
    """Prepare the assignment and the gradebook, then grade every new or changed submission."""
    info = prepare(root, assignment, config=config)
    if rebuild:
        remove_assignment(db_url, info.course_id, assignment)
    sync_gradebook(db_url, info, root)
    summary = Summary(assignment=assignment)
    summary.scored_in_kernel = _in_kernel_cells(info)
    started = time.monotonic()
    found = discover(root, assignment, students)
    summary.total = len(found)
    with GradebookWriter(db_url, info.course_id, root) as writer:
        tasks = _tasks(root, info, found, writer, opts, summary)
        _ClassRun(writer, summary, executor, workers, progress).grade(tasks, reports)
    summary.seconds = time.monotonic() - started
    return summary, info


def _course_limits(config: dict) -> TimeLimits:
    timeout = config.get("Execute", {}).get("timeout") or config.get("ExecutePreprocessor", {}).get("timeout")
    return TimeLimits(cell_timeout=float(timeout or 60))


def _in_kernel_cells(info: AssignmentInfo) -> list[str]:
    judged = {(c["notebook"], c["grade_id"]) for c in info.plan.get("cells", []) if c.get("calls")}
    manual = {(nb, c.grade_id) for nb, cells in info.cells.items() for c in cells if c.grade and c.solution}
    return [gid for nb, gid, _ in info.grade_cells if (nb, gid) not in judged | manual]


def _tasks(
    root: Path, info: AssignmentInfo, found: list, writer: GradebookWriter, opts: _Options, summary: Summary
) -> list[Task]:
    """One task per new or changed submission; folders that cannot be read become results now."""
    ledger = writer.ledger(info.assignment_id)
    tasks = []
    for sid, folder in found:
        collected, notes, refusal = _read(folder, root / "submitted")
        if refusal is not None:
            _record(writer, summary, _refused(sid, info, *refusal, notes))
            continue
        digest = content_hash(collected.files)
        if not opts.force and _current(ledger.get(sid), digest, info, root, sid, opts.feedback):
            summary.skipped += 1
            continue
        stamp, stamp_note = submission_time(collected, folder)
        notes += [stamp_note] if stamp_note else []
        tasks.append(
            Task(
                student_id=sid,
                assignment=info,
                files=collected.files,
                submission_hash=digest,
                limits=opts.limits,
                kernel=opts.kernel,
                timestamp=stamp,
                feedback=opts.feedback,
                notes=tuple(notes),
                skipped=tuple(collected.skipped),
            )
        )
    return tasks


def _read(folder: Path, base: Path) -> tuple[Any, list[str], tuple[str, str] | None]:
    """A submission folder read safely: (what was read, notes for the student, refusal or None)."""
    collected = read_submission(folder, base=base)
    notes = [f"{path} was not read: {why}" for path, why in collected.skipped]
    if collected.refused:
        return collected, notes, (model.MISSING, f"the submission could not be read: {collected.refused}")
    if collected.too_large:
        return collected, notes, (model.TOO_LARGE, collected.too_large)
    return collected, notes, None


def _refused(sid: str, info: AssignmentInfo, status: str, reason: str, notes: list) -> Result:
    task = Task(student_id=sid, assignment=info, files={}, submission_hash="-", notes=tuple(notes))
    return zero_result(task, status, reason, time.monotonic())


def _current(row: dict | None, digest: str, info: AssignmentInfo, root: Path, sid: str, feedback: bool) -> bool:
    if row is None or row["submission_hash"] != digest or row["assignment_version"] != info.version:
        return False
    return not feedback or all(
        (root / "feedback" / sid / info.assignment_id / f"{n}.html").exists() for n in info.notebooks
    )


def _record(writer: GradebookWriter, summary: Summary, result: Result) -> None:
    writer.record(result)
    summary.graded += 1
    summary.statuses[result.status] += 1
    summary.results.append(result)


class _ClassRun:
    """Feeds tasks to the executor, takes results as they come, records each at once."""

    def __init__(self, writer: GradebookWriter, summary: Summary, executor: Any, workers: int | None, progress: bool):
        self.writer, self.summary = writer, summary
        self.executor, self.own_executor = executor, executor is None
        self.workers_wanted, self.progress = workers, progress
        self.done: queue.Queue = queue.Queue()
        self.pending: list[Task] = []
        self.in_flight: dict[str, tuple] = {}  # student -> (task, future): only that future's answer counts
        self.attempts: Counter = Counter()

    def grade(self, tasks: list[Task], reports: bool) -> None:
        from tqdm import tqdm

        n = max(1, min(self._width(), len(tasks) or 1))
        self.summary.workers, self.n_workers = n, n
        self.pending = list(reversed(tasks))
        self.bar = tqdm(
            total=len(tasks),
            desc=f"grading {self.summary.assignment}",
            unit="sub",
            disable=not self.progress or not tasks,
            file=sys.stderr,
            dynamic_ncols=True,
        )
        if not tasks:
            self.bar.close()
            return
        if self.own_executor:
            self.executor = local_executor(n)
        if reports:  # the chart's matplotlib loads while the workers grade, not after the last student
            threading.Thread(target=_preload_chart, daemon=True).start()
        previous = signal.signal(signal.SIGTERM, _raise_interrupt) if _main_thread() else None
        try:
            self._loop()
        except KeyboardInterrupt:
            self.summary.interrupted = True
            if self.own_executor and self.executor is not None:
                stop_workers(self.executor)
                self.executor = None
            for _, fut in self.in_flight.values():  # someone else's executor (Dask): our work stops
                fut.cancel()
        finally:
            self.bar.close()
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            if self.own_executor and self.executor is not None:
                self.executor.shutdown(wait=True)

    def _width(self) -> int:
        """Tasks that run at once: the pool's workers, or what the executor says it runs (a Dask cluster)."""
        if not self.own_executor and getattr(self.executor, "workers", None):
            return int(self.executor.workers)
        return self.workers_wanted or default_workers()

    def _loop(self) -> None:
        self._submit_more()
        while self.in_flight:
            task, fut = self.done.get()
            if self.in_flight.get(task.student_id, (None, None))[1] is not fut:
                continue  # an answer from a pool that was replaced
            del self.in_flight[task.student_id]
            result = self._result_of(task, fut)
            if result is not None:
                self._take(result)
            self._submit_more()

    def _submit_more(self) -> None:
        while self.pending and len(self.in_flight) < 2 * self.n_workers:
            task = self.pending.pop()
            self.attempts[task.student_id] += 1
            fut = self.executor.submit(grade_submission, task)
            self.in_flight[task.student_id] = (task, fut)
            fut.add_done_callback(lambda f, t=task: self.done.put((t, f)))

    def _result_of(self, task: Task, fut: Any) -> Result | None:
        try:
            return fut.result()
        except BrokenProcessPool:
            return self._after_crash(task)
        except Exception as exc:  # noqa: BLE001 - a worker (a Dask worker, say) failed outside grade_submission
            lost = getattr(self.executor, "lost", None)
            if lost is not None and lost(exc):  # its worker died: Dask gave up on it, we try once more
                return self._after_crash(task)
            return zero_result(task, model.ERROR, f"the grader failed: {type(exc).__name__}: {exc}", time.monotonic())

    def _after_crash(self, task: Task) -> Result | None:
        """A worker process died (not a kernel: the grader). New pool (ours); the student once more.

        Another executor (Dask) replaces its own workers and re-runs their other tasks itself."""
        if self.own_executor:
            stop_workers(self.executor)
            self.executor = local_executor(self.n_workers)
            self.pending += [other for other, _ in self.in_flight.values()]
            self.in_flight.clear()
        if self.attempts[task.student_id] < 2:
            self.pending.append(task)
            return None
        return zero_result(task, model.ERROR, "the grading process crashed twice", time.monotonic())

    def _take(self, result: Result) -> None:
        _record(self.writer, self.summary, result)
        if result.status != model.OK:
            first = result.reason.splitlines()[0] if result.reason else ""
            self.bar.write(f"{result.student_id}: {result.status}: {first}")
        self.bar.set_postfix_str(f"last {result.student_id} {result.total:g}/{result.max_total:g}", refresh=False)
        self.bar.update(1)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _write_logs(folder: Path, results: list[Result]) -> Path:
    """One log per student graded in this run: status, reason, notes, nbgrader's log and tracebacks."""
    folder.mkdir(parents=True, exist_ok=True)
    for r in results:
        text = "\n".join(
            [
                f"student: {r.student_id}",
                f"status: {r.status}",
                f"reason: {r.reason}",
                *(f"note: {n}" for n in r.notes),
                *(f"review: {f}" for f in r.review),
                "",
                r.log,
            ]
        )
        path = folder / f"{r.student_id}.log"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
    return folder

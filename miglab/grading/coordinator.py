"""Grade every submission of an assignment: many workers, one gradebook writer.

``grade_assignment`` finds ``submitted/<student>/<assignment>/``, skips
students whose submission and assignment are unchanged since their last
recorded result, and hands one :class:`Task` per student to an executor
(anything with ``submit(fn, arg)`` returning futures with
``add_done_callback``: a ``concurrent.futures.ProcessPoolExecutor`` by
default, a ``dask.distributed.Client`` works the same way). Workers never
touch the course; as each result comes back, this process alone writes it
(files, then one gradebook transaction), so a student is never graded by two
processes and an interruption loses at most the students in flight.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from . import model
from .assignment import load_course_config, prepare, sync_gradebook
from .gradebook import GradebookWriter
from .model import KernelOptions, Limits, Result, Task
from .worker import _zero_result, grade_submission, quiet_worker

MAX_SUBMISSION_BYTES = 50 * 1024 * 1024


@dataclass
class Summary:
    assignment: str
    total: int = 0                    # submissions found
    graded: int = 0                   # graded in this run
    skipped: int = 0                  # unchanged since their last result
    seconds: float = 0.0
    workers: int = 0
    statuses: Counter = field(default_factory=Counter)
    results: list = field(default_factory=list)
    csv: Path | None = None
    chart: Path | None = None
    interrupted: bool = False

    def text(self) -> str:
        lines = [f"{self.assignment}: {self.total} submissions; graded {self.graded} in {self.seconds:.1f} s "
                 f"with {self.workers} workers; {self.skipped} unchanged (skipped)."]
        if self.statuses:
            lines.append("  status: " + ", ".join(f"{k} {v}" for k, v in sorted(self.statuses.items())))
        if self.results:
            mean = sum(r.total for r in self.results) / len(self.results)
            lines.append(f"  mean score of this run: {mean:.2f} / {self.results[0].max_total:g}")
            run = [r for r in self.results if r.status not in (model.MALFORMED, model.MISSING)]
            if run:
                k = sum(r.kernel_start for r in run) / len(run)
                c = sum(r.cell_seconds for r in run) / len(run)
                w = sum(r.seconds for r in run) / len(run)
                lines.append(f"  per submission: {w:.2f} s in the worker (kernel start {k:.2f} s + cells {c:.2f} s)")
        for r in self.results:
            if r.status != model.OK:
                lines.append(f"  {r.student_id}: {r.status}: {r.reason}")
        if self.csv:
            lines.append(f"  grades CSV: {self.csv}")
        if self.chart:
            lines.append(f"  score chart: {self.chart}")
        if self.interrupted:
            lines.append("  interrupted: run the same command again to finish the class.")
        return "\n".join(lines)


def submission_files(folder: Path) -> dict:
    """{relative path: bytes} of one submission folder (checkpoints and caches left out)."""
    out, size = {}, 0
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if not p.is_file() or any(part in (".ipynb_checkpoints", "__pycache__") for part in rel.parts):
            continue
        size += p.stat().st_size
        if size > MAX_SUBMISSION_BYTES:
            raise ValueError(f"the submission is larger than {MAX_SUBMISSION_BYTES // 2**20} MB")
        out[rel.as_posix()] = p.read_bytes()
    return out


def content_hash(files: dict) -> str:
    h = hashlib.sha256()
    for rel in sorted(files):
        h.update(rel.encode() + b"\0" + hashlib.sha256(files[rel]).digest())
    return h.hexdigest()[:32]


def discover(root: Path, assignment: str, students=None) -> list[tuple[str, Path]]:
    base = Path(root) / "submitted"
    found = []
    if base.is_dir():
        for d in sorted(base.iterdir()):
            if d.is_dir() and (d / assignment).is_dir() and (not students or d.name in students):
                found.append((d.name, d / assignment))
    return found


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def default_kernel(unsafe: bool = False) -> KernelOptions:
    """How kernels start: in the sandbox (``miglab.grading.sandbox.grading_kernel``), which refuses
    when isolation is not available unless ``unsafe=True`` (the ``--unsafe`` flag)."""
    try:
        from .sandbox import grading_kernel
    except ImportError:
        return KernelOptions()
    return grading_kernel(unsafe=unsafe)


def warm_up_workers() -> None:
    """Start the fork server now: it imports nbgrader, nbconvert and the judge while we prepare."""
    _forkserver_context()
    from multiprocessing import forkserver

    forkserver.ensure_running()


def local_executor(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=workers, mp_context=_forkserver_context(), initializer=quiet_worker)


def _forkserver_context():
    ctx = multiprocessing.get_context("forkserver")
    # Imports, Django's set-up and the judge's random cases: paid once in the fork server, while the
    # coordinator prepares the assignment, instead of once per worker on its first student.
    ctx.set_forkserver_preload(["miglab.grading.preload"])
    return ctx


def _stop_workers(executor) -> None:
    processes = getattr(executor, "_processes", None) or {}
    for p in list(processes.values()):
        try:
            p.terminate()
        except Exception:
            pass
    try:
        executor.shutdown(wait=False, cancel_futures=True)
    except TypeError:
        executor.shutdown(wait=False)
    except Exception:
        pass


def _preload_chart() -> None:
    from .reports import pyplot

    try:
        pyplot()
    except Exception:  # the report says so later, if it matters
        pass


def grade_assignment(root, assignment: str, *, db_url: str | None = None, workers: int | None = None,
                     executor=None, force: bool = False, students=None, limits: Limits | None = None,
                     kernel: KernelOptions | None = None, progress: bool = True, feedback: bool = True,
                     reports: bool = True, out=sys.stdout) -> Summary:
    """Grade all (new or changed) submissions of ``assignment`` in the course at ``root``."""
    from tqdm import tqdm

    root = Path(root).resolve()
    config = load_course_config(root)
    cd = config.get("CourseDirectory", {})
    db_url = db_url or cd.get("db_url") or f"sqlite:///{root / 'gradebook.db'}"
    if limits is None:
        timeout = config.get("Execute", {}).get("timeout") or config.get("ExecutePreprocessor", {}).get("timeout")
        limits = Limits(cell_timeout=float(timeout or 60))
    kernel = kernel or default_kernel()
    if executor is None:
        warm_up_workers()
    info = prepare(root, assignment, config=config)
    sync_gradebook(db_url, info, root)

    started = time.monotonic()
    summary = Summary(assignment=assignment)
    found = discover(root, assignment, students)
    summary.total = len(found)
    with GradebookWriter(db_url, info.course_id, root) as writer:
        ledger = writer.ledger(assignment)
        tasks: list[Task] = []
        failed: list[Result] = []
        for sid, folder in found:
            try:
                files = submission_files(folder)
            except (OSError, ValueError) as exc:
                failed.append(Result(student_id=sid, assignment_id=assignment, submission_hash="-",
                                     assignment_version=info.version, status=model.ERROR,
                                     reason=f"could not read the submission: {exc}"))
                continue
            digest = content_hash(files)
            row = ledger.get(sid)
            current = (row is not None and row["submission_hash"] == digest
                       and row["assignment_version"] == info.version
                       and all((root / "feedback" / sid / assignment / f"{n}.html").exists() or not feedback
                               for n in info.notebooks))
            if current and not force:
                summary.skipped += 1
                continue
            ts = files.get("timestamp.txt", b"").decode("utf-8", "replace").strip() or None
            tasks.append(Task(student_id=sid, assignment=info, files=files, submission_hash=digest,
                              limits=limits, kernel=kernel, timestamp=ts, feedback=feedback))
        for r in failed:
            writer.record(r)
            summary.statuses[r.status] += 1
            summary.results.append(r)
            summary.graded += 1

        n_workers = max(1, min(workers or default_workers(), len(tasks) or 1))
        summary.workers = n_workers
        bar = tqdm(total=len(tasks), desc=f"grading {assignment}", unit="sub", disable=not progress or not tasks,
                   file=sys.stderr, dynamic_ncols=True)
        own_executor = executor is None
        done_q: queue.Queue = queue.Queue()
        pending = list(reversed(tasks))
        in_flight: dict[str, tuple] = {}     # student -> (task, future): only that future's answer counts
        attempts: Counter = Counter()
        previous_term = signal.getsignal(signal.SIGTERM)

        def on_term(signum, frame):
            raise KeyboardInterrupt

        if own_executor and tasks:
            executor = local_executor(n_workers)
        if reports and tasks:
            # The chart's matplotlib (a third of a second to import) loads while the workers grade,
            # not after the last student.
            threading.Thread(target=_preload_chart, daemon=True).start()
        try:
            if tasks:
                signal.signal(signal.SIGTERM, on_term)

            def submit_more():
                while pending and len(in_flight) < 2 * n_workers:
                    t = pending.pop()
                    attempts[t.student_id] += 1
                    fut = executor.submit(grade_submission, t)
                    in_flight[t.student_id] = (t, fut)
                    fut.add_done_callback(lambda f, t=t: done_q.put((t, f)))

            submit_more()
            while in_flight:
                t, fut = done_q.get()
                if in_flight.get(t.student_id, (None, None))[1] is not fut:
                    continue  # an answer from a pool that was replaced
                del in_flight[t.student_id]
                try:
                    result = fut.result()
                except BrokenProcessPool:
                    # A worker process died (not a kernel: the grader itself). Start a new pool and
                    # try the student once more; a second death is recorded as an error.
                    if own_executor:
                        _stop_workers(executor)
                        executor = local_executor(n_workers)
                        for other, _ in list(in_flight.values()):
                            pending.append(other)
                        in_flight.clear()
                    if attempts[t.student_id] < 2:
                        pending.append(t)
                        submit_more()
                        continue
                    result = _zero_result(t, model.ERROR, "the grading process crashed twice", time.monotonic())
                except Exception as exc:
                    result = _zero_result(t, model.ERROR, f"the grader failed: {exc.__class__.__name__}: {exc}",
                                          time.monotonic())
                writer.record(result)
                summary.graded += 1
                summary.statuses[result.status] += 1
                summary.results.append(result)
                if result.status != model.OK:
                    bar.write(f"{result.student_id}: {result.status}: {result.reason}")
                bar.set_postfix_str(f"last {result.student_id} {result.total:g}/{result.max_total:g}", refresh=False)
                bar.update(1)
                submit_more()
        except KeyboardInterrupt:
            summary.interrupted = True
            if own_executor and executor is not None:
                _stop_workers(executor)
                executor = None
        finally:
            bar.close()
            if tasks:
                signal.signal(signal.SIGTERM, previous_term)
            if own_executor and executor is not None:
                executor.shutdown(wait=True)
    summary.results.sort(key=lambda r: r.student_id)
    summary.seconds = time.monotonic() - started
    if reports and not summary.interrupted:
        from .reports import write_reports

        summary.csv, summary.chart = write_reports(db_url, info.course_id, assignment, root / "reports" / assignment)
    return summary

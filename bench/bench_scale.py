"""Scale figures: grading throughput by executor, and what recording costs for a class of 10,000.

    .venv/bin/python bench/bench_scale.py throughput          # 1 and 2 local workers, a 2-worker LocalCluster
    .venv/bin/python bench/bench_scale.py throughput --n 30 --unsafe
    .venv/bin/python bench/bench_scale.py recording           # 100, 1,000 and 10,000 stub submissions
    .venv/bin/python bench/bench_scale.py recording --sizes 100 1000

**throughput**: the same class (bench_grading.py's: perfect, partial and blank
notebooks of deep_dive in turn, each with a data migration of its own) graded
three times in one run, each time in a fresh copy of the course: by the local
pool with 1 worker, with 2 workers, and on a Dask ``LocalCluster`` of 2 worker
processes (one thread each, no dashboard). The pool's fork server and the
cluster are started (and warmed) before their clocks start, as they would be
for a class of any size. Prints submissions per minute.

**recording**: a synthetic class of tiny submissions (the test suite's
three-question assignment) fed through the real coordinator (discover, read
each folder safely, hash, skip-or-grade, tasks, results in order) and the
real gradebook writer (files, then one nbgrader gradebook transaction and a
ledger row per student), with grading replaced by a stub that answers at
once: what the coordinator can record per second when workers are
infinitely fast. Each size runs in a process of its own (peak memory is
per process); the per-row cost of the first and the last tenth of the rows
shows whether recording slows down as the gradebook grows.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import Future
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests" / "submissions"))

ASSIGNMENT = "deep_dive"


def load() -> str:
    return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


# ------------------------------------------------------------------ throughput


def _grade_copy(template: Path, dest: Path, executor, workers: int, unsafe: bool) -> tuple[float, object]:
    from miglab.grading import grade_assignment
    from miglab.grading.coordinator import default_kernel

    shutil.copytree(template, dest)
    t0 = time.perf_counter()
    summary = grade_assignment(
        dest,
        ASSIGNMENT,
        executor=executor,
        workers=workers,
        kernel=default_kernel(unsafe),
        progress=False,
        reports=False,
    )
    return time.perf_counter() - t0, summary


def _line(label: str, n: int, took: float, summary) -> str:
    ran = [r for r in summary.results if r.cell_seconds]
    per = sum(r.seconds for r in ran) / max(1, len(ran))
    return (
        f"  {label:<34} {took:7.1f} s  {60 * n / took:6.1f} submissions/min  "
        f"(worker {per:.2f} s per submission; statuses {dict(summary.statuses)})"
    )


def throughput(n: int, unsafe: bool) -> int:
    from bench_grading import make_course
    from distributed import Client, LocalCluster

    from miglab.grading.assignment import ensure_tools_on_path, prepare
    from miglab.grading.cluster import DaskExecutor
    from miglab.grading.pool import warm_up_workers

    ensure_tools_on_path()
    base = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        template = make_course(base / "template", n)
        prepare(template, ASSIGNMENT)  # nbgrader's generate_assignment, cached for all three runs
        print(f"{n} submissions of {ASSIGNMENT}, {'local' if unsafe else 'sandboxed'} kernels; {load()}", flush=True)
        warm_up_workers()
        rows = []
        for workers in (1, 2):
            took, summary = _grade_copy(template, base / f"pool{workers}", None, workers, unsafe)
            rows.append(_line(f"local pool, {workers} worker{'s' if workers > 1 else ''}", n, took, summary))
            print(rows[-1], flush=True)
        with (
            LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40
            ) as lc,
            Client(lc) as client,
        ):
            executor = DaskExecutor(client)  # registers the warm-up on every worker and waits for it
            took, summary = _grade_copy(template, base / "dask", executor, 2, unsafe)
            print(_line("Dask LocalCluster, 2 workers", n, took, summary), flush=True)
        print(f"  ({load()} at the end)")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


# ------------------------------------------------------------------- recording


class StubExecutor:
    """Answers every task at once with a made-up result (this benchmark only): no kernel, no nbgrader."""

    workers = 2

    def submit(self, fn, task) -> Future:
        fut: Future = Future()
        fut.set_result(stub_result(task))
        return fut


def stub_result(task):
    from miglab.grading.model import CellScore, Result

    a = task.assignment
    nb = a.notebooks[0]
    return Result(
        student_id=task.student_id,
        assignment_id=a.assignment_id,
        submission_hash=task.submission_hash,
        assignment_version=a.version,
        status="ok",
        scores=[
            CellScore(grade_id=g, notebook=n, score=m, max_score=m, scored_by="judge") for n, g, m in a.grade_cells
        ],
        autograded={f"{nb}.ipynb": task.files.get(f"{nb}.ipynb", b"{}")},
        feedback={f"{nb}.html": b"<!DOCTYPE html><html><body><p>Score: full</p></body></html>"},
        timestamp=task.timestamp,
        seconds=0.001,
        judged=True,
    )


def make_synthetic_class(root: Path, n: int) -> None:
    import make_sample_class as sample
    import nbformat

    from miglab.grading.assignment import generate

    (root / "source" / "tiny").mkdir(parents=True)
    nbformat.write(sample.tiny_source(), str(root / "source" / "tiny" / "tiny.ipynb"))
    (root / "nbgrader_config.py").write_text('c = get_config()\nc.CourseDirectory.course_id = "tinycourse"\n')
    release = generate(
        root / "source" / "tiny",
        root / ".release-build",
        "tiny",
        "tinycourse",
        f"sqlite:///{root / '.release-build' / 'x.db'}",
        {},
    )
    data = json.loads((release / "tiny.ipynb").read_text())
    for i in range(n):
        d = root / "submitted" / f"s{i:05d}" / "tiny"
        d.mkdir(parents=True)
        data["metadata"]["student"] = f"s{i:05d}"  # every submission its own bytes
        (d / "tiny.ipynb").write_text(json.dumps(data))
        (d / "timestamp.txt").write_text("2026-11-25 12:00:00.000000 UTC")


def keep_loaded() -> None:
    """An experiment on the writer (this benchmark only): its nbgrader session keeps what it loaded across
    commits. nbgrader's ``add_submission`` appends the new submission to ``Assignment.submissions`` and
    ``Notebook.submissions``; after each commit those collections are expired, so every new student loads
    every earlier one again (a cost that grows with the class)."""
    from miglab.grading import gradebook

    original = gradebook.GradebookWriter.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self._gb.db().expire_on_commit = False

    gradebook.GradebookWriter.__init__ = init


def recording_one(n: int, keep: bool = False) -> dict:
    """One size, in this process: the figures as a dict."""
    from miglab.grading import gradebook
    from miglab.grading.assignment import ensure_tools_on_path
    from miglab.grading.coordinator import grade_assignment

    ensure_tools_on_path()
    if keep:
        keep_loaded()
    base = Path(tempfile.mkdtemp(prefix="bench-record-"))
    try:
        t0 = time.perf_counter()
        make_synthetic_class(base, n)
        made = time.perf_counter() - t0
        stamps: list[float] = []
        original = gradebook.GradebookWriter.record

        def record(self, result):
            original(self, result)
            stamps.append(time.perf_counter())

        gradebook.GradebookWriter.record = record
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        summary = grade_assignment(base, "tiny", executor=StubExecutor(), progress=False, reports=False)
        took = time.perf_counter() - t0
        t1 = time.perf_counter()
        from miglab.grading.reports import write_reports

        write_reports(f"sqlite:///{base / 'gradebook.db'}", "tinycourse", "tiny", base / "reports" / "tiny")
        reports = time.perf_counter() - t1
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        tenth = max(1, len(stamps) // 10)
        first = (stamps[tenth] - stamps[0]) / tenth
        last = (stamps[-1] - stamps[-tenth - 1]) / tenth
        recording_s = stamps[-1] - stamps[0]
        return {
            "n": n,
            "graded": summary.graded,
            "seconds": took,
            "start_s": stamps[0] - t0,
            "rows_per_s": (len(stamps) - 1) / recording_s,
            "recording_s": recording_s,
            "first_tenth_ms": 1000 * first,
            "last_tenth_ms": 1000 * last,
            "reports_s": reports,
            "rss_mb_before": rss0 / 1024,
            "rss_mb_peak": rss / 1024,
            "make_class_s": made,
            "db_mb": (base / "gradebook.db").stat().st_size / 2**20,
        }
    finally:
        shutil.rmtree(base, ignore_errors=True)


def recording(sizes: list[int], keep: bool) -> int:
    print(
        f"synthetic class of tiny submissions, stub grading, real coordinator and gradebook writer"
        f"{' (experiment: session keeps what it loaded)' if keep else ''}; {load()}",
        flush=True,
    )
    print(
        f"  {'submissions':>11} {'start-up':>9} {'recording':>10} {'rows/s':>8} {'ms/row first 10%':>17} "
        f"{'last 10%':>9} {'peak RSS':>9} {'gradebook':>10} {'CSV+chart':>10}"
    )
    for n in sizes:
        done = subprocess.run(
            [sys.executable, __file__, "recording-one", "--n", str(n), *(["--keep-loaded"] if keep else [])],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            print(done.stdout[-2000:], done.stderr[-3000:])
            return 1
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"  {r['n']:>11} {r['start_s']:8.1f}s {r['recording_s']:9.1f}s {r['rows_per_s']:8.1f} "
            f"{r['first_tenth_ms']:17.2f} {r['last_tenth_ms']:9.2f} {r['rss_mb_peak']:7.0f}MB {r['db_mb']:8.1f}MB "
            f"{r['reports_s']:9.1f}s",
            flush=True,
        )
    print(f"  ({load()} at the end)")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--n", type=int, default=24)
    t.add_argument("--unsafe", action="store_true", help="plain local kernels")
    r = sub.add_parser("recording")
    r.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    r.add_argument("--keep-loaded", action="store_true", help="experiment: see keep_loaded()")
    one = sub.add_parser("recording-one")
    one.add_argument("--n", type=int, required=True)
    one.add_argument("--keep-loaded", action="store_true")
    args = p.parse_args(argv)
    if args.what == "throughput":
        return throughput(args.n, args.unsafe)
    if args.what == "recording":
        return recording(args.sizes, args.keep_loaded)
    import warnings

    warnings.filterwarnings("ignore")
    print(json.dumps(recording_one(args.n, args.keep_loaded)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

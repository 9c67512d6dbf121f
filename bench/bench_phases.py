"""Where a worker's time goes, per submission and per phase, in one process.

    .venv/bin/python bench/bench_phases.py              # 9 submissions, sandboxed kernels
    .venv/bin/python bench/bench_phases.py --n 12 --unsafe

Builds the same kind of course as bench_grading.py (perfect, partial and blank
notebooks of the sample class in turn, each with a data migration of its
own), warms up the process as a pool worker would, then grades the
submissions one after another with ``grade_submission`` while timing each
step: laying out the scratch course, nbgrader's sanitize pass, kernel start,
the setup cell, the other cells, kernel stop, nbgrader's other autograde
preprocessors and its gradebook work, the judge (its migration re-runs
apart), recording the scores, and the feedback page. The first submission
is graded but not counted (a worker's first student pays for caches).
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_grading import ASSIGNMENT, make_course  # noqa: E402

SPENT: dict[str, float] = defaultdict(float)
CELL_TIMES: list[float] = []
BY_CELL: dict[str, float] = defaultdict(float)


def timed(phase: str, owner: object, name: str) -> None:
    """Wrap ``owner.name`` so that its wall time adds to ``SPENT[phase]``."""
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            SPENT[phase] += time.perf_counter() - t0

    setattr(owner, name, wrapper)


def instrument() -> None:
    from nbconvert.exporters import Exporter
    from nbgrader.converters import Autograde, GenerateFeedback
    from nbgrader.converters.base import BaseConverter

    from miglab.grading import autograde, context, execute, worker

    timed("layout (scratch course)", autograde.ScratchCourse, "__init__")
    timed("nbgrader: init_assignment (gradebook rows, copies)", Autograde, "init_assignment")
    timed("nbgrader: autograde total", autograde.ScratchCourse, "autograde")
    timed("nbgrader: read its grades", autograde.ScratchCourse, "_nbgrader_grades")
    timed("judge total", worker, "judge")
    timed("judge: scenario runs (migrations)", context.JudgeContext, "run_scenario")
    timed("record scores", autograde.ScratchCourse, "record_scores")
    timed("feedback total", autograde.ScratchCourse, "feedback")
    timed("read autograded files", autograde.ScratchCourse, "autograded_files")
    timed("worker total", worker, "grade_submission")
    timed("nbgrader: write notebooks", BaseConverter, "write_single_notebook")
    timed("nbgrader: one pass (sanitize or autograde, each)", BaseConverter, "convert_single_notebook")
    _ = Exporter, GenerateFeedback
    original_preprocess = execute.ResilientExecute.preprocess

    def preprocess(self, nb, resources=None, km=None):
        t0 = time.perf_counter()
        try:
            return original_preprocess(self, nb, resources, km)
        finally:
            SPENT["execute total (start + cells + stop)"] += time.perf_counter() - t0

    execute.ResilientExecute.preprocess = preprocess
    original_cell = execute.ResilientExecute._run_cell

    def run_cell(self, run, cell, resources, index):
        t0 = time.perf_counter()
        try:
            return original_cell(self, run, cell, resources, index)
        finally:
            took = time.perf_counter() - t0
            gid = cell.metadata.get("nbgrader", {}).get("grade_id")
            SPENT["cell: setup" if gid == "setup" else "cells: the others"] += took
            BY_CELL[gid or f"#{index}"] += took
            CELL_TIMES.append(took)

    execute.ResilientExecute._run_cell = run_cell
    original_setup = execute.ResilientExecute.async_start_new_kernel_client

    async def start_client(self):
        t0 = time.perf_counter()
        try:
            return await original_setup(self)
        finally:
            SPENT["kernel: ready wait (client)"] += time.perf_counter() - t0

    execute.ResilientExecute.async_start_new_kernel_client = start_client
    _wrap_async_manager()


def _wrap_async_manager() -> None:
    from jupyter_client.manager import AsyncKernelManager

    for name, phase in (("start_kernel", "kernel: start (launch)"), ("shutdown_kernel", "kernel: stop")):
        original = getattr(AsyncKernelManager, name)

        def make(original, phase):
            async def wrapper(self, *a, **kw):
                t0 = time.perf_counter()
                try:
                    return await original(self, *a, **kw)
                finally:
                    SPENT[phase] += time.perf_counter() - t0

            return wrapper

        setattr(AsyncKernelManager, name, make(original, phase))


def tasks(course: Path, unsafe: bool):
    from miglab.grading.assignment import load_course_config, prepare
    from miglab.grading.collect import read_submission
    from miglab.grading.coordinator import content_hash, default_kernel
    from miglab.grading.model import Task, TimeLimits

    config = load_course_config(course)
    info = prepare(course, ASSIGNMENT, config=config)
    kernel = default_kernel(unsafe)
    out = []
    for d in sorted((course / "submitted").iterdir()):
        got = read_submission(d / ASSIGNMENT, base=course / "submitted")
        out.append(
            Task(
                student_id=d.name,
                assignment=info,
                files=got.files,
                submission_hash=content_hash(got.files),
                limits=TimeLimits(cell_timeout=60),
                kernel=kernel,
                timestamp=None,
                feedback=True,
            )
        )
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=9, help="submissions counted (default 9)")
    p.add_argument("--unsafe", action="store_true", help="plain local kernels instead of sandboxed ones")
    args = p.parse_args(argv)
    from miglab.grading.assignment import ensure_tools_on_path
    from miglab.grading.pool import warm_up
    from miglab.grading.worker import grade_submission

    ensure_tools_on_path()
    warm_up()
    base = Path(tempfile.mkdtemp(prefix="bench-phases-"))
    course = make_course(base / "course", args.n + 1)
    todo = tasks(course, args.unsafe)
    instrument()
    from miglab.grading import worker

    grade = worker.grade_submission
    first = grade(todo[0])
    SPENT.clear()
    CELL_TIMES.clear()
    BY_CELL.clear()
    results = []
    cpu0 = time.process_time()
    for task in todo[1:]:
        results.append(grade(task))
    cpu = time.process_time() - cpu0
    n = len(results)
    print(
        f"{n} submissions ({'local' if args.unsafe else 'sandboxed'} kernels), one after another, load "
        f"{os.getloadavg()[0]:.1f}; first one (not counted): {first.seconds:.2f} s, status {first.status}"
    )
    print(f"scores: {[r.total for r in results]}  statuses: {sorted({r.status for r in results})}")
    for phase, spent in sorted(SPENT.items(), key=lambda kv: kv[0]):
        print(f"  {phase:<52} {spent / n:7.3f} s")
    top = sorted(BY_CELL.items(), key=lambda kv: -kv[1])[:8]
    print("  slowest cells: " + ", ".join(f"{g} {t / n:.3f}" for g, t in top))
    cells = sum(r.cell_seconds for r in results) / n
    work = sum(r.seconds for r in results) / n
    print(f"  grader process CPU per submission (no kernel, no sandbox): {cpu / n:.3f} s")
    print(
        f"per submission: worker {work:.3f} s; cells alone {cells:.3f} s; cost / cells {work / cells:.2f}x; "
        f"median cell {statistics.median(CELL_TIMES) * 1000:.1f} ms"
    )
    _ = grade_submission
    return 0


if __name__ == "__main__":
    sys.exit(main())

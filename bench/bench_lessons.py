#!/usr/bin/env python
"""How long each lesson takes to run top to bottom, as a learner's "Run All" would.

    .venv/bin/python bench/bench_lessons.py            # every lesson, fork server vs plain manage.py
    .venv/bin/python bench/bench_lessons.py --repeat 3 # best of 3 per lesson
    .venv/bin/python bench/bench_lessons.py notebooks/01_what_is_a_migration.ipynb

Each lesson runs in a fresh kernel with nbclient (as tools/build_lessons.py and
the tests do). Two figures per lesson, measured in this same run:

* ``fork``:     the lab as shipped (a warm helper forks one child per manage.py command);
* ``baseline``: ``MIGLAB_FORK=0``, a plain ``python manage.py ...`` subprocess per command.

"cells" is the time from the first cell to the last; "kernel" adds the kernel's
start-up, which a learner pays once when opening the notebook. Nothing is saved:
the notebooks on disk are not touched, and labs go to a temporary folder.

The budget: lessons 01-07 together under 15 s with kernel start-ups
(``bench/bench_lessons.py notebooks/0[1-7]_*.ipynb``). Lesson 08 runs on
PostgreSQL with 50,000 rows and has its own, bench/bench_lesson08.py.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
TARGET_SECONDS = 15.0


def run_once(path: Path, fork: bool) -> tuple[float, float]:
    """(seconds with kernel start-up, seconds for the cells alone) for one fresh run."""
    os.environ["MIGLAB_FORK"] = "1" if fork else "0"
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        record_timing=False,
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
    )
    start = time.perf_counter()
    with client.setup_kernel():
        cells_start = time.perf_counter()
        for i, cell in enumerate(nb.cells):
            if cell.cell_type == "code":
                client.execute_cell(cell, i)
        cells = time.perf_counter() - cells_start
    return time.perf_counter() - start, cells


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Time every lesson's full execution.")
    ap.add_argument("notebooks", nargs="*", type=Path)
    ap.add_argument("--repeat", type=int, default=1, help="runs per lesson and mode; the best is reported")
    ap.add_argument("--no-baseline", action="store_true", help="skip the MIGLAB_FORK=0 runs")
    args = ap.parse_args(argv)
    paths = [p.resolve() for p in args.notebooks] or sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        print("no lessons found", file=sys.stderr)
        return 1

    modes = [True] if args.no_baseline else [True, False]
    with tempfile.TemporaryDirectory(prefix="bench-lessons-") as tmp:
        os.environ["MIGLAB_WORKDIR"] = tmp
        results: dict[bool, list[tuple[float, float]]] = {m: [] for m in modes}
        print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, best of {args.repeat} run(s) per lesson\n")
        head = f"{'lesson':<36}{'fork: cells':>12}{'kernel':>9}"
        if len(modes) == 2:
            head += f"{'baseline: cells':>17}{'kernel':>9}{'speed-up':>10}"
        print(head)
        for path in paths:
            line = f"{path.stem:<36}"
            for fork in modes:
                best = min((run_once(path, fork) for _ in range(args.repeat)), key=lambda r: r[1])
                results[fork].append(best)
                line += f"{best[1]:>12.2f}{best[0]:>9.2f}" if fork else f"{best[1]:>17.2f}{best[0]:>9.2f}"
            if len(modes) == 2:
                line += f"{results[False][-1][1] / results[True][-1][1]:>9.1f}x"
            print(line, flush=True)

    def total(fork: bool, i: int) -> float:
        return sum(r[i] for r in results[fork])

    line = f"{'TOTAL (seconds)':<36}{total(True, 1):>12.2f}{total(True, 0):>9.2f}"
    if len(modes) == 2:
        line += f"{total(False, 1):>17.2f}{total(False, 0):>9.2f}{total(False, 1) / total(True, 1):>9.1f}x"
    print("-" * len(head))
    print(line)
    verdict = "within" if total(True, 0) < TARGET_SECONDS else "OVER"
    print(f"\nWhole course with kernel start-ups: {total(True, 0):.1f} s ({verdict} the {TARGET_SECONDS:.0f} s target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""How long lesson 08 (SQLite and PostgreSQL, 50,000 rows) takes to run top to bottom.

    .venv/bin/python bench/bench_lesson08.py             # 3 runs
    .venv/bin/python bench/bench_lesson08.py --repeat 5

The lesson runs in a fresh kernel per run, exactly as bench/bench_lessons.py runs every lesson
(its ``run_once``, with the lab as shipped). "cells" is the first cell to the last; "kernel" adds
the kernel's start-up. Each line also says whether the course's PostgreSQL server was already
running when the run began: if not, that run includes starting it (initdb and pg_ctl start),
which a learner pays once per session. Nothing is saved; labs go to a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from bench_lessons import run_once  # noqa: E402

from miglab.lab import postgres  # noqa: E402

LESSON = HERE.parent / "notebooks" / "08_migrations_in_production.ipynb"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Time lesson 08's full execution.")
    ap.add_argument("--repeat", type=int, default=3, help="runs, each in a fresh kernel")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-lesson08-") as tmp:
        os.environ["MIGLAB_WORKDIR"] = tmp
        print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {LESSON.name}, {args.repeat} run(s)\n")
        print(f"{'run':<5}{'cells':>8}{'kernel':>9}  PostgreSQL server at the start")
        cells, kernel = [], []
        for i in range(1, args.repeat + 1):
            was_up = postgres.Server(postgres.default_base()).is_running()
            total, only_cells = run_once(LESSON, fork=True)
            cells.append(only_cells)
            kernel.append(total)
            print(
                f"{i:<5}{only_cells:>8.2f}{total:>9.2f}  {'running' if was_up else 'stopped (this run started it)'}",
                flush=True,
            )
    print(
        f"\nLesson 08, best of {args.repeat}: {min(cells):.2f} s of cells, {min(kernel):.2f} s with the kernel "
        f"(median {statistics.median(kernel):.2f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

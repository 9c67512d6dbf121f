"""Batch grading speed: plain serial `nbgrader autograde` vs `python -m miglab.grading grade`, same run.

    .venv/bin/python bench/bench_grading.py            # 40 submissions of deep_dive
    .venv/bin/python bench/bench_grading.py --n 20 --workers 2

Builds two identical temporary courses holding this repo's source/deep_dive and
N submissions (perfect, partial and blank notebooks of the sample class, in
turn, each with a data migration of its own, as in a real class), then
grades one with nbgrader's own command line (one process, one student after
another) and the other with ours (N workers), each from a cold
start, and prints both wall times and their ratio. Ours is timed three times:
with plain local kernels (--unsafe, the same kernels nbgrader starts), with
the default sandboxed warm kernels (forked from a pre-imported zygote into
each fresh sandbox) and with cold sandboxed kernels (MIGLAB_COLD_KERNELS=1).
It also prints what a submission costs inside a worker against the time the
student's cells alone take. Ours also writes feedback HTML and judges every cell; nbgrader's
autograde does neither.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
KINDS = ("perfect", "partial", "blank")
ASSIGNMENT = "deep_dive"


def make_unique(data: bytes, sid: str) -> bytes:
    """The notebook with its data migration text made this student's own (a comment naming them).

    Real students' migrations differ, so the judge re-runs every one; identical
    copies would let its cache answer for all but the first of each kind."""
    nb = json.loads(data)
    for cell in nb["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "answer_datamig":
            src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            marker = 'FILL_SLUGS_MIGRATION = """\n'
            assert marker in src, "the data migration answer cell changed: update make_unique"
            cell["source"] = src.replace(marker, f"{marker}# written by {sid}\n", 1)
            return json.dumps(nb, indent=1).encode()
    raise SystemExit("no answer_datamig cell in the sample notebook")


def make_course(root: Path, n: int) -> Path:
    root.mkdir(parents=True)
    shutil.copytree(REPO / "source" / ASSIGNMENT, root / "source" / ASSIGNMENT)
    (root / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        f"load_subconfig({str(REPO / 'grader_config.py')!r})\n"
        f"c.CourseDirectory.root = {str(root)!r}\n"
        f"c.CourseDirectory.db_url = {('sqlite:///' + str(root / 'gradebook.db'))!r}\n"
    )
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        d = root / "submitted" / f"s{i:03d}" / ASSIGNMENT
        d.mkdir(parents=True)
        data = (REPO / "tests" / "submissions" / ASSIGNMENT / f"{kind}.ipynb").read_bytes()
        (d / f"{ASSIGNMENT}.ipynb").write_bytes(make_unique(data, f"s{i:03d}"))
        (d / "timestamp.txt").write_text("2026-11-25 12:00:00.000000 UTC")
    return root


def env() -> dict:
    e = dict(os.environ)
    e["PATH"] = f"{Path(PY).parent}{os.pathsep}{e.get('PATH', '')}"
    return e


def run(cmd, cwd, extra_env: dict | None = None) -> float:
    t = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, env={**env(), **(extra_env or {})}, capture_output=True, text=True)
    took = time.perf_counter() - t
    if out.returncode != 0:
        print(out.stdout[-3000:], out.stderr[-3000:], sep="\n")
        raise SystemExit(f"failed: {' '.join(map(str, cmd))}")
    return took


def scores(db: Path) -> dict:
    con = sqlite3.connect(db)
    try:
        return dict(
            con.execute(
                "SELECT s.student_id, SUM(COALESCE(g.auto_score, 0)) FROM grade g "
                "JOIN submitted_notebook n ON g.notebook_id = n.id "
                "JOIN submitted_assignment s ON n.assignment_id = s.id "
                "GROUP BY s.student_id"
            ).fetchall()
        )
    finally:
        con.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=40, help="submissions (default 40)")
    p.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--skip-sandbox", action="store_true", help="do not time the sandboxed run")
    args = p.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-grading-"))
    try:
        print(
            f"{args.n} submissions of {ASSIGNMENT} ({', '.join(KINDS)} in turn); {args.workers} workers; "
            f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} (other work on the machine "
            "slows the parallel run more than the serial one)",
            flush=True,
        )
        nbg = make_course(base / "nbgrader", args.n)
        ours = make_course(base / "ours", args.n)
        box = make_course(base / "sandboxed", args.n)
        cold = make_course(base / "cold", args.n)
        for c in (nbg, ours, box, cold):  # the instructor has done this before grading, in both workflows
            run([str(Path(PY).parent / "nbgrader"), "generate_assignment", ASSIGNMENT, "--force"], c)
        t_nbg = run([str(Path(PY).parent / "nbgrader"), "autograde", ASSIGNMENT], nbg)
        print(f"nbgrader autograde (serial):          {t_nbg:7.1f} s  {t_nbg / args.n:5.2f} s/submission", flush=True)
        t_fb = run([str(Path(PY).parent / "nbgrader"), "generate_feedback", ASSIGNMENT], nbg)
        print(
            f"  + nbgrader generate_feedback:       {t_fb:7.1f} s  (same outputs as ours: {t_nbg + t_fb:.1f} s in all)",
            flush=True,
        )
        cmd = [
            PY,
            "-m",
            "miglab.grading",
            "grade",
            ASSIGNMENT,
            "--course",
            ".",
            "-j",
            str(args.workers),
            "--no-progress",
        ]
        t_ours = run([*cmd, "--unsafe"], ours)
        print(
            f"miglab.grading, local kernels:        {t_ours:7.1f} s  {t_ours / args.n:5.2f} s/submission  "
            f"ratio {t_nbg / t_ours:.2f}x (autograde only), {(t_nbg + t_fb) / t_ours:.2f}x (with feedback)",
            flush=True,
        )
        runs = [("local", ours)]
        if not args.skip_sandbox:
            for label, course, extra_env in (
                ("sandboxed, warm kernels", box, {}),
                ("sandboxed, cold kernels", cold, {"MIGLAB_COLD_KERNELS": "1"}),
            ):
                t_box = run(cmd, course, extra_env)
                print(
                    f"miglab.grading, {label + ':':<23}{t_box:7.1f} s  {t_box / args.n:5.2f} s/submission  "
                    f"ratio {t_nbg / t_box:.2f}x (autograde only), {(t_nbg + t_fb) / t_box:.2f}x (with feedback)",
                    flush=True,
                )
                runs.append((label, course))
        ours_scores = [scores(course / "gradebook.db") for _, course in runs]
        same = scores(nbg / "gradebook.db").keys() == ours_scores[0].keys()
        print(
            f"nbgrader's and our gradebooks hold the same {len(ours_scores[0])} students: {same}; "
            f"our runs give every student the same total: {all(s == ours_scores[0] for s in ours_scores)}"
        )
        for label, course in runs:
            con = sqlite3.connect(course / "gradebook.db")
            rows = con.execute("SELECT seconds, kernel_start, cell_seconds FROM miglab_results").fetchall()
            con.close()
            w = sum(r[0] for r in rows) / len(rows)
            k = sum(r[1] for r in rows) / len(rows)
            c = sum(r[2] for r in rows) / len(rows)
            print(
                f"per submission in a worker ({label}): {w:.2f} s; kernel start {k:.2f} s, cells {c:.2f} s; "
                f"cost / (start + cells) {w / (k + c):.2f}x; cost / cells alone {w / c:.2f}x"
            )
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What the sandbox costs: the same work with and without isolation, measured in one run.

    .venv/bin/python bench/bench_isolation.py            # all four measurements
    .venv/bin/python bench/bench_isolation.py --quick    # fewer repeats, no whole-class run

1. one process: ``python -c pass`` as a plain subprocess vs ``sandbox.run``;
2. one kernel: start, run one cell, shut down (nbclient), plain vs sandboxed;
3. the judge's re-run of a data migration (two ``manage.py migrate``), plain vs sandboxed;
4. whole submissions through the real grading command (``python -m miglab.grading
   grade``, one worker): the perfect notebook graded N times with ``--unsafe`` and
   N times sandboxed; per-submission time as the command reports it.

Runs alternate plain/sandboxed so machine noise hits both sides alike. Needs
root and bubblewrap (``sh tools/install_isolation.sh``).
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from miglab.grading import sandbox  # noqa: E402

sys.path.insert(0, str(REPO / "tests" / "assignment_fixtures"))
from data_migration import GOOD as GOOD_MIGRATION  # noqa: E402

PY = sys.executable


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def alternate(plain, boxed, n: int) -> tuple[list[float], list[float]]:
    a, b = [], []
    for _ in range(n):
        a.append(timed(plain))
        b.append(timed(boxed))
    return a, b


def row(label: str, a: list[float], b: list[float], unit: str = "s") -> str:
    ma, mb = statistics.median(a), statistics.median(b)
    return f"{label:<44} {ma:8.3f} {unit}  {mb:8.3f} {unit}  {mb - ma:+8.3f} {unit}  x{mb / ma:5.2f}   (n={len(a)})"


def bench_process(n):
    return alternate(lambda: subprocess.run([PY, "-c", "pass"], check=True), lambda: sandbox.run([PY, "-c", "pass"]), n)


def bench_kernel(n):
    import nbformat
    from nbclient import NotebookClient

    folder = Path(tempfile.mkdtemp(prefix="bench-kernel-"))

    def once(manager):
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = sum(range(1000)); print(x)")])
        kw = {"kernel_manager_class": manager} if manager else {}
        NotebookClient(
            nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(folder)}}, **kw
        ).execute()
        assert nb.cells[0].outputs[0]["text"] == "499500\n"

    try:
        return alternate(lambda: once(None), lambda: once("miglab.grading.sandbox_kernel.SandboxKernelManager"), n)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def bench_migration(n):
    from miglab import oracle

    titles = ["Dune", "Kindred", "The Left Hand of Darkness"]
    return alternate(
        lambda: oracle.run_migration_scenario(GOOD_MIGRATION, titles),
        lambda: oracle.run_migration_scenario(GOOD_MIGRATION, titles, manage=sandbox.manage_untrusted),
        n,
    )


def bench_judge_rerun(n):
    """What the judge does per submission: both row sets, forwards and backwards (4 migrate).
    Plain: a new `python manage.py` per command; sandboxed: the worker's warm judge Session."""
    from miglab import judges

    count = iter(range(10**6))

    def plain():
        text = GOOD_MIGRATION + f"# {next(count)}\n"  # a new text each time: no cache answers
        for titles in (judges.VISIBLE_TITLES, judges.HIDDEN_TITLES):
            judges.run_untrusted_migration(text, titles)

    def boxed():
        text = GOOD_MIGRATION + f"# {next(count)}\n"
        for titles in (judges.VISIBLE_TITLES, judges.HIDDEN_TITLES):
            sandbox.sandboxed_migration_runner(text, titles)

    return alternate(plain, boxed, n)


def bench_class(n):
    import nbformat

    spec = importlib.util.spec_from_file_location("make_sample_class", REPO / "tests/submissions/make_sample_class.py")
    sample = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sample)
    source_nb = nbformat.read(REPO / "source/deep_dive/deep_dive.ipynb", as_version=4)
    perfect = copy.deepcopy(nbformat.read(REPO / "release/deep_dive/deep_dive.ipynb", as_version=4))
    answers = sample._answers(source_nb)
    sample._fill(perfect, answers, set(answers))
    data = sample._dump(perfect)

    def course(tag):
        root = Path(tempfile.mkdtemp(prefix=f"bench-iso-{tag}-"))
        (root / "nbgrader_config.py").write_text(
            "c = get_config()  # noqa: F821\n"
            f"load_subconfig({str(REPO / 'grader_config.py')!r})  # noqa: F821\n"
            f"c.CourseDirectory.root = {str(root)!r}\n"
            f"c.CourseDirectory.db_url = {('sqlite:///' + str(root / 'gradebook.db'))!r}\n"
        )
        shutil.copytree(REPO / "source/deep_dive", root / "source/deep_dive")
        for i in range(n):
            d = root / "submitted" / f"s{i:02d}" / "deep_dive"
            d.mkdir(parents=True)
            (d / "deep_dive.ipynb").write_bytes(data)
        return root

    def grade(root, *extra):
        done = subprocess.run(
            [
                PY,
                "-m",
                "miglab.grading",
                "grade",
                "deep_dive",
                "--course",
                str(root),
                "-j",
                "1",
                "--no-progress",
                "--no-feedback",
                *extra,
            ],
            capture_output=True,
            text=True,
        )
        m = re.search(
            r"per submission: ([\d.]+) s in the worker \(kernel start ([\d.]+) s \+ cells ([\d.]+) s\)", done.stdout
        )
        if done.returncode != 0 or not m:
            raise SystemExit(f"grading failed:\n{done.stdout}\n{done.stderr[-2000:]}")
        mean = re.search(r"mean score of this run: ([\d.]+) / ([\d.]+)", done.stdout)
        return [float(x) for x in m.groups()], mean.group(0) if mean else ""

    plain_root, boxed_root = course("plain"), course("boxed")
    try:
        plain, plain_mean = grade(plain_root, "--unsafe")
        boxed, boxed_mean = grade(boxed_root)
    finally:
        shutil.rmtree(plain_root, ignore_errors=True)
        shutil.rmtree(boxed_root, ignore_errors=True)
    return plain, boxed, plain_mean, boxed_mean


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("-n", type=int, default=None, help="repeats (default 10; 3 with --quick)")
    p.add_argument("--class-size", type=int, default=4, help="submissions per side in the whole-class run")
    args = p.parse_args(argv)
    ok, why = sandbox.available()
    if not ok:
        print(f"no isolation here: {why}")
        return 1
    n = args.n or (3 if args.quick else 10)
    print(f"isolation: {why}")
    print(f"{'':<44} {'plain':>10}  {'sandboxed':>10}  {'cost':>10}  ratio   (medians)")
    print(row("one process (python -c pass)", *bench_process(n)))
    print(row("one kernel: start, one cell, shut down", *bench_kernel(max(3, n // 2))))
    print(row("one migration scenario, cold commands (2 migrate)", *bench_migration(max(3, n // 2))))
    print(row("judge's re-run per submission (4 migrate)", *bench_judge_rerun(max(3, n // 2))))
    if not args.quick:
        plain, boxed, pm, bm = bench_class(args.class_size)
        print(f"\nwhole submissions, real grading command, {args.class_size} perfect notebooks per side, 1 worker:")
        for label, a, b in (
            ("per submission in the worker", plain[0], boxed[0]),
            ("  of which kernel start", plain[1], boxed[1]),
            ("  of which running the cells", plain[2], boxed[2]),
        ):
            print(f"  {label:<42} {a:8.2f} s  {b:8.2f} s  {b - a:+8.2f} s  x{b / a:5.2f}")
        print(f"  scores: plain {pm}; sandboxed {bm}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Regenerate release/<assignment>/ from source/<assignment>/ with nbgrader.

    .venv/bin/python tools/release.py            # rebuild source notebook, then release/ (make release)
    .venv/bin/python tools/release.py --check    # exit 1 if the committed release/ is stale

The student notebook is produced by `nbgrader generate_assignment` only (it
removes solutions and hidden tests and clears outputs); this script runs it in
a scratch copy of the course so the repository's gradebook is never touched,
then copies the result into release/. `--check` compares what nbgrader makes
now with what is committed (cell types, sources and nbgrader metadata; not
volatile bits such as cell ids or execution counts).
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENT = "deep_dive"
COURSE_FILES = ("nbgrader_config.py", "grader_config.py")


def generate(course_src: Path, out_dir: Path, assignment: str = ASSIGNMENT) -> Path:
    """Run nbgrader generate_assignment on a copy of ``course_src``; return the new release folder."""
    with tempfile.TemporaryDirectory(prefix="miglab-release-") as tmp:
        course = Path(tmp) / "course"
        course.mkdir()
        for name in COURSE_FILES:
            shutil.copy2(course_src / name, course / name)
        shutil.copytree(course_src / "source" / assignment, course / "source" / assignment,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", ".hypothesis"))
        nbgrader = Path(sys.executable).with_name("nbgrader")
        cmd = [str(nbgrader) if nbgrader.exists() else "nbgrader", "generate_assignment", assignment, "--force"]
        done = subprocess.run(cmd, cwd=course, capture_output=True, text=True,
                              env={**os.environ, "PYTHONWARNINGS": "ignore",
                                   "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"})
        if done.returncode != 0:
            raise SystemExit(f"nbgrader generate_assignment failed:\n{done.stdout}\n{done.stderr}")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        shutil.copytree(course / "release" / assignment, out_dir)
    return out_dir


def comparable(path: Path) -> list:
    """A notebook reduced to what must not drift: cell types, sources, nbgrader metadata."""
    nb = nbformat.read(path, as_version=4)
    return [(c.cell_type, c.source, dict(c.metadata.get("nbgrader", {}))) for c in nb.cells]


def differences(fresh: Path, committed: Path) -> list[str]:
    problems = []
    fresh_files = sorted(p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file())
    committed_files = sorted(p.relative_to(committed) for p in committed.rglob("*") if p.is_file()) \
        if committed.exists() else []
    if fresh_files != committed_files:
        problems.append(f"files differ: nbgrader makes {[str(p) for p in fresh_files]}, "
                        f"committed {[str(p) for p in committed_files]}")
    for rel in set(fresh_files) & set(committed_files):
        a, b = fresh / rel, committed / rel
        if rel.suffix == ".ipynb":
            if comparable(a) != comparable(b):
                problems.append(f"{rel}: cells differ from a fresh nbgrader generate_assignment")
            elif any(c.get("outputs") for c in nbformat.read(b, as_version=4).cells):
                problems.append(f"{rel}: committed with outputs")
        elif not filecmp.cmp(a, b, shallow=False):
            problems.append(f"{rel}: content differs")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report whether release/ is up to date")
    args = parser.parse_args()
    committed = ROOT / "release" / ASSIGNMENT
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            fresh = generate(ROOT, Path(tmp) / ASSIGNMENT)
            problems = differences(fresh, committed)
        for p in problems:
            print("release/ is stale:", p)
        if problems:
            print("Run `make release` and commit release/.")
            return 1
        print(f"release/{ASSIGNMENT} matches a fresh nbgrader generate_assignment")
        return 0
    subprocess.run([sys.executable, str(ROOT / "tools" / "build_deep_dive.py")], check=True)
    generate(ROOT, committed)
    print(f"wrote release/{ASSIGNMENT}/ with nbgrader generate_assignment")
    return 0


if __name__ == "__main__":
    sys.exit(main())

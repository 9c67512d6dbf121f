"""Regenerate release/<assignment>/ from source/<assignment>/ with nbgrader, for every assignment.

    .venv/bin/python tools/release.py                 # every assignment in source/ (make release)
    .venv/bin/python tools/release.py deep_dive       # one
    .venv/bin/python tools/release.py --check         # exit 1 if a committed release/ is stale

The instructor edits source/<assignment>/<notebook>.ipynb (in JupyterLab, with
nbgrader's Create Assignment toolbar); nbgrader's generate_assignment, run in
a scratch copy of the course so the course's gradebook is never touched,
makes the student copy (solutions and hidden tests removed, outputs cleared,
rules.py left out). `make release` also regenerates the test classes made
from release/ (tests/submissions/).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from miglab.grading.release import generate_release, release_problems  # noqa: E402


def assignments(root: Path = ROOT) -> list[str]:
    return sorted(p.name for p in (root / "source").iterdir() if p.is_dir() and any(p.glob("*.ipynb")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("assignment", nargs="*", help="assignment ids (default: every one in source/)")
    parser.add_argument("--check", action="store_true", help="only report whether release/ is up to date")
    args = parser.parse_args(argv)
    stale = 0
    for assignment in args.assignment or assignments():
        if args.check:
            problems = release_problems(ROOT, assignment)
            for p in problems:
                print(f"release/{assignment} is stale: {p}")
            stale += bool(problems)
            if not problems:
                print(f"release/{assignment} matches a fresh nbgrader generate_assignment")
        else:
            generate_release(ROOT, assignment, ROOT / "release" / assignment)
            print(f"wrote release/{assignment}/ with nbgrader generate_assignment")
    if stale:
        print("Run `make release` and commit release/.")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())

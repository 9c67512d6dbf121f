"""``release/<assignment>/`` as nbgrader makes it from ``source/``, and whether the committed one drifted.

The student notebooks are produced by ``nbgrader generate_assignment`` only
(it removes solutions and hidden tests and clears outputs). :func:`generate_release`
runs it in a scratch copy of the course, so the course's own gradebook is
never touched, and copies the result where it is asked; :func:`differences`
compares what nbgrader makes now with what is committed (cell types,
sources and nbgrader metadata; not volatile bits such as cell ids).
"""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

COURSE_FILES = ("nbgrader_config.py", "grader_config.py")
SKIP = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", ".hypothesis")


def generate_release(course: Path, assignment: str, out_dir: Path) -> Path:
    """Run ``nbgrader generate_assignment`` on a copy of ``course``; put the release in ``out_dir``."""
    with tempfile.TemporaryDirectory(prefix="miglab-release-") as tmp:
        scratch = Path(tmp) / "course"
        scratch.mkdir()
        for name in COURSE_FILES:
            if (course / name).exists():
                shutil.copy2(course / name, scratch / name)
        shutil.copytree(course / "source" / assignment, scratch / "source" / assignment, ignore=SKIP)
        bindir = Path(sys.executable).parent
        nbgrader = bindir / "nbgrader"
        cmd = [
            str(nbgrader) if nbgrader.exists() else "nbgrader",
            "generate_assignment",
            assignment,
            "--force",
            f"--CourseDirectory.root={scratch}",
            f"--CourseDirectory.db_url=sqlite:///{scratch / 'gb.db'}",
        ]
        done = subprocess.run(
            cmd,
            cwd=scratch,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONWARNINGS": "ignore", "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"},
        )
        if done.returncode != 0:
            raise RuntimeError(f"nbgrader generate_assignment failed:\n{done.stdout}\n{done.stderr}")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        shutil.copytree(scratch / "release" / assignment, out_dir)
    return out_dir


def comparable(path: Path) -> list:
    """A notebook reduced to what must not drift: cell types, sources, nbgrader metadata."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    return [(c.cell_type, c.source, dict(c.metadata.get("nbgrader", {}))) for c in nb.cells]


def differences(fresh: Path, committed: Path) -> list[str]:
    """What differs between a fresh release and the committed one (empty: it is current)."""
    import nbformat

    files = lambda base: sorted(p.relative_to(base) for p in base.rglob("*") if p.is_file())
    fresh_files = files(fresh)
    committed_files = files(committed) if committed.exists() else []
    problems = []
    if fresh_files != committed_files:
        problems.append(
            f"files differ: nbgrader makes {[str(p) for p in fresh_files]}, "
            f"committed {[str(p) for p in committed_files]}"
        )
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


def release_problems(course: Path, assignment: str) -> list[str]:
    """Is ``release/<assignment>/`` what nbgrader makes from ``source/`` now? (Problems, or [].)"""
    committed = course / "release" / assignment
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate_release(course, assignment, Path(tmp) / assignment)
        return differences(fresh, committed)

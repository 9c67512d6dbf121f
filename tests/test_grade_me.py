"""`make grade-me NOTEBOOK=...` (``python -m miglab.grading me``): a learner's own copy, graded for real.

A partly solved copy (tests/assignment_fixtures/partial.ipynb, the learner's working copy in a
``deep_dive/`` folder of their own, read-only) gets exactly the scores the instructor's grading gives
it (tests/test_assignment.py's PARTIAL), with the sandbox and the judge, a feedback page, and the
notebook and its folder byte-for-byte as they were.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_assignment import PARTIAL

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
A = "deep_dive"


def snapshot(folder: Path) -> dict:
    return {
        p.relative_to(folder).as_posix(): (
            hashlib.sha256(p.read_bytes()).hexdigest(),
            p.stat().st_mtime_ns,
            p.stat().st_mode,
        )
        for p in sorted(folder.rglob("*"))
    }


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    base = tmp_path_factory.mktemp("grade-me")
    work = base / "work" / A
    work.mkdir(parents=True)
    mine = work / f"{A}.ipynb"
    shutil.copy(REPO / "tests" / "assignment_fixtures" / "partial.ipynb", mine)
    mine.chmod(0o444)
    work.chmod(0o555)  # nothing can be written beside it either
    before = snapshot(work)
    out_dir = base / "scratch"
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    run = subprocess.run(
        ["make", "--no-print-directory", "grade-me", f"NOTEBOOK={mine}", f"ARGS=--out {out_dir}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    after = snapshot(work)
    work.chmod(0o755)
    return {"run": run, "mine": mine, "before": before, "after": after, "out": out_dir}


def test_the_command_succeeds(graded):
    run = graded["run"]
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "graded as the instructor's grading would (sandbox and judge)" in run.stdout


def test_exact_scores_per_question(graded):
    lines = re.findall(r"^  (\S+)\s+([\d.]+) / ([\d.]+)\s", graded["run"].stdout, re.M)
    assert {gid: float(score) for gid, score, _ in lines} == {k: float(v) for k, v in PARTIAL.items()}
    assert "total: 31 / 47   status: ok" in graded["run"].stdout


def test_reasons_are_shown_for_lost_points(graded):
    out = graded["run"].stdout
    assert re.search(r"^  order_cycle\s+0 / 2\s+✘  no error was raised for a graph with a cycle$", out, re.M)
    assert re.search(r"^  pending_basic\s+2 / 2\s+✔$", out, re.M)


def test_the_feedback_page_is_there_and_says_the_same(graded):
    pages = re.findall(r"^feedback: (.+)$", graded["run"].stdout, re.M)
    assert pages == [str(graded["out"] / "feedback" / "me" / A / f"{A}.html")]
    page = Path(pages[0]).read_text()
    assert "Score: 31.0 / 47.0" in page and "BEGIN HIDDEN TESTS" not in page


def test_the_learners_notebook_is_untouched(graded):
    assert graded["after"] == graded["before"]
    assert graded["mine"].read_bytes() == (REPO / "tests" / "assignment_fixtures" / "partial.ipynb").read_bytes()


def test_it_grades_with_the_instructors_sandbox_and_limits(tmp_path, monkeypatch):
    """What grade-me hands the class grader: the sandboxed kernel, the course's time limits, feedback on."""
    from miglab.grading import coordinator
    from miglab.grading.learner import grade_mine

    seen = {}

    class Stop(Exception):
        pass

    def spy(course, assignment, **kw):
        seen.update(kw, course=course, assignment=assignment)
        raise Stop

    monkeypatch.setattr(coordinator, "grade_assignment", spy)
    mine = tmp_path / A / f"{A}.ipynb"
    mine.parent.mkdir()
    shutil.copy(REPO / "release" / A / f"{A}.ipynb", mine)
    with pytest.raises(Stop):
        grade_mine(mine, course=REPO, out=tmp_path / "scratch")
    assert seen["assignment"] == A and seen["kernel"].sandboxed and seen["feedback"] is True
    assert seen["limits"] is None or seen["limits"].cell_timeout == 60  # the course's Execute.timeout
    assert sorted(p.name for p in (tmp_path / "scratch" / "submitted" / "me" / A).iterdir()) == [
        f"{A}.ipynb",
        "timestamp.txt",
    ]


def test_a_notebook_of_no_assignment_is_a_clear_error(tmp_path):
    stray = tmp_path / "notes.ipynb"
    stray.write_text("{}")
    out = subprocess.run(
        [PY, "-m", "miglab.grading", "me", stray, "--out", tmp_path / "scratch"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 2 and "cannot tell which assignment" in out.stderr and "Traceback" not in out.stderr

"""The deep_dive assignment graded end to end: real nbgrader, real Django, the sandbox, the judge.

One temporary course (the repository's nbgrader settings, source/deep_dive, a
gradebook of its own) grades four submissions once with the course's own
command: the instructor's solutions, the untouched release, a hand-made
partial submission and another correct solution written differently. Every
score is compared exactly, cell by cell.
"""

from __future__ import annotations

import html
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from miglab.grading import TimeLimits, grade_assignment
from miglab.grading.coordinator import default_kernel
from miglab.grading.validate import scratch_course, solution_notebook, validate

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "assignment_fixtures"
A = "deep_dive"
STUDENTS = ("solution", "blank", "partial", "alternative")


def source_points() -> dict[str, float]:
    nb = nbformat.read(ROOT / "source" / A / f"{A}.ipynb", as_version=4)
    return {
        c.metadata["nbgrader"]["grade_id"]: float(c.metadata["nbgrader"]["points"])
        for c in nb.cells
        if c.metadata.get("nbgrader", {}).get("grade")
    }


FULL = source_points()

# The hand-made partial submission (tests/assignment_fixtures/make_fixtures.py), cell by cell.
PARTIAL = {
    "pending_basic": 2,
    "pending_edge": 0,  # crashes when applied lists other migrations
    "deps_loans": 0,  # depends on library 0001, not the latest
    "get_model": 1,
    "reverse_arg": 0,  # RunPython without a reverse
    "merge_deps": 1,
    "order_basic": 2,
    "order_cross": 2,
    "order_cycle": 0,  # DFS that never notices a cycle
    "leaves": 2,
    "conflicts": 0,  # conflicts lists every app
    "replay_basic": 2,
    "replay_random": 2,
    "squash_state": 2,
    "squash_short": 0,
    "squash_rename": 2,
    "squash_random": 0,  # returns its input
    "datamig_forward": 2,
    "datamig_backward": 0,  # reverse is a no-op: slugs stay
    **{f"quiz_q{n:02d}": 1 for n in range(1, 16)},
    "quiz_q02": 0,
    "quiz_q04": 0,
    "quiz_q05": 0,
    "quiz_q11": 0,  # wrong, not a letter, blank, wrong
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    course = scratch_course(tmp_path_factory.mktemp("course") / "course", ROOT, A)
    source = __import__("json").loads((ROOT / "source" / A / f"{A}.ipynb").read_text())
    notebooks = {
        "solution": nbformat.writes(nbformat.from_dict(solution_notebook(source, ROOT, A, A))),
        "blank": (ROOT / "release" / A / f"{A}.ipynb").read_text(),
        "partial": (FIXTURES / "partial.ipynb").read_text(),
        "alternative": (FIXTURES / "alternative.ipynb").read_text(),
    }
    for student, text in notebooks.items():
        folder = course / "submitted" / student / A
        folder.mkdir(parents=True)
        (folder / f"{A}.ipynb").write_text(text)
        (folder / "timestamp.txt").write_text("2026-01-01 12:00:00.000000 UTC")
    summary = grade_assignment(
        course, A, workers=2, limits=TimeLimits(cell_timeout=30), kernel=default_kernel(), progress=False
    )
    return course, {r.student_id: r for r in summary.results}


def scores(graded, student) -> dict[str, float]:
    return {s.grade_id: s.score for s in graded[1][student].scores}


def autograded(graded, student):
    return nbformat.read(graded[0] / "autograded" / student / A / f"{A}.ipynb", as_version=4)


def feedback_html(graded, student) -> str:
    return html.unescape((graded[0] / "feedback" / student / A / f"{A}.html").read_text())


def hidden_lines() -> list[str]:
    """Lines of the hidden test blocks that appear nowhere else in the instructor's notebook:
    hidden inputs, expected answers (the quiz key), seeds."""
    nb = nbformat.read(ROOT / "source" / A / f"{A}.ipynb", as_version=4)
    pattern = r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS"
    visible = "\n".join(re.sub(pattern, "", c.source, flags=re.S) for c in nb.cells)
    lines = {
        line.strip() for c in nb.cells for block in re.findall(pattern, c.source, re.S) for line in block.splitlines()
    }
    found = sorted(line for line in lines if len(line) > 12 and line not in visible)
    assert len(found) > 40 and any("expect=" in line for line in found)
    return found


# ------------------------------------------------------------------ release


@pytest.mark.slow
def test_committed_release_matches_a_fresh_generation():
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "release.py"), "--check"], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_release_holds_no_solution_hidden_test_rule_or_seed():
    folder = ROOT / "release" / A
    text = (folder / f"{A}.ipynb").read_text()
    assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text
    assert sorted(p.name for p in folder.iterdir()) == [f"{A}.ipynb"]  # rules.py stays in source/
    for line in hidden_lines():  # hidden inputs, expected answers (the quiz key) and seeds
        assert line not in text, line
    nb = nbformat.read(folder / f"{A}.ipynb", as_version=4)
    assert all(not c.get("outputs") for c in nb.cells)
    points = {
        c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["points"]
        for c in nb.cells
        if c.metadata.get("nbgrader", {}).get("grade")
    }
    assert points == FULL and sum(points.values()) == 47


@pytest.mark.slow
def test_the_check_command_finds_the_assignment_ready():
    report = validate(ROOT, A)
    assert report.ok, report.text()
    assert report.solution_score == (47.0, 47.0) and report.blank_score == (0.0, 47.0)
    assert {who.split(" ")[0] for _, _, _, who in report.cells} == {"judge"}  # every cell judged outside


@pytest.mark.slow
def test_no_private_file_reaches_a_kernel_folder(graded):
    for student in STUDENTS:
        folder = graded[0] / "autograded" / student / A
        assert sorted(p.name for p in folder.iterdir()) == [f"{A}.ipynb", "timestamp.txt"]


# ------------------------------------------------------------------ grading


@pytest.mark.slow
def test_solution_scores_full_marks(graded):
    assert scores(graded, "solution") == FULL
    assert graded[1]["solution"].status == "ok"


@pytest.mark.slow
def test_solution_writes_nothing_to_stderr(graded):
    """No check failed in the kernel either (a ✘ goes to stderr)."""
    for cell in autograded(graded, "solution").cells:
        if cell.cell_type == "code":
            bad = [
                o
                for o in cell.outputs
                if o.output_type == "error" or (o.output_type == "stream" and o.name == "stderr")
            ]
            assert bad == [], (cell.metadata.get("nbgrader", {}).get("grade_id"), bad)


@pytest.mark.slow
def test_untouched_release_scores_zero_everywhere(graded):
    assert scores(graded, "blank") == {gid: 0.0 for gid in FULL}
    assert all(s.reason for s in graded[1]["blank"].scores)


@pytest.mark.slow
def test_partial_submission_scores_exactly_what_was_planned(graded):
    assert scores(graded, "partial") == {k: float(v) for k, v in PARTIAL.items()}
    assert sum(PARTIAL.values()) == 31


@pytest.mark.slow
def test_a_correct_solution_written_differently_scores_full_marks(graded):
    """Kahn's order, a pairwise optimizer, get_model with keywords, a defaultdict, an OrderedDict."""
    assert scores(graded, "alternative") == FULL


@pytest.mark.slow
def test_the_alternative_really_orders_differently(graded):
    """Kahn's order differs from the depth-first solution's, so order is judged by validity."""
    from miglab.grading.judge import evidence_records

    def orders(student):
        cell = next(
            c
            for c in autograded(graded, student).cells
            if c.metadata.get("nbgrader", {}).get("grade_id") == "order_cross"
        )
        return [r["output"] for r in evidence_records(cell)]

    assert orders("alternative") != orders("solution")


# ------------------------------------------------------------------ feedback


@pytest.mark.slow
def test_feedback_shows_verdicts_without_hidden_test_code(graded):
    for student in STUDENTS:
        page = feedback_html(graded, student)
        for line in hidden_lines():
            assert line not in page, (student, line)
        assert "BEGIN HIDDEN TESTS" not in page
    partial = feedback_html(graded, "partial")
    assert "no error was raised for a graph with a cycle" in partial  # a visible check's reason
    assert "hidden checks: 0 of 1 passed" in partial  # hidden ones are counted only
    assert "the answer raised ValueError on a hidden input" not in partial
    # quiz feedback says right or wrong, never "it is marked when your notebook is graded"
    assert "✘ not the right choice" in partial and "✔ right" in partial
    verdicts = re.findall(r"[✔✘][^\n<]*", partial)
    assert verdicts and not [v for v in verdicts if "marked when" in v]

"""Assignments are data: any nbgrader assignment grades right, edits regrade, answers are read for what they are.

* an instructor's own plain-nbgrader assignment, its cells named like
  deep_dive's, grades right (in the kernel, labelled so);
* editing a hidden test in the source notebook, or rules.py, regrades the
  class on the next run without --force;
* changing an assignment's graded cells after grading stops with the way
  forward, and --rebuild-gradebook takes it;
* on deep_dive: a pasted duplicate cell keeps full marks (with a note), an
  answer that delegates Part 3.2 to Django's optimizer scores 0 there and
  says so, and one that imports it at run time is flagged for review.
"""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from miglab.grading import Task, TimeLimits, grade_assignment, grade_submission
from miglab.grading.assignment import AssignmentError, prepare
from miglab.grading.coordinator import default_kernel
from miglab.grading.validate import solution_notebook

REPO = Path(__file__).resolve().parents[1]
LIMITS = TimeLimits(cell_timeout=20, interrupt_grace=2, wall=300)
pytestmark = [pytest.mark.slow, pytest.mark.sandbox]


def meta(gid, *, grade=False, solution=False, locked=False, points=None):
    m = {"schema_version": 3, "grade": grade, "solution": solution, "locked": locked, "grade_id": gid}
    if points is not None:
        m["points"] = points
    return {"nbgrader": m}


def course_with(root: Path, assignment: str, nb, rules: str | None = None) -> Path:
    (root / "source" / assignment).mkdir(parents=True, exist_ok=True)
    (root / "nbgrader_config.py").write_text(
        "c = get_config()\nc.CourseDirectory.course_id = 'own'\nc.Execute.timeout = 20\n"
        "c.CourseDirectory.ignore = ['.ipynb_checkpoints', '__pycache__', 'rules.py']\n"
    )
    nbformat.write(nb, str(root / "source" / assignment / f"{assignment}.ipynb"))
    if rules is not None:
        (root / "source" / assignment / "rules.py").write_text(rules)
    return root


def submit(course: Path, assignment: str, student: str, answers: dict[str, str], base) -> None:
    nb = copy.deepcopy(base)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.metadata.get("nbgrader", {}).get("solution") and gid in answers:
            cell.source = answers[gid]
        elif cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = "raise NotImplementedError()"
    folder = course / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(folder / f"{assignment}.ipynb"))


def scores(summary) -> dict[str, dict[str, float]]:
    return {r.student_id: {s.grade_id: s.score for s in r.scores} for r in summary.results}


# -------------------------------------------------------- an instructor's own assignment


def own_assignment():
    """Plain nbgrader: asserts in test cells that happen to share deep_dive's cell names."""
    cells = [
        new_markdown_cell("# My own assignment", metadata=meta("intro", locked=True)),
        new_code_cell("import math", metadata=meta("setup", locked=True)),
        new_code_cell(
            "### BEGIN SOLUTION\ndef get_model(name):\n    return name.title()\n### END SOLUTION",
            metadata=meta("answer_get_model", solution=True),
        ),
        new_code_cell(
            'assert get_model("book") == "Book"\n### BEGIN HIDDEN TESTS\nassert get_model("loan") == "Loan"\n'
            "### END HIDDEN TESTS",
            metadata=meta("get_model", grade=True, locked=True, points=3),
        ),
        new_code_cell(
            "### BEGIN SOLUTION\ndef leaves(xs):\n    return [x for x in xs if x % 2]\n### END SOLUTION",
            metadata=meta("answer_leaves", solution=True),
        ),
        new_code_cell("assert leaves([1, 2, 3]) == [1, 3]", metadata=meta("leaves", grade=True, locked=True, points=2)),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def test_an_instructors_own_assignment_with_deep_dives_cell_names_grades_right(tmp_path):
    nb = own_assignment()
    course = course_with(tmp_path, "mine", nb)
    right = {
        "answer_get_model": "def get_model(name):\n    return name.title()",
        "answer_leaves": "def leaves(xs):\n    return [x for x in xs if x % 2]",
    }
    submit(course, "mine", "right", right, nb)
    submit(course, "mine", "half", {**right, "answer_leaves": "def leaves(xs):\n    return xs"}, nb)
    summary = grade_assignment(course, "mine", workers=2, limits=LIMITS, kernel=default_kernel(), progress=False)
    assert scores(summary) == {"right": {"get_model": 3.0, "leaves": 2.0}, "half": {"get_model": 3.0, "leaves": 0.0}}
    assert summary.scored_in_kernel == ["get_model", "leaves"] and all(r.status == "ok" for r in summary.results)
    with open(summary.csv) as fh:
        rows = {r["student_id"]: r for r in csv.DictReader(fh)}
    assert rows["right"]["scored_in_kernel"] == "get_model leaves"


# -------------------------------------------------------- edits regrade


def judged_assignment(hidden: str):
    cells = [
        new_code_cell("from miglab.evidence import check", metadata=meta("setup", locked=True)),
        new_code_cell(
            "### BEGIN SOLUTION\ndef double(x):\n    return 2 * x\n### END SOLUTION",
            metadata=meta("answer", solution=True),
        ),
        new_code_cell(
            f"check(double, 2, expect=4)\n### BEGIN HIDDEN TESTS\n{hidden}\n### END HIDDEN TESTS",
            metadata=meta("double_test", grade=True, locked=True, points=2),
        ),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def test_an_edited_hidden_test_or_rule_regrades_without_force(tmp_path):
    nb = judged_assignment("check(double, -3, expect=-6)")
    course = course_with(tmp_path, "twice", nb, rules="def even(call):\n    return call.output % 2 == 0, 'even'\n")
    submit(course, "twice", "right", {"answer": "def double(x):\n    return 2 * x"}, nb)
    submit(course, "twice", "small_only", {"answer": "def double(x):\n    return 2 * x if abs(x) < 5 else 0"}, nb)
    first = grade_assignment(course, "twice", workers=2, limits=LIMITS, kernel=default_kernel(), progress=False)
    assert scores(first) == {"right": {"double_test": 2.0}, "small_only": {"double_test": 2.0}}
    again = grade_assignment(course, "twice", workers=2, limits=LIMITS, kernel=default_kernel(), progress=False)
    assert again.graded == 0 and again.skipped == 2
    # the instructor adds a hidden case in JupyterLab: the next run regrades, and the case counts
    edited = judged_assignment("check(double, -3, expect=-6)\ncheck(double, 10, expect=20)")
    nbformat.write(edited, str(course / "source" / "twice" / "twice.ipynb"))
    regraded = grade_assignment(course, "twice", workers=2, limits=LIMITS, kernel=default_kernel(), progress=False)
    assert regraded.graded == 2
    assert scores(regraded) == {"right": {"double_test": 2.0}, "small_only": {"double_test": 0.0}}
    # rules.py is part of the assignment too (even unused by a cell, a change regrades)
    (course / "source" / "twice" / "rules.py").write_text("def even(call):\n    return True, 'any'\n")
    assert (
        grade_assignment(course, "twice", workers=2, limits=LIMITS, kernel=default_kernel(), progress=False).graded == 2
    )


def test_changing_graded_cells_after_grading_says_what_to_do(tmp_path):
    nb = judged_assignment("check(double, -3, expect=-6)")
    course = course_with(tmp_path, "twice", nb)
    submit(course, "twice", "right", {"answer": "def double(x):\n    return 2 * x"}, nb)
    grade_assignment(course, "twice", workers=1, limits=LIMITS, kernel=default_kernel(), progress=False)
    renamed = copy.deepcopy(nb)
    renamed.cells[2].metadata.nbgrader["grade_id"] = "double_test_v2"
    nbformat.write(renamed, str(course / "source" / "twice" / "twice.ipynb"))
    with pytest.raises(AssignmentError) as err:
        grade_assignment(course, "twice", workers=1, limits=LIMITS, kernel=default_kernel(), progress=False)
    text = str(err.value)
    assert "removed: twice:double_test" in text and "added: twice:double_test_v2" in text
    assert "--rebuild-gradebook" in text
    rebuilt = grade_assignment(
        course, "twice", workers=1, limits=LIMITS, kernel=default_kernel(), progress=False, rebuild_gradebook=True
    )
    assert scores(rebuilt) == {"right": {"double_test_v2": 2.0}}


# -------------------------------------------------------- deep_dive: how answers are read


@pytest.fixture(scope="module")
def deep_dive():
    info = prepare(REPO, "deep_dive")
    source = json.loads((REPO / "source" / "deep_dive" / "deep_dive.ipynb").read_text())
    perfect = nbformat.from_dict(solution_notebook(source, REPO, "deep_dive", "deep_dive"))
    return info, perfect


def grade(info, nb, student="s"):
    task = Task(
        student_id=student,
        assignment=info,
        files={"deep_dive.ipynb": nbformat.writes(nb).encode()},
        submission_hash=student,
        limits=LIMITS,
        kernel=default_kernel(),
    )
    return grade_submission(task)


def cell_index(nb, gid):
    return next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == gid)


def test_a_pasted_duplicate_cell_keeps_full_marks_with_a_note(deep_dive):
    info, perfect = deep_dive
    nb = copy.deepcopy(perfect)
    for gid in ("answer_order", "leaves"):  # an answer cell and a test cell, pasted below themselves
        i = cell_index(nb, gid)
        nb.cells.insert(i + 1, copy.deepcopy(nb.cells[i]))
    r = grade(info, nb)
    assert r.status == "ok" and r.total == 47.0, r.reason
    assert any("copy of cell answer_order" in n for n in r.notes)
    assert any("copy of cell leaves" in n for n in r.notes)
    assert "copy of cell answer_order" in r.feedback["deep_dive.html"].decode()


def test_delegating_the_optimizer_scores_zero_on_part_3_2_and_says_why(deep_dive):
    info, perfect = deep_dive
    nb = copy.deepcopy(perfect)
    nb.cells[cell_index(nb, "answer_squash")].source = (
        "from django.db.migrations.optimizer import MigrationOptimizer\n\n\n"
        "def squash(operations):\n    return MigrationOptimizer().optimize(list(operations), 'library')\n"
    )
    r = grade(info, nb)
    got = {s.grade_id: s for s in r.scores}
    for gid in ("squash_state", "squash_short", "squash_rename", "squash_random"):
        why = got[gid].reason
        assert got[gid].score == 0.0 and "uses MigrationOptimizer" in why and "does not allow" in why, why
    assert r.total == 47.0 - 8.0
    assert got["replay_basic"].score == 2.0


def test_an_answer_that_imports_at_run_time_is_flagged_for_review(deep_dive):
    info, perfect = deep_dive
    nb = copy.deepcopy(perfect)
    nb.cells[cell_index(nb, "answer_squash")].source = (
        "import importlib\n\n\n"
        "def squash(operations):\n"
        "    found = importlib.import_module('django.db.migrations.' + 'optim' + 'izer')\n"
        "    return getattr(found, 'Migration' + 'Optimizer')().optimize(list(operations), 'library')\n"
    )
    r = grade(info, nb)
    assert "imports importlib" in r.review and "calls getattr() with a computed name" in r.review
    assert r.status == "ok"

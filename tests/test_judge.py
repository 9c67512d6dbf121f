"""The plan read from an instructor's notebook, and the judge that scores judged cells from evidence.

Notebooks are built in memory; evidence outputs are made exactly as
miglab.evidence.check emits them (same keys), or forged. No kernel here.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from miglab.evidence import EVIDENCE_MIME
from miglab.evidence.record import describe_call
from miglab.grading.judge import evidence_records, judge_notebook
from miglab.grading.plan import Plan, plan_notebook, read_plan, segments
from miglab.grading.rulebook import RuleBook
from miglab.grading.scan import scan_sources
from miglab.grading.validate import validate

ROOT = Path(__file__).resolve().parents[1]
SETUP = "from miglab.evidence import check, valid_plan, choice\n"
NOTHING = scan_sources([])


def meta(gid, *, grade=False, solution=False, locked=False, points=None):
    m = {"schema_version": 3, "grade": grade, "solution": solution, "locked": locked, "grade_id": gid}
    if points is not None:
        m["points"] = points
    return {"nbgrader": m}


def notebook(*cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = list(cells)
    return nb


def setup_cell():
    return nbformat.v4.new_code_cell(SETUP, metadata=meta("setup", locked=True))


def answer(gid, source):
    return nbformat.v4.new_code_cell(source, metadata=meta(gid, solution=True))


def graded_cell(gid, source, points=1):
    return nbformat.v4.new_code_cell(source, metadata=meta(gid, grade=True, locked=True, points=points))


def plan_of(nb, tmp_path) -> Plan:
    path = tmp_path / "a.ipynb"
    nbformat.write(nb, path)
    return plan_notebook(path)


def key(*args, expect=None, rule=None, **params):
    from miglab.evidence.verdict import NOTHING as none

    return describe_call(
        args,
        expect=none if expect is None else expect,
        rule=rule,
        probe=None,
        ignore_order=False,
        forbid=(),
        params=params,
    )["key"]


def with_evidence(cell, *payloads):
    cell = nbformat.from_dict(json.loads(json.dumps(cell)))
    cell.outputs = [nbformat.v4.new_output("display_data", data={EVIDENCE_MIME: p, "text/plain": ""}) for p in payloads]
    return cell


DOUBLE = graded_cell(
    "double_test",
    "check(double, 2, expect=4)\n### BEGIN HIDDEN TESTS\ncheck(double, -3, expect=-6)\n### END HIDDEN TESTS",
    points=2,
)
DOUBLE_NB = notebook(setup_cell(), answer("double", "def double(x):\n    return 2 * x"), DOUBLE)


# ------------------------------------------------------------------------ the plan


def test_the_plan_knows_every_call_and_which_are_hidden(tmp_path):
    plan = plan_of(DOUBLE_NB, tmp_path)
    [cell] = plan.cells
    assert cell.grade_id == "double_test" and cell.points == 2 and cell.judged and cell.has_hidden
    assert [(c.args, c.expect, c.hidden) for c in cell.calls] == [([2], 4, False), ([-3], -6, True)]
    assert [c.key for c in cell.calls] == [key(2, expect=4), key(-3, expect=-6)]
    assert plan.problems == []


def test_deep_dives_plan_judges_every_graded_cell():
    plan = read_plan(ROOT / "source" / "deep_dive" / "deep_dive.ipynb")
    assert plan.problems == [] and len(plan.cells) == 34 and all(c.judged for c in plan.cells)
    calls = {c.grade_id: c.calls for c in plan.cells}
    assert len(calls["squash_random"]) == 40 and all(c.hidden for c in calls["squash_random"])
    assert [c.hidden for c in calls["quiz_q01"]] == [False, True]


def test_segments_keep_line_numbers_and_fall_back_to_hidden_when_a_block_is_not_python():
    parts = segments("a = 1\n### BEGIN HIDDEN TESTS\nb = 2\n### END HIDDEN TESTS\nc = 3")
    assert [k for k, _ in parts] == ["visible", "hidden", "visible"]
    assert parts[1][1].splitlines()[2] == "b = 2"
    assert segments("if x:\n### BEGIN HIDDEN TESTS\n    y()\n### END HIDDEN TESTS") == [
        ("hidden", "if x:\n### BEGIN HIDDEN TESTS\n    y()\n### END HIDDEN TESTS")
    ]


def test_an_input_that_depends_on_the_answer_is_a_problem_of_the_assignment(tmp_path):
    nb = notebook(
        setup_cell(),
        answer("a", "def f(x):\n    return x\nSEED = 3"),
        graded_cell("t", "check(f, f(2), expect=2)"),
        graded_cell("u", "check(f, SEED, expect=3)"),
    )
    problems = plan_of(nb, tmp_path).problems
    assert len(problems) == 2 and all("depends on the student's answer" in p for p in problems)


def test_plain_nbgrader_cells_are_not_judged_and_unlocked_cells_never_run(tmp_path):
    marker = tmp_path / "ran"
    nb = notebook(
        setup_cell(),
        answer("a", f"open({str(marker)!r}, 'w')\ndef f(): return 1"),
        nbformat.v4.new_code_cell(f"open({str(marker)!r}, 'w')"),
        graded_cell("t", "assert f() == 1"),
    )
    [cell] = plan_of(nb, tmp_path).cells
    assert not cell.judged and not marker.exists()


# ------------------------------------------------------------------------ the judge


NO_RULES = RuleBook()  # an assignment without a rules.py


def judge(nb_cells, plan, rules=NO_RULES, scan=NOTHING):
    return judge_notebook(notebook(*nb_cells), "a", plan, rules, None, scan)


@pytest.fixture
def double_plan(tmp_path):
    return plan_of(DOUBLE_NB, tmp_path)


def test_right_evidence_scores_and_hidden_checks_are_counted_not_described(double_plan):
    right = with_evidence(DOUBLE, {"key": key(2, expect=4), "output": 4}, {"key": key(-3, expect=-6), "output": -6})
    [v] = judge([right], double_plan).values()
    assert (v.score, v.max_score) == (2, 2) and v.messages == ["✔ as expected", "✔ all 1 hidden check passed"]
    wrong = with_evidence(DOUBLE, {"key": key(2, expect=4), "output": 4}, {"key": key(-3, expect=-6), "output": 6})
    [v] = judge([wrong], double_plan).values()
    assert v.score == 0 and v.messages[-1] == "✘ hidden checks: 0 of 1 passed" and "-6" not in json.dumps(v.messages)


def test_forged_or_missing_evidence_earns_nothing(double_plan):
    cases = {
        "a verdict instead of an answer": [{"key": key(2, expect=4), "output": {"passed": True}}],
        "records for inputs the judge never gave": [{"key": key(5, expect=10), "output": 10}],
        "one check answered twice": [
            {"key": key(2, expect=4), "output": 4},
            {"key": key(2, expect=4), "output": 4},
            {"key": key(-3, expect=-6), "output": -6},
        ],
        "no evidence at all": [],
        "garbage": [{"key": 3}, {"output": 4}, "nonsense", {"key": key(2, expect=4)}],
    }
    for why, payloads in cases.items():
        [v] = judge([with_evidence(DOUBLE, *payloads)], double_plan).values()
        assert v.score == 0 and v.reason, why


def test_a_cell_outside_the_plan_or_a_missing_cell(double_plan):
    other = graded_cell("other", "assert True")
    assert judge([other], double_plan)["double_test"].reason == "the test cell is missing"


def test_a_forbidden_shortcut_zeroes_the_cell_and_says_so(tmp_path):
    nb = notebook(
        setup_cell(),
        answer("a", "def squash(ops):\n    return ops"),
        graded_cell("t", "check(squash, [1], expect=[1], forbid=['MigrationOptimizer', '.reduce'])"),
    )
    plan = plan_of(nb, tmp_path)
    cell = with_evidence(nb.cells[2], {"key": plan.cells[0].calls[0].key, "output": [1]})
    honest = scan_sources(["def squash(ops):\n    return ops"])
    assert judge([cell], plan, scan=honest)["t"].score == 1
    cheat = scan_sources(
        [
            "from django.db.migrations.optimizer import MigrationOptimizer\n"
            "def squash(ops):\n    return MigrationOptimizer().optimize(ops, 'library')"
        ]
    )
    v = judge([cell], plan, scan=cheat)["t"]
    assert v.score == 0 and "MigrationOptimizer, which this question does not allow" in v.reason
    pairwise = scan_sources(["def squash(ops):\n    return ops[0].reduce(ops[1], 'library')"])
    assert judge([cell], plan, scan=pairwise)["t"].score == 0


def test_code_that_looks_names_up_at_run_time_is_flagged_for_review_not_scored_down():
    scan = scan_sources(
        [
            "import importlib\nopt = importlib.import_module('django.db.migrations.' + 'optimizer')",
            "f = getattr(ops[0], name)",
            "x = 1 +",
        ]
    )
    flags = scan.review_flags()
    assert "imports importlib" in flags and "calls getattr() with a computed name" in flags
    assert any("not valid Python" in f for f in flags)
    assert not scan.uses("MigrationOptimizer")
    clean = scan_sources(
        ["from functools import reduce\nprint(reduce(max, [1, 2]))\n# MigrationOptimizer in a comment"]
    )
    assert clean.review_flags() == [] and not clean.uses(".reduce") and not clean.uses("MigrationOptimizer")


def test_evidence_records_read_only_the_evidence_type():
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text=json.dumps({"key": "k"})),
        nbformat.v4.new_output("display_data", data={EVIDENCE_MIME: json.dumps({"key": "k", "output": 1})}),
        nbformat.v4.new_output("display_data", data={"application/json": {"key": "k", "output": 2}}),
    ]
    assert evidence_records(cell) == [{"key": "k", "output": 1}]


# ------------------------------------------------------------------ the check command


@pytest.mark.slow  # several seconds: left out of make test-fast's quick loop
def test_check_reports_what_would_make_grades_wrong(tmp_path):
    course = tmp_path / "course"
    (course / "source" / "a").mkdir(parents=True)
    (course / "nbgrader_config.py").write_text("c = get_config()\nc.CourseDirectory.course_id = 'x'\n")
    nb = notebook(
        setup_cell(),
        answer("ans", "def f(x):\n    return x\nQ1 = 'a'"),
        graded_cell("judged_asserts", "check(f, 1, expect=1)\nassert f(1) == 1"),
        graded_cell("quiz_without_key", "check(Q1, rule=choice, choices='abcd')"),
        graded_cell("no_points", "assert f(2) == 2", points=0),
        graded_cell("unknown_rule", "check(f, 2, rule='no_such_rule')"),
    )
    nbformat.write(nb, course / "source" / "a" / "a.ipynb")
    (course / "source" / "a" / "rules.py").write_text("def some_rule(call):\n    return True\n")
    report = validate(course, "a", run=False)
    text = report.text()
    assert not report.ok
    assert "a:quiz_without_key: its checks only record the answer" in text
    assert "a:no_points has no points" in text
    assert "rule 'no_such_rule' is not a function of source/a/rules.py (its rules: some_rule)" in text
    assert "assert statements in a judged cell" in text
    assert "nbgrader, in the kernel (asserts)" in text  # the plain cell is labelled, not refused


def test_hidden_expected_answers_never_reach_the_kernel():
    from miglab.grading.plan import without_expected_answers

    source = (
        'check(Q01, rule=choice, choices="abcd")\n'
        "### BEGIN HIDDEN TESTS\n"
        'check(Q01, rule=choice, expect="b")\n'
        "check(f, 'Ça va', expect=['Ça',\n"
        "                          'é'], step=0)\n"
        "### END HIDDEN TESTS\n"
        "check(f, 1, expect=2)"
    )
    kernel = without_expected_answers(source)
    assert kernel.splitlines()[2] == "check(Q01, rule=choice, expect=...)"
    assert "'é'" not in kernel and "'Ça'" not in kernel and "'Ça va'" in kernel  # inputs stay, answers go
    assert len(kernel.splitlines()) == len(source.splitlines())  # line numbers kept
    assert kernel.splitlines()[-1] == "check(f, 1, expect=2)"  # visible ones stay
    # the kernel's key for the withheld call is the plan's key for the full one
    assert key("Ça va", expect=["Ça", "é"], rule=None, step=0) == key("Ça va", rule=None, step=0)

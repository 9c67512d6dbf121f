"""The second assignment, field_options: its rules against real Django, its release, its sample class.

* The two rules of ``source/field_options/rules.py`` are called directly, the way
  the judge calls them, on right, wrong and malformed answers; what they say is
  compared with real ``manage.py makemigrations`` and ``sqlmigrate`` in a lab
  project, and with the facts the notebook's prose states.
* ``python -m miglab.grading check field_options`` must say "ready".
* The sample class (tests/submissions/field_options, from make_sample_class.py)
  plus three hand-made students is graded once with the real command
  (``python -m miglab.grading grade``, sandboxed kernels) and every score and
  status must be exactly the expected one; the plain assert cell must be
  reported as scored in the kernel, in the summary, the CSV and the ledger.
"""

from __future__ import annotations

import copy
import csv
import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from miglab.evidence.convert import to_json
from miglab.evidence.verdict import BadAnswer, Call, as_verdict
from miglab.grading.rulebook import RuleBook

ROOT = Path(__file__).resolve().parent.parent
A = "field_options"
SOURCE = ROOT / "source" / A / f"{A}.ipynb"
RELEASE = ROOT / "release" / A / f"{A}.ipynb"
SAMPLE = ROOT / "tests" / "submissions" / A
PY = sys.executable
POINTS = {
    "sql_examples": 2.0,
    "sql_random": 2.0,
    "ops_fields": 1.0,
    "ops_meta": 1.0,
    "db_default": 2.0,
    "quiz_q1": 1.0,
    "quiz_q2": 1.0,
}
IN_KERNEL = ["db_default"]  # the plain nbgrader cell: asserts, no check()


def source_cells() -> dict[str, str]:
    nb = nbformat.read(str(SOURCE), as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: c.source for c in nb.cells if "nbgrader" in c.metadata}


@pytest.fixture(scope="module")
def rules():
    book = RuleBook((ROOT / "source" / A / "rules.py").read_text(), origin=f"source/{A}/rules.py", assignment=A)
    assert {"sql_like_sqlmigrate", "operation_like_makemigrations"} <= set(book.names())
    return book


@pytest.fixture(scope="module")
def changes() -> dict[str, tuple[str, str]]:
    """Part 2's CHANGES, from the notebook's locked cell (the same text the checks pass to the rule)."""
    namespace: dict = {"difflib": __import__("difflib"), "print": lambda *a, **k: None}
    exec(source_cells()["changes"], namespace)  # the instructor's notebook: trusted code
    return namespace["CHANGES"]


def sql_call(name, before, after, output) -> Call:
    """A check(needs_sql, name, before, after) call as the judge builds it: inputs and answer as JSON."""
    return Call(args=to_json([name, before, after]), output=to_json(output))


def ops_call(change, before, after, output) -> Call:
    return Call(args=[], output=to_json(output), params=to_json({"change": change, "before": before, "after": after}))


def judged(rule, call):
    return as_verdict(rule(call))


# ---------------------------------------------------------------- rule 1: sqlmigrate on SQLite

T100 = ("CharField", {"max_length": 100})
NO_OP = [
    ("title", T100, ("CharField", {"max_length": 100, "help_text": "As printed on the cover"})),
    ("title", T100, ("CharField", {"max_length": 100, "choices": [["a", "A"]], "blank": True})),
    ("title", T100, ("CharField", {"max_length": 100, "db_column": "title"})),  # the same column name
    ("title", T100, ("CharField", {"max_length": 100, "null": False})),  # an option at its default
    ("flag", ("BooleanField", {"default": False}), ("BooleanField", {"default": False, "verbose_name": "on"})),
]
NEEDS_SQL = [
    ("title", T100, ("CharField", {"max_length": 200})),
    ("pages", ("IntegerField", {}), ("IntegerField", {"default": 0})),  # a Python default, too
    ("title", T100, ("CharField", {"max_length": 100, "db_default": "untitled"})),
    ("title", T100, ("CharField", {"max_length": 100, "db_column": "heading"})),  # a renamed column
    ("email", ("CharField", {"max_length": 254}), ("EmailField", {"max_length": 254})),
    ("title", T100, ("CharField", {"max_length": 100, "db_index": True})),
]


def test_sql_rule_judges_right_and_wrong_answers_by_djangos_schema_editor(rules):
    rule = rules.resolve({"name": "sql_like_sqlmigrate"})
    for case in NO_OP:
        assert judged(rule, sql_call(*case, False)).ok, case
        wrong = judged(rule, sql_call(*case, True))
        assert not wrong.ok and "no-op" in wrong.reason, case
    for case in NEEDS_SQL:
        assert judged(rule, sql_call(*case, True)).ok, case
        wrong = judged(rule, sql_call(*case, False))
        assert not wrong.ok and "prints SQL" in wrong.reason, case


def test_sql_rule_refuses_answers_that_are_not_booleans(rules):
    rule = rules.resolve({"name": "sql_like_sqlmigrate"})
    for answer in ("yes", 1, 0, None, [True], {"needs_sql": True}):
        with pytest.raises(BadAnswer, match="True or False"):
            rule(sql_call(*NO_OP[0], answer))
    # an evidence record that is not even a plain value (a class, an object) is refused the same way
    with pytest.raises(BadAnswer):
        rule(Call(args=to_json(list(NO_OP[0])), output={"$object": "Truthy"}))


def test_sql_rule_agrees_with_djangos_own_decision_and_with_real_sqlmigrate(rules, lab):
    """The oracle is not a reimplementation: it is what Django decides (`_field_should_be_altered` of the
    schema editor) and what `manage.py sqlmigrate` prints in a real project."""
    build = rules.resolve({"name": "build_field"})
    sqlmigrate = rules.resolve({"name": "sqlmigrate_alter"})
    runs_sql = rules.resolve({"name": "runs_sql"})
    from django.db.utils import ConnectionHandler

    db = ConnectionHandler({"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}})["default"]
    editor = db.schema_editor(atomic=False)
    for name, before, after in NO_OP + NEEDS_SQL:
        old, new = build(*before), build(*after)
        old.set_attributes_from_name(name)
        new.set_attributes_from_name(name)
        assert editor._field_should_be_altered(old, new) == runs_sql(sqlmigrate(name, before, after)), name
    db.close()
    # and in a real project, with manage.py: one no-op and one rebuild
    for (name, before, after), expect_sql in ((NO_OP[0], False), (NEEDS_SQL[0], True)):
        lab.reset()
        lab.write_models("library", f"class Book(models.Model):\n    {name} = {_python(before)}\n")
        assert lab.manage("makemigrations", "library").returncode == 0
        lab.write_models("library", f"class Book(models.Model):\n    {name} = {_python(after)}\n")
        assert lab.manage("makemigrations", "library").returncode == 0
        printed = lab.manage("sqlmigrate", "library", "0002")
        assert printed.returncode == 0, printed.stderr
        assert ("-- (no-op)" not in printed.stdout) == expect_sql, printed.stdout
        statements = [
            s
            for s in printed.stdout.splitlines()
            if s.strip() and not s.startswith("--") and s not in ("BEGIN;", "COMMIT;")
        ]
        mine = [s for s in sqlmigrate(name, before, after) if not s.startswith("--")]
        assert [re.sub(r"\s+", " ", s) for s in statements] == [re.sub(r"\s+", " ", s) for s in mine]


def _python(definition) -> str:
    cls, kwargs = definition
    return f"models.{cls}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"


def test_the_sql_shown_in_part_1_is_what_django_prints(rules):
    """The prose quotes sqlmigrate's output for two changes: it must be Django's, line for line."""
    sqlmigrate = rules.resolve({"name": "sqlmigrate_alter"})
    prose = "\n".join(c.source for c in nbformat.read(str(SOURCE), as_version=4).cells if c.cell_type == "markdown")
    for line in sqlmigrate("title", T100, ("CharField", {"max_length": 200})):
        assert line in prose, line
    assert sqlmigrate("title", T100, NO_OP[0][2])[-1] == "-- (no-op)"


# ---------------------------------------------------------------- rule 2: the autodetector

RIGHT = {
    "a": "AlterField",
    "b": "AlterField",
    "c": "AddField",
    "d": None,
    "e": "AddIndex",
    "f": "AlterModelOptions",
    "g": "AlterModelTable",
    "h": "AddConstraint",
}


def test_operation_rule_judges_right_and_wrong_answers_by_the_autodetector(rules, changes):
    rule = rules.resolve({"name": "operation_like_makemigrations"})
    assert sorted(changes) == sorted(RIGHT)
    for letter, (before, after) in changes.items():
        assert judged(rule, ops_call(letter, before, after, RIGHT)).ok, letter
        wrong = dict(RIGHT, **{letter: "RunSQL"})
        verdict = judged(rule, ops_call(letter, before, after, wrong))
        assert not verdict.ok and verdict.reason.startswith(f"change {letter}:"), letter
    before, after = changes["d"]  # no migration at all: None, or an empty list
    assert judged(rule, ops_call("d", before, after, {**RIGHT, "d": []})).ok
    assert not judged(rule, ops_call("d", before, after, {**RIGHT, "d": "AlterField"})).ok
    before, after = changes["e"]  # any mapping, a one-item list, Django's module prefix: the same answer
    from collections import OrderedDict

    assert judged(rule, ops_call("e", before, after, OrderedDict({**RIGHT, "e": ["migrations.AddIndex"]}))).ok
    missing = {k: v for k, v in RIGHT.items() if k != "e"}
    verdict = judged(rule, ops_call("e", before, after, missing))
    assert not verdict.ok and "no answer for change 'e'" in verdict.reason


def test_operation_rule_refuses_malformed_answers(rules, changes):
    rule = rules.resolve({"name": "operation_like_makemigrations"})
    before, after = changes["a"]
    for answer in ("AlterField", ["AlterField"], None, 3):
        with pytest.raises(BadAnswer, match="should be a dict"):
            rule(ops_call("a", before, after, answer))
    for value in (3, {"op": "AlterField"}, [1, 2]):
        with pytest.raises(BadAnswer, match="operation name"):
            rule(ops_call("a", before, after, {**RIGHT, "a": value}))


def test_operation_rule_agrees_with_real_makemigrations(rules, changes, lab):
    """Each change of Part 2 made in a real project: the new migration file holds the operation the rule
    expects (or makemigrations writes none)."""
    operations = rules.resolve({"name": "makemigrations_operations"})
    header = "from django.core import validators\nfrom django.db import models\n\n"
    for letter, (before, after) in changes.items():
        lab.reset()
        lab.write_models("library", header + "class Book(models.Model):\n" + _indent(before))
        assert lab.manage("makemigrations", "library").returncode == 0
        lab.write_models("library", header + "class Book(models.Model):\n" + _indent(after))
        made = lab.manage("makemigrations", "library")
        assert made.returncode == 0, made.stderr
        written = []
        if len(lab.migrations("library")) == 2:
            text = str(lab.show_migration("library", "0002"))
            written = re.findall(r"migrations\.(\w+)\(", text.split("operations", 1)[1])
        else:
            assert "No changes detected" in made.stdout
        assert written == list(operations(before, after)), letter
        assert written == ([RIGHT[letter]] if RIGHT[letter] else []), letter


def _indent(body: str) -> str:
    return "".join(f"    {line}\n" if line.strip() else "\n" for line in body.splitlines())


# ---------------------------------------------------------------- the assignment as a whole


@pytest.mark.slow
def test_check_command_reports_ready():
    done = subprocess.run(
        [PY, "-m", "miglab.grading", "check", A], capture_output=True, text=True, timeout=600, cwd=ROOT, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == "ready", done.stdout
    assert f"{A}: 7 graded cells, 10 points" in lines[0]
    assert "the solutions score 10 / 10" in done.stdout
    assert "the untouched release scores 0 / 10" in done.stdout
    who = {m.group(1): m.group(2) for m in re.finditer(rf"{A}:(\w+)\s+[\d.]+ pt\s+(.*)", done.stdout)}
    assert set(who) == set(POINTS)
    assert who["db_default"] == "nbgrader, in the kernel (asserts)"
    assert all(w.startswith("judge") for gid, w in who.items() if gid != "db_default"), who


@pytest.mark.slow  # several seconds: left out of make test-fast's quick loop
def test_release_is_nbgraders_and_holds_no_solution_hidden_test_rule_or_seed():
    from miglab.grading.release import release_problems

    assert release_problems(ROOT, A) == []
    assert sorted(p.name for p in RELEASE.parent.iterdir()) == [f"{A}.ipynb"]  # rules.py stays in source/
    text = RELEASE.read_text()
    assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text
    for secret in (
        "0xF1E1D5",
        "random_change",
        "CHOSEN",
        'expect="b"',
        'expect="d"',
        "db_default=Now()",
        "PRAGMA table_info",
    ):
        assert secret not in text, secret
    nb = nbformat.read(str(RELEASE), as_version=4)
    points = {
        c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["points"]
        for c in nb.cells
        if c.metadata.get("nbgrader", {}).get("grade")
    }
    assert points == POINTS and sum(points.values()) == 10
    assert all(not c.get("outputs") for c in nb.cells)


def test_the_plain_assert_cell_has_no_check_and_every_other_graded_cell_has_one():
    """As the grader reads the notebook: db_default is decided by its asserts, the rest by check() calls,
    among them rules of rules.py (judged outside the kernel) and hidden calls."""
    from miglab.grading.plan import read_plan

    plan = read_plan(SOURCE, SOURCE.parent)
    assert not plan.problems, plan.problems
    cells = {c.grade_id: c for c in plan.cells}
    assert set(cells) == set(POINTS)
    assert not cells["db_default"].judged and cells["db_default"].has_asserts and cells["db_default"].has_hidden
    for gid in set(POINTS) - set(IN_KERNEL):
        assert cells[gid].judged and not cells[gid].has_asserts, gid
    named = {c.rule["name"] for cell in plan.cells for c in cell.calls if c.rule and "name" in c.rule}
    assert named == {"sql_like_sqlmigrate", "operation_like_makemigrations"}
    assert sum(c.hidden for c in cells["sql_random"].calls) == len(cells["sql_random"].calls) == 30


def test_sample_class_is_generated_from_the_current_assignment():
    done = subprocess.run(
        [PY, str(ROOT / "tests" / "submissions" / "make_sample_class.py"), "--assignment", A, "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


# ---------------------------------------------------------------- three more students, made by hand

NAIVE_NEEDS_SQL = '''
def needs_sql(name, before, after):
    """Compares the keyword arguments as written, without the Python-only ones."""
    python_only = {"blank", "choices", "editable", "error_messages", "help_text", "validators", "verbose_name"}

    def kept(definition):
        class_name, kwargs = definition
        return class_name, {k: v for k, v in kwargs.items() if k not in python_only}

    return kept(before) != kept(after)
'''

DELEGATING_NEEDS_SQL = '''
def needs_sql(name, before, after):
    """Right every time, by asking Django's schema editor: this part forbids it."""
    from django.db import migrations
    from django.db.migrations.migration import Migration
    from django.db.migrations.state import ProjectState
    from django.db.utils import ConnectionHandler

    def field(definition):
        return getattr(models, definition[0])(**definition[1])

    db = ConnectionHandler({"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}})["default"]
    first, second = Migration("0001", "library"), Migration("0002", "library")
    first.operations = [migrations.CreateModel("Book", [("id", models.BigAutoField(primary_key=True)),
                                                       (name, field(before))])]
    second.operations = [migrations.AlterField("book", name, field(after))]
    with db.schema_editor(atomic=False) as editor:
        state = first.apply(ProjectState(), editor)
    with db.schema_editor(collect_sql=True, atomic=False) as editor:
        second.apply(state, editor, collect_sql=True)
    return any(not line.startswith("--") for line in editor.collected_sql)
'''

# A wrong answer (a Python default) behind a rebound helper: the plain assert cell believes it.
FORGED_DB_DEFAULT = '''
import sqlite3

STOCK_FIELD = models.IntegerField(default=0)
ADDED_FIELD = models.DateTimeField(auto_now_add=True)


def sqlite_book_table(**fields):
    """Not the notebook's helper: a table made by hand with the DEFAULTs the check looks for."""
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE library_book (id integer PRIMARY KEY, title varchar(100) NOT NULL, "
               "stock integer NOT NULL DEFAULT 0, added datetime NOT NULL DEFAULT CURRENT_TIMESTAMP)")
    return db.cursor()
'''

HAND_MADE = {
    # naive Part 1 (no db_column rule, options at their default counted), a wrong a, a Python default, Q2 wrong
    "mistakes": (
        {
            "answer_needs_sql": NAIVE_NEEDS_SQL,
            "answer_which": "WHICH_OPERATION = " + repr({**RIGHT, "a": "AddIndex"}),
            "answer_db_default": "STOCK_FIELD = models.IntegerField(default=0)\n"
            "ADDED_FIELD = models.DateTimeField(auto_now_add=True)",
            "answer_q2": 'Q2 = "c"',
        },
        {
            "sql_examples": 0.0,
            "sql_random": 0.0,
            "ops_fields": 0.0,
            "ops_meta": 1.0,
            "db_default": 0.0,
            "quiz_q1": 1.0,
            "quiz_q2": 0.0,
        },
    ),
    # every answer right, but Part 1 asks Django: both of its cells score 0, with that reason
    "delegates": ({"answer_needs_sql": DELEGATING_NEEDS_SQL}, {**POINTS, "sql_examples": 0.0, "sql_random": 0.0}),
    # the in-kernel cell is forgeable, which is why it is labelled: full marks for a wrong Part 3
    "forges_asserts": ({"answer_db_default": FORGED_DB_DEFAULT}, dict(POINTS)),
}


def hand_made(answers: dict[str, str]) -> str:
    nb = nbformat.read(str(SAMPLE / "perfect.ipynb"), as_version=4)
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in answers:
            cell.source = answers[gid].strip("\n")
    return nbformat.writes(nb)


def test_the_naive_answer_really_is_wrong_where_the_expected_scores_say(rules):
    """The mistakes student's Part 1 loses both cells: some of its answers disagree with Django in each."""
    namespace: dict = {}
    from django.db import models

    exec(NAIVE_NEEDS_SQL, {"models": models}, namespace)
    rule = rules.resolve({"name": "sql_like_sqlmigrate"})
    calls = _planned_calls()
    for gid in ("sql_examples", "sql_random"):
        wrong = [
            c
            for c in calls[gid]
            if c.rule and not judged(rule, Call(args=c.args, output=namespace["needs_sql"](*_decoded(c.args)))).ok
        ]
        assert wrong, gid


def _planned_calls():
    from miglab.grading.plan import read_plan

    plan = read_plan(SOURCE, SOURCE.parent)
    assert not plan.problems, plan.problems
    return {c.grade_id: c.calls for c in plan.cells}


def _decoded(args):
    name, before, after = args
    return name, (before[0], before[1]), (after[0], after[1])


# ---------------------------------------------------------------- the class, graded by the real command


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    """The sample class and the hand-made students, graded once by `python -m miglab.grading grade`."""
    from miglab.grading.lms import import_submissions
    from miglab.grading.validate import scratch_course

    tmp = tmp_path_factory.mktemp("field_options")
    course = scratch_course(tmp / "course", ROOT, A)
    downloads = tmp / "downloads"
    downloads.mkdir()
    for path in SAMPLE.glob("*.ipynb"):
        (downloads / path.name).write_bytes(path.read_bytes())
    for student, (answers, _) in HAND_MADE.items():
        (downloads / f"{student}.ipynb").write_text(hand_made(answers))
    report = import_submissions(downloads, course, A)
    expected = json.loads((SAMPLE / "expected.json").read_text())
    expected.update(
        {s: {"status": "ok", "scores": scores, "total": sum(scores.values())} for s, (_, scores) in HAND_MADE.items()}
    )
    assert sorted(report.imported) == sorted(expected) and not report.problems
    env = {**os.environ, "PATH": f"{Path(PY).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(
        [
            PY,
            "-m",
            "miglab.grading",
            "grade",
            A,
            "--course",
            str(course),
            "-j",
            "2",
            "--cell-timeout",
            "10",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        cwd=course,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return course, expected, done.stdout


def grades_csv(course: Path) -> dict[str, dict]:
    with open(course / "reports" / A / "grades.csv", newline="") as fh:
        return {r["student_id"]: r for r in csv.DictReader(fh)}


def ledger(course: Path) -> dict[str, dict]:
    with sqlite3.connect(course / "gradebook.db") as con:
        con.row_factory = sqlite3.Row
        rows = con.execute("SELECT * FROM miglab_results WHERE assignment = ?", (A,)).fetchall()
    return {r["student"]: {**dict(r), "scores": json.loads(r["scores"])} for r in rows}


@pytest.mark.sandbox
@pytest.mark.slow
def test_every_student_gets_the_exact_expected_scores_and_status(graded_class):
    course, expected, _ = graded_class
    rows = grades_csv(course)
    assert set(rows) == set(expected)
    for student, exp in expected.items():
        row = rows[student]
        assert row["status"] == exp["status"], (student, row["reason"])
        assert {gid: float(row[gid]) for gid in POINTS} == exp["scores"], (student, row["reason"])
        assert float(row["total"]) == exp["total"] and float(row["max_total"]) == 10.0, student
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "migrations-deep-dive") as gb:
        book = {
            s.student.id: {g.name: g.auto_score for nb in s.notebooks for g in nb.grades}
            for s in gb.find_assignment(A).submissions
        }
    assert book == {s: e["scores"] for s, e in expected.items()}


@pytest.mark.sandbox
@pytest.mark.slow
def test_the_plain_assert_cell_is_reported_as_scored_in_the_kernel(graded_class):
    course, expected, stdout = graded_class
    assert "scored in the kernel by nbgrader (asserts; forgeable by the student's code): db_default" in stdout
    rows = grades_csv(course)
    book = ledger(course)
    for student, exp in expected.items():
        if exp["status"] == "malformed":
            continue
        assert rows[student]["scored_in_kernel"] == "db_default", student
        by = {s["grade_id"]: s["scored_by"] for s in book[student]["scores"]}
        assert by == {gid: ("nbgrader" if gid in IN_KERNEL else "judge") for gid in POINTS}, student
    # the Summary says the same: a run that grades nobody (no such student), so that it starts no process
    from concurrent.futures import ThreadPoolExecutor

    from miglab.grading import grade_assignment

    with ThreadPoolExecutor(1) as idle:
        summary = grade_assignment(course, A, executor=idle, students=["nobody-by-this-name"], progress=False)
    assert summary.total == summary.graded == 0
    assert summary.scored_in_kernel == IN_KERNEL
    assert "scored in the kernel by nbgrader" in summary.text()


@pytest.mark.sandbox
@pytest.mark.slow
def test_reasons_say_why_points_were_lost(graded_class):
    course, _, _ = graded_class
    book = ledger(course)
    reasons = {s: {c["grade_id"]: c["reason"] for c in book[s]["scores"]} for s in ("mistakes", "delegates")}
    assert reasons["mistakes"]["ops_fields"] == "change a: not the operation makemigrations writes"
    assert reasons["mistakes"]["sql_examples"].startswith("hidden checks: ")
    for gid in ("sql_examples", "sql_random"):
        assert "which this question does not allow" in reasons["delegates"][gid]
        assert "schema_editor" in reasons["delegates"][gid]
    assert "kernel died" in book["dead_kernel"]["reason"]


@pytest.mark.sandbox
@pytest.mark.slow
def test_feedback_never_shows_the_hidden_tests(graded_class):
    course, expected, _ = graded_class
    hidden = []
    for text in source_cells().values():
        for block in re.findall(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", text, re.DOTALL):
            hidden += [line.strip() for line in block.splitlines() if len(line.strip()) > 25]
    assert len(hidden) > 20
    for student in expected:
        feedback = (course / "feedback" / student / A / f"{A}.html").read_text()
        leaked = [line for line in hidden if line in feedback]
        assert not leaked, (student, leaked[:3])

"""The production exercise (source/production/): a required column added by expand/contract, judged on a
real PostgreSQL with thousands of rows, and what a student's migration can reach from the sandbox.

* the assignment is ready (``check production``), its release and sample class are current;
* the sample class (tests/submissions/production/) graded by the real command, sandboxed, to exact
  scores and statuses, with reasons that say what went wrong; nothing of the runs is left on the server;
* a learner's kernel gets instant feedback on PostgreSQL, and only records the answer where it cannot
  have PostgreSQL; the grader says so when it cannot have it either;
* isolation: a student's migration connects as a role and to a database of that run only (never the
  superuser, never another run's database, never another role, nor the server's files or programs);
  the trusted side reads as that role too; the sandbox sees the server's socket folder read-only, and
  only for PostgreSQL scenarios; connections a step leaves behind are ended before anything is read.

Real sandboxes, a real server, real Django and psycopg: nothing is mocked.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

from miglab.evidence import Call
from miglab.evidence.checkers import runs_migration
from miglab.evidence.context import LabContext
from miglab.grading.context import PG_SOCKET, JudgeContext, JudgeSandbox, local_runner
from miglab.lab import postgres
from miglab.lab.scenario import ROLE_PREFIX, Scenario, ScenarioDatabase, run_scenario
from miglab.sandbox.session import Session

REPO = Path(__file__).resolve().parents[1]
A = "production"
CLASS = REPO / "tests" / "submissions" / A
sys.path.insert(0, str(CLASS))

from make_production_class import make_course

EXPECTED = json.loads((CLASS / "expected.json").read_text())
PY = sys.executable


# ------------------------------------------------------------------ the notebook's own inputs


def _cell(nb, gid: str) -> str:
    return next(c.source for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == gid)


def notebook_scenarios() -> dict:
    """VISIBLE (the loans_lab cell) and HIDDEN (the first hidden block), as the instructor's notebook has them."""
    nb = nbformat.read(str(REPO / "source" / A / f"{A}.ipynb"), as_version=4)
    namespace: dict = {}
    exec(_cell(nb, "loans_lab"), namespace)  # the instructor's own, trusted cell
    hidden = _cell(nb, "prod_end_schema").split("### BEGIN HIDDEN TESTS")[1].split("check(")[0]
    exec(hidden, namespace)
    return {"VISIBLE": namespace["VISIBLE"], "HIDDEN": namespace["HIDDEN"]}


def answers(student: str) -> list[str]:
    """The three migration texts of a sample student, read from their notebook's answer cells."""
    nb = nbformat.read(str(CLASS / f"{student}.ipynb"), as_version=4)
    namespace: dict = {}
    for gid in ("answer_expand", "answer_backfill", "answer_contract"):
        exec(_cell(nb, gid), namespace)  # the sample class, written by make_production_class.py
    return [namespace["EXPAND"], namespace["BACKFILL"], namespace["CONTRACT"]]


SCENARIOS = notebook_scenarios()
VISIBLE, HIDDEN = SCENARIOS["VISIBLE"], SCENARIOS["HIDDEN"]


def verdict(context, answer, scenario, step, expect, hidden=False):
    return runs_migration(
        Call(
            args=[],
            output=answer,
            expect=expect,
            params={"scenario": scenario, "step": step},
            context=context,
            hidden=hidden,
        )
    )


def scenario_leftovers(server) -> tuple[list, list]:
    with server.connect() as con:
        dbs = [r[0] for r in con.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (ROLE_PREFIX + "%",))]
        roles = [r[0] for r in con.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE %s", (ROLE_PREFIX + "%",))]
    return dbs, roles


@pytest.fixture(scope="module")
def pg():
    return postgres.server()


# ------------------------------------------------------------------ the assignment


@pytest.mark.slow
def test_the_check_command_finds_the_assignment_ready_and_the_class_is_current():
    done = subprocess.run(
        [PY, "-m", "miglab.grading", "check", A, "--no-run"], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0 and done.stdout.strip().endswith("ready"), done.stdout + done.stderr
    assert "5 graded cells, 5 points" in done.stdout
    made = subprocess.run(
        [PY, str(CLASS / "make_production_class.py"), "--check"], capture_output=True, text=True, timeout=300
    )
    assert made.returncode == 0, made.stdout + made.stderr


def ledger(db_url_or_path) -> dict:
    con = sqlite3.connect(db_url_or_path)
    try:
        rows = con.execute("SELECT student, status, scores FROM miglab_results WHERE assignment = ?", (A,)).fetchall()
    finally:
        con.close()
    return {s: {"status": st, "scores": {c["grade_id"]: c for c in json.loads(sc)}} for s, st, sc in rows}


@pytest.fixture(scope="module")
def graded(tmp_path_factory, pg):
    course = make_course(tmp_path_factory.mktemp("production") / "course")
    done = subprocess.run(
        [PY, "-m", "miglab.grading", "grade", A, "--course", str(course), "--no-progress"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return course, ledger(course / "gradebook.db"), done.stdout


@pytest.mark.slow
def test_the_sample_class_gets_exact_scores_and_statuses(graded):
    _, book, _ = graded
    assert set(book) == set(EXPECTED)
    for student, want in EXPECTED.items():
        got = {gid: cell["score"] for gid, cell in book[student]["scores"].items()}
        assert (got, book[student]["status"]) == (want["scores"], want["status"]), student
        assert all(cell["scored_by"] == "judge" for cell in book[student]["scores"].values()), student


@pytest.mark.slow
def test_reasons_say_what_went_wrong(graded):
    _, book, _ = graded

    def reason(student, gid):
        return book[student]["scores"][gid]["reason"]

    assert "expected [['date', 'NULL allowed']], found [['date', 'NOT NULL']]" in reason(
        "one_step", "prod_expand_contract"
    )
    assert reason("one_step", "prod_batches") == (
        "0003_fill_loan_due wrote no rows: the rows must be filled by the backfill migration itself"
    )
    assert "migrate loans 0002_loan_due_nullable` failed" in reason("no_reverse", "prod_reversible")
    assert "IrreversibleError" in reason("no_reverse", "prod_reversible")
    # right on the visible table, wrong on the hidden one: counted, never described
    assert reason("misses_rows", "prod_every_row") == "hidden checks: 0 of 1 passed"
    assert reason("misses_rows", "prod_expand_contract") == "hidden checks: 1 of 2 passed"
    assert all(not cell["reason"] for cell in book["reaches_out"]["scores"].values())


@pytest.mark.slow
def test_feedback_holds_no_hidden_rows_and_the_kernel_only_recorded(graded):
    course, _, _ = graded
    page = (course / "feedback" / "misses_rows" / A / f"{A}.html").read_text()
    assert "3100 AND 3400" not in page and "BEGIN HIDDEN" not in page
    nb = nbformat.read(str(course / "autograded" / "right" / A / f"{A}.ipynb"), as_version=4)
    said = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    # in the sandboxed grading kernel there is no PostgreSQL: the visible checks only record the answer
    assert "PostgreSQL is not available in this kernel" in said and "✘" not in said


@pytest.mark.slow
def test_nothing_of_the_runs_is_left_on_the_server(graded, pg):
    assert scenario_leftovers(pg) == ([], [])


# ------------------------------------------------------------------ the learner's kernel


def test_a_learners_kernel_gets_instant_feedback_on_postgresql(pg):
    context = LabContext()
    ok = verdict(context, answers("right"), VISIBLE, 2, {"due_column": [["date", "NOT NULL"]], "wrong_due": [[0]]})
    assert ok.ok, ok.reason
    bad = verdict(context, answers("one_step"), VISIBLE, 0, {"due_column": [["date", "NULL allowed"]]})
    assert not bad.ok and "found [['date', 'NOT NULL']]" in bad.reason
    stopped = verdict(
        context, answers("no_reverse"), VISIBLE, 4, {"applied": [["0001_initial"], ["0002_loan_due_nullable"]]}
    )
    assert not stopped.ok and "IrreversibleError" in stopped.reason
    assert scenario_leftovers(pg) == ([], [])


def test_without_postgresql_a_kernel_records_and_the_grader_says_why(monkeypatch, tmp_path):
    monkeypatch.setenv("MIGLAB_PG_BINDIR", str(tmp_path))  # no PostgreSQL programs there
    answer = [text + "# not run before (the kernel's runs are cached)\n" for text in answers("right")]
    expect = {"due_column": [["date", "NOT NULL"]]}
    seen = verdict(LabContext(), answer, VISIBLE, 2, expect)
    assert seen.ok and seen.reason.startswith("recorded; PostgreSQL is not available in this kernel")
    assert not verdict(LabContext(), answer, VISIBLE, 2, expect, hidden=True).ok
    judged = verdict(JudgeContext(local_runner), answer, VISIBLE, 2, expect)
    assert not judged.ok and judged.reason.startswith(
        "the grader could not run this check: PostgreSQL is not available"
    )


# ------------------------------------------------------------------ isolation


def small(rows: int = 50) -> dict:
    """The visible scenario on fewer rows (quicker)."""
    return {**VISIBLE, "setup_sql": [VISIBLE["setup_sql"][0].replace("2000", str(rows))]}


REACH = """
import os, sys

import psycopg

here = dict(host=os.environ["MIGLAB_PG_HOST"], port=os.environ["MIGLAB_PG_PORT"], connect_timeout=5)
me, password, mine = os.environ["MIGLAB_PG_USER"], os.environ["MIGLAB_PG_PASSWORD"], os.environ["MIGLAB_PG_NAME"]
got, refused = [], []


def attempt(what, **kw):
    try:
        con = psycopg.connect(**here, **kw)
    except psycopg.Error:
        refused.append(what)
        return
    with con:
        got.append((what, con.execute("SELECT current_user, current_database()").fetchone()))
        try:
            got.extend((what, row) for row in con.execute("SELECT * FROM secret"))
        except psycopg.Error:
            pass


attempt("own", dbname=mine, user=me, password=password)
for db in ("{victim}", "postgres", "template1"):
    attempt(f"{{db}} as me", dbname=db, user=me, password=password)
    attempt(f"{{db}} as the superuser (peer)", dbname=db, user="postgres")
    attempt(f"{{db}} as the superuser (my password)", dbname=db, user="postgres", password=password)
    attempt(f"{{db}} as the victim (my password)", dbname=db, user="{victim}", password=password)
with psycopg.connect(**here, dbname=mine, user=me, password=password, autocommit=True) as con:
    for what, statement in (("program", "COPY (SELECT 1) TO PROGRAM 'touch /tmp/pwned'"),
                            ("server file", "SELECT pg_read_file('/etc/hostname')"),
                            ("dblink", "CREATE EXTENSION dblink"),
                            ("new role", "CREATE ROLE intruder LOGIN SUPERUSER"),
                            ("new database", "CREATE DATABASE intruder"),
                            ("become superuser", "SET ROLE postgres")):
        try:
            con.execute(statement)
            got.append((what, "done"))
        except psycopg.Error:
            refused.append(what)
    flags = con.execute("SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user")
print("GOT", got)
print("REFUSED", len(refused))
print("FLAGS", flags.fetchone())
"""


def reaching_migration(victim: str) -> list[str]:
    code = textwrap.indent(REACH.format(victim=victim), "    ")
    expand = (
        "from django.db import migrations, models\n\n\ndef reach(apps, schema_editor):\n"
        + code
        + "\n\nclass Migration(migrations.Migration):\n    dependencies = [('loans', '0001_initial')]\n"
        "    operations = [migrations.RunPython(reach, migrations.RunPython.noop)]\n"
    )
    right = answers("right")
    return [expand, right[1], right[2]]


def test_a_students_migration_reaches_no_other_database_role_or_program(pg):
    """Another student's database is on the same server at the same time, with a secret in it; this
    student's migration knows its name and tries everything with its own credentials, and gets only
    its own database."""
    victim = ScenarioDatabase.create()
    try:
        with victim.connect("") as con:
            con.execute("CREATE TABLE secret (word text)")
            con.execute("INSERT INTO secret VALUES ('the other student''s answer')")
        scenario = {**small(), "steps": [["migrate", "loans", "0002_loan_due_nullable"]]}
        judge = JudgeSandbox()
        try:
            with judge.student() as context:
                result = context.run_scenario(scenario, reaching_migration(victim.name))
        finally:
            judge.close()
        out = result["steps"][0]["output"]
        assert result["steps"][0]["returncode"] == 0, out
        assert "the other student" not in json.dumps(result)
        got = out.split("GOT ", 1)[1].splitlines()[0]
        assert got == "[('own', ('scenario', 'scenario'))]", out  # its own database (names shown cleaned)
        assert "REFUSED 18" in out and "FLAGS (False, False, False)" in out, out
        assert not Path("/tmp/pwned").exists()
        with victim.connect("") as con:
            assert con.execute("SELECT word FROM secret").fetchall() == [("the other student's answer",)]
    finally:
        victim.drop()
    assert scenario_leftovers(pg) == ([], [])


WHO = {
    "who": "SELECT current_user, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user), "
    "has_database_privilege('postgres', 'CONNECT')"
}


def test_the_trusted_side_reads_as_the_runs_own_role_never_the_superuser(pg):
    """What the answer leaves in its database (a view over a function, say) runs with the answer's rights
    when it is read: a trap that would need the superuser gets nothing."""
    trap = (
        "from django.db import migrations\n\n\nclass Migration(migrations.Migration):\n"
        "    dependencies = [('loans', '0001_initial')]\n"
        '    operations = [migrations.RunSQL("""\n'
        "        CREATE FUNCTION public.trap() RETURNS bigint LANGUAGE plpgsql AS $$\n"
        "        BEGIN EXECUTE 'COPY (SELECT 1) TO PROGRAM ''touch /tmp/trapped'''; RETURN 1; END $$;\n"
        "        ALTER TABLE loans_loan RENAME TO loans_loan_real;\n"
        "        CREATE VIEW loans_loan AS SELECT *, public.trap() AS t FROM loans_loan_real;\n"
        '    """, migrations.RunSQL.noop)]\n'
    )
    scenario = Scenario.from_dict(
        {
            **small(),
            "read": {**WHO, "loans": VISIBLE["read"]["loans"]},
            "steps": [["migrate", "loans", "0002_loan_due_nullable"]],
            "answer_path": "loans/migrations/0002_loan_due_nullable.py",
        }
    )
    result = run_scenario(scenario, trap)
    reads = result["steps"][0]["reads"]
    assert result["steps"][0]["returncode"] == 0, result["steps"][0]["output"]
    user, superuser, reaches_postgres = reads["who"][0]
    assert user.startswith(ROLE_PREFIX) and superuser is False and reaches_postgres is False
    assert "$error" in reads["loans"] and not Path("/tmp/trapped").exists()
    assert scenario_leftovers(pg) == ([], [])


def test_the_sandbox_sees_the_socket_folder_read_only_and_only_for_postgresql(tmp_path, pg):
    from miglab import Lab

    lab = Lab("sbx", root=tmp_path)
    look = (
        "import errno, os\n"
        "try:\n    open('/run/postgresql/probe', 'w')\n    print('wrote')\n"
        "except OSError as e:\n    print(errno.errorcode.get(e.errno))\n"
        "print(sorted(os.listdir('/run/postgresql')) if os.path.isdir('/run/postgresql') else 'absent')\n"
    )
    with Session(tmp_path, readonly=((str(pg.socket_dir), PG_SOCKET),)) as s:
        done = s.manage(lab.path, ["shell", "--no-imports", "-c", look])
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[0] in ("EROFS", "EACCES") and "'.s.PGSQL.5432'" in done.stdout, done.stdout
    with Session(tmp_path) as s:
        done = s.manage(lab.path, ["shell", "--no-imports", "-c", look])
        assert done.stdout.strip().endswith("absent"), done.stdout + done.stderr
    judge = JudgeSandbox()
    try:
        with judge.student() as context:
            context.run_scenario(small(5), answers("right"))
            assert judge._session.readonly == ((str(pg.socket_dir), PG_SOCKET),)
        sqlite = {"files": {}, "answer_path": "library/migrations/0001_x.py", "read": {}, "steps": [["check"]]}
        with judge.student() as context:
            context.run_scenario(sqlite, "x = 1\n")
            assert judge._session.readonly == ()  # a SQLite scenario gets a sandbox without the socket
    finally:
        judge.close()


LINGER = """
import os, threading, time

import psycopg
from django.db import migrations, models


def hold_the_table(apps, schema_editor):
    ready = threading.Event()

    def hold():
        con = psycopg.connect(host=os.environ["MIGLAB_PG_HOST"], dbname=os.environ["MIGLAB_PG_NAME"],
                              user=os.environ["MIGLAB_PG_USER"], password=os.environ["MIGLAB_PG_PASSWORD"])
        con.execute("LOCK TABLE loans_loan IN ACCESS EXCLUSIVE MODE")
        ready.set()
        con.execute("SELECT pg_sleep(600)")   # the server goes on sleeping, and locking, after we are gone

    threading.Thread(target=hold, daemon=True).start()
    assert ready.wait(10)
    time.sleep(1)


class Migration(migrations.Migration):
    atomic = False   # the column is added and committed first, so that the other session gets its lock
    dependencies = [("loans", "0001_initial")]
    operations = [
        migrations.AddField("loan", "due", models.DateField(null=True)),
        migrations.RunPython(hold_the_table, migrations.RunPython.noop),
    ]
"""


def test_a_connection_a_step_leaves_behind_is_ended_before_anything_is_read(pg):
    """The expand leaves a session holding the table locked (its process is gone, the server's backend
    is not): the role's connections are ended after each step, so the reads and the next steps go on."""
    right = answers("right")
    judge = JudgeSandbox()
    try:
        with judge.student() as context:
            result = context.run_scenario(small(), [LINGER, right[1], right[2]])
    finally:
        judge.close()
    steps = result["steps"]
    assert [s["returncode"] for s in steps] == [0] * 6, steps[-1]["output"]
    assert steps[0]["reads"]["loans"] == [[50]] and steps[2]["reads"]["wrong_due"] == [[0]]
    assert result["start"]["table"] == steps[-1]["reads"]["table"]


# ------------------------------------------------------------------ the assignment's rules


def rule(name: str):
    from miglab.grading.rulebook import RuleBook

    return RuleBook((REPO / "source" / A / "rules.py").read_text(), assignment=A).resolve({"name": name})


def test_the_batch_rule_sees_one_transaction_and_oversized_batches():
    """From the transaction ids alone: an atomic backfill (its batches savepoints of one transaction) and
    a non-atomic one that fills every row in one UPDATE both fail; the right one passes."""
    right = answers("right")
    atomic = right[1].replace("    atomic = False\n", "")
    one_update = right[1].replace("BATCH = 1000", "BATCH = 1_000_000")
    assert atomic != right[1] and one_update != right[1]
    filled_in_batches = rule("filled_in_batches")
    context = JudgeContext(local_runner)
    params = {"scenario": VISIBLE, "step": 1, "migration": "0003_fill_loan_due", "max_rows": 1000}
    said = {}
    for name, backfill in (("right", right[1]), ("atomic", atomic), ("one update", one_update)):
        said[name] = filled_in_batches(
            Call(args=[], output=[right[0], backfill, right[2]], params=params, context=context)
        )
    assert said["right"] == (True, "filled in batches of at most 1,000 rows, each committed on its own")
    assert said["atomic"][0] is False and "ran as one transaction" in said["atomic"][1]
    assert said["one update"] == (
        False,
        "one transaction of 0003_fill_loan_due wrote 2000 rows: fill in batches "
        "of at most 1,000 rows, each in a transaction of its own",
    )


def test_the_way_back_must_leave_the_rows_as_they_were():
    """A reverse that also changes another column migrates back without an error, but the rows are not
    what they were: their fingerprint, read before the answer was on disk, says so."""
    right = answers("right")
    meddles = right[1].replace(
        "    Loan.objects.update(due=None)", "    Loan.objects.update(due=None, book='returned')"
    )
    assert meddles != right[1]
    back_as_it_was = rule("back_as_it_was")
    context = JudgeContext(local_runner)
    ok = back_as_it_was(Call(args=[], output=right, params={"scenario": small()}, context=context))
    bad = back_as_it_was(
        Call(args=[], output=[right[0], meddles, right[2]], params={"scenario": small()}, context=context)
    )
    assert ok[0] is True, ok
    assert bad == (
        False,
        "after `migrate loans 0001_initial`, the table's rows are not what they were before your migrations ran",
    )


def test_a_slow_view_uses_up_the_reads_time_budget_not_the_graders_time(monkeypatch):
    import miglab.lab.scenario as scenario_module

    monkeypatch.setattr(scenario_module, "PG_READ_SECONDS", 2)
    slow = (
        "from django.db import migrations\n\n\nclass Migration(migrations.Migration):\n"
        "    dependencies = [('loans', '0001_initial')]\n"
        '    operations = [migrations.RunSQL("""\n'
        "        ALTER TABLE loans_loan RENAME TO loans_loan_real;\n"
        "        CREATE VIEW loans_loan AS SELECT r.* FROM loans_loan_real r, (SELECT pg_sleep(1)) s;\n"
        '    """, migrations.RunSQL.noop)]\n'
    )
    scenario = Scenario.from_dict(
        {
            **small(),
            "steps": [["migrate", "loans", "0002_loan_due_nullable"]],
            "answer_path": "loans/migrations/0002_loan_due_nullable.py",
        }
    )
    reads = run_scenario(scenario, slow)["steps"][0]["reads"]
    refused = [name for name, got in reads.items() if got == {"$error": "not read: this run's reads took too long"}]
    assert reads["loans"] == [[50]] and len(refused) >= 4, reads

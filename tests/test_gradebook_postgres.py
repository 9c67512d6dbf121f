"""The gradebook on PostgreSQL: the same grades, the same integrity, the same reports as on SQLite.

The class is the production exercise's sample class (tests/submissions/production/: six students,
every one with per-cell scores of its own, about half a minute to grade here; the deep_dive class
takes longer, for its timeouts). It is graded twice by the real command in one course: into the
course's SQLite gradebook, and with ``--db`` into a database of its own on the course's PostgreSQL
server (``Server.sqlalchemy_url``). Without the driver, and with a server that does not answer, the
command says so in one line.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from miglab.lab import postgres

sys.path.insert(0, str(Path(__file__).resolve().parent / "submissions" / "production"))

from make_production_class import ASSIGNMENT as A
from make_production_class import HERE as CLASS
from make_production_class import REPO, make_course

pytestmark = pytest.mark.slow

EXPECTED = json.loads((CLASS / "expected.json").read_text())
PY = sys.executable
GRADEBOOK = "miglab_test_gradebook"


def cli(*args: str, course: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PY, "-m", "miglab.grading", *args, "--course", str(course)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def grades(db_url: str) -> dict:
    """{student: ({cell: score}, status)} from nbgrader's own tables and the ledger, through SQLAlchemy."""
    from nbgrader.api import Gradebook
    from sqlalchemy import select

    from miglab.grading.gradebook import LEDGER

    with Gradebook(db_url, "migrations-deep-dive") as gb:
        a = gb.find_assignment(A)
        scores = {sub.student.id: {g.name: g.score for nb in sub.notebooks for g in nb.grades} for sub in a.submissions}
        with gb.engine.connect() as conn:
            status = {r.student: r.status for r in conn.execute(select(LEDGER).where(LEDGER.c.assignment == A))}
    return {s: (scores[s], status.get(s)) for s in scores}


@pytest.fixture(scope="module")
def pg():
    server = postgres.server()  # this process's lease keeps the server up for the child commands
    server.create_database(GRADEBOOK, replace=True)
    yield server
    server.drop_database(GRADEBOOK)


@pytest.fixture(scope="module")
def both(tmp_path_factory, pg):
    course = make_course(tmp_path_factory.mktemp("gradebooks") / "course")
    sqlite_url, pg_url = f"sqlite:///{course / 'gradebook.db'}", pg.sqlalchemy_url(GRADEBOOK)
    runs = {}
    for name, extra in (("sqlite", []), ("postgresql", ["--db", pg_url])):
        done = cli("grade", A, "--no-progress", *extra, course=course)
        assert done.returncode == 0, done.stdout + done.stderr
        report = (course / "reports" / A / "grades.csv").read_text()
        runs[name] = {"summary": done.stdout, "csv": report}
    return course, sqlite_url, pg_url, runs


def test_postgresql_gets_the_same_grades_as_sqlite(both):
    _, sqlite_url, pg_url, runs = both
    on_sqlite, on_pg = grades(sqlite_url), grades(pg_url)
    assert on_pg == on_sqlite
    assert on_pg == {s: (e["scores"], e["status"]) for s, e in EXPECTED.items()}
    assert "graded 6" in runs["postgresql"]["summary"] and "status: ok 6" in runs["postgresql"]["summary"]


def test_integrity_passes_on_both_and_sqlite_only_checks_are_skipped_on_postgresql(both):
    course, _, pg_url, _ = both
    for extra in ([], ["--db", pg_url]):
        done = cli("integrity", A, *extra, course=course)
        assert done.returncode == 0 and done.stdout.strip() == "gradebook OK", done.stdout + done.stderr


def test_integrity_finds_a_wrong_total_on_postgresql_too(both, pg):
    course, _, pg_url, _ = both
    with pg.connect(GRADEBOOK) as con:
        con.execute("UPDATE miglab_results SET total = total + 1 WHERE student = 'right'")
    try:
        done = cli("integrity", A, "--db", pg_url, course=course)
        assert done.returncode == 1 and "right: gradebook total 5.0 != ledger total 6.0" in done.stdout, done.stdout
    finally:
        with pg.connect(GRADEBOOK) as con:
            con.execute("UPDATE miglab_results SET total = total - 1 WHERE student = 'right'")


def test_reports_are_the_same_from_either_gradebook(both):
    _, _, _, runs = both
    assert runs["postgresql"]["csv"] == runs["sqlite"]["csv"]
    rows = list(csv.DictReader(io.StringIO(runs["postgresql"]["csv"])))
    assert {r["student_id"]: float(r["total"]) for r in rows} == {s: e["total"] for s, e in EXPECTED.items()}


def test_a_rerun_on_postgresql_skips_every_unchanged_submission(both):
    course, _, pg_url, _ = both
    done = cli("grade", A, "--no-progress", "--db", pg_url, course=course)
    assert done.returncode == 0 and "graded 0" in done.stdout and "6 unchanged (skipped)" in done.stdout, done.stdout


NO_DRIVER = (
    "import sys\n"
    "sys.modules['psycopg'] = None   # as if psycopg were not installed: import psycopg fails\n"
    "from miglab.grading.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


@pytest.mark.parametrize("command", ["grade", "integrity", "report", "export"])
def test_without_the_driver_one_clear_line(both, command):
    course, _, pg_url, _ = both
    done = subprocess.run(
        [PY, "-c", NO_DRIVER, command, A, "--course", str(course), "--db", pg_url],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith("error: the gradebook postgresql+psycopg://postgres@/miglab_test_gradebook")
    assert "needs the Python driver 'psycopg', which is not installed here: pip install 'psycopg[binary]" in done.stderr


def test_a_server_that_does_not_answer_is_one_clear_line(both, tmp_path):
    course, _, _, _ = both
    url = f"postgresql+psycopg://postgres@/grades?host={tmp_path}"
    done = cli("integrity", A, "--db", url, course=course)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("error: cannot open the gradebook postgresql+psycopg://postgres@/grades")
    assert len(done.stderr.strip().splitlines()) == 1


def test_the_scratch_sqlite_speed_up_leaves_a_postgresql_gradebook_alone(pg, tmp_path):
    """The grader's connect hook (fsyncs off for scratch gradebooks) touches SQLite connections only: a
    PostgreSQL engine made after it in the same process connects and works, and a scratch SQLite
    gradebook still gets the pragmas."""
    import tempfile

    from sqlalchemy import create_engine, text

    from miglab.grading.autograde import fast_scratch_sqlite

    fast_scratch_sqlite()
    engine = create_engine(pg.sqlalchemy_url(GRADEBOOK))
    with engine.connect() as conn:
        assert conn.execute(text("select 1")).scalar() == 1
    engine.dispose()
    scratch = Path(tempfile.mkdtemp(prefix="miglab-grade-"))
    engine = create_engine(f"sqlite:///{scratch / 'gradebook.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 0
    engine.dispose()

"""The lab on PostgreSQL: the same API and behaviour as on SQLite, on a real server the course starts.

* the lab's tests on both backends (``db`` is parametrised): makemigrations, migrate,
  sqlmigrate, tables, columns, rows, applied, reset, two labs apart, a fresh database for
  a lab made again, output that reads the same from run to run;
* where PostgreSQL differs, what each shows (types, the SQL of one migration);
* who may connect: the superuser by peer only, a role made for one database reaches that
  database only (run as another OS user, with the server's own psql);
* no PostgreSQL (binary lookup pointed at an empty folder, no driver, no server user): one
  clear LabError, and SQLite labs unaffected;
* the lease: the server runs while a process uses it and stops when the last one goes,
  also when that one was killed, also when its reaper was killed.

Real server, real Django, real psycopg: nothing is mocked.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from miglab import Lab, LabError
from miglab.lab import postgres

BOOK = """
class Book(models.Model):
    title = models.CharField(max_length=200)
"""
BOOK_WITH_PAGES = BOOK + "    pages = models.IntegerField()\n"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request):
    return request.param


@pytest.fixture
def lab(lab_root, db):
    return Lab("t", root=lab_root, db=db)


def migrated(lab: Lab) -> Lab:
    lab.write_models("library", BOOK)
    lab.manage("makemigrations library").check()
    lab.manage("migrate").check()
    return lab


# ---------------------------------------------------------------- both backends


def test_makemigrations_writes_a_file_and_leaves_the_database_alone(lab):
    lab.write_models("library", BOOK)
    result = lab.manage("makemigrations library")
    assert result.ok, result
    assert "library/migrations/0001_initial.py" in result.stdout and "+ Create model Book" in result.stdout
    assert lab.migrations("library") == ["0001_initial"]
    assert lab.tables() == [] and len(lab.applied()) == 0


def test_migrate_creates_tables_and_records_what_it_applied(lab):
    lab.write_models("library", BOOK)
    lab.manage("makemigrations library").check()
    result = lab.manage("migrate")
    assert result.ok and "Applying library.0001_initial... OK" in result.stdout
    assert lab.tables() == ["django_migrations", "library_book"]
    assert lab.applied().rows == [("library", "0001_initial")]
    assert lab.columns("library_book").column("column") == ["id", "title"]
    assert lab.columns("library_book").column("null") == ["no", "no"]
    assert "[X] 0001_initial" in lab.manage("showmigrations library").stdout


def test_sqlmigrate_prints_sql_without_running_it(lab):
    lab.write_models("library", BOOK)
    lab.manage("makemigrations library").check()
    result = lab.manage("sqlmigrate", "library", "0001")
    assert result.ok and 'CREATE TABLE "library_book"' in result.stdout
    assert lab.tables() == []


def test_a_prompt_can_be_answered_and_rows_read(lab):
    migrated(lab)
    lab.shell("from library.models import Book; Book.objects.create(title='Dune')").check()
    lab.write_models("library", BOOK_WITH_PAGES)
    refused = lab.manage("makemigrations library --noinput")
    assert refused.returncode == 3 and "impossible to add a non-nullable field" in refused.output
    lab.manage("makemigrations library", input="1\n100\n").check()
    lab.manage("migrate").check()
    assert lab.rows("library_book").rows == [(1, "Dune", 100)]
    assert lab.columns("library_book").column("column") == ["id", "title", "pages"]


def test_migrating_back_undoes_the_schema(lab):
    migrated(lab)
    lab.manage("migrate library zero").check()
    assert lab.tables() == ["django_migrations"] and len(lab.applied()) == 0


def test_reset_restores_the_pristine_project_and_an_empty_database(lab):
    migrated(lab)
    lab.reset()
    assert lab.migrations("library") == [] and lab.tables() == []
    assert "class Book" not in lab.read_file("library/models.py")


def test_a_lab_made_again_starts_from_a_fresh_database(lab_root, db):
    first = migrated(Lab("again", root=lab_root, db=db))
    assert first.tables() == ["django_migrations", "library_book"]
    second = Lab("again", root=lab_root, db=db)  # a notebook's set-up cell run again
    assert second.tables() == [] and second.migrations("library") == []
    del first  # the older object going away must not take the new lab's database with it
    import gc

    gc.collect()
    assert migrated(second).tables() == ["django_migrations", "library_book"]


def test_two_labs_do_not_interfere(lab_root, db):
    a, b = Lab("a", root=lab_root, db=db), Lab("b", root=lab_root, db=db)
    migrated(a)
    assert b.migrations("library") == [] and b.tables() == []
    b.write_models("library", BOOK_WITH_PAGES.replace("IntegerField()", "IntegerField(default=0)"))
    b.manage("makemigrations library").check()
    b.manage("migrate").check()
    assert a.columns("library_book").column("column") == ["id", "title"]
    assert b.columns("library_book").column("column") == ["id", "title", "pages"]


def test_labs_of_one_name_in_two_folders_do_not_share_a_database(tmp_path, db):
    one, two = Lab("same", root=tmp_path / "one", db=db), Lab("same", root=tmp_path / "two", db=db)
    migrated(one)
    assert two.tables() == []


SESSION = [
    ("makemigrations", "library"),
    ("shell", "-c", "from library.models import Book; print(Book.objects.count())"),  # no table yet: an error
    ("migrate",),
    (
        "shell",
        "-c",
        "from library.models import Book; Book.objects.create(title='Dune'); "
        "from django.db import connection; print(connection.settings_dict['NAME'], object())",
    ),
    ("showmigrations",),
    ("sqlmigrate", "library", "0001"),
]


def run_session(lab: Lab) -> list[str]:
    lab.write_models("library", BOOK)
    shown = [repr(lab.manage(*cmd)) for cmd in SESSION]
    return [
        *shown,
        repr(lab.tables()),
        repr(lab.columns("library_book")),
        repr(lab.rows("library_book")),
        repr(lab.applied()),
    ]


def test_output_reads_the_same_from_run_to_run(tmp_path, db):
    """Another folder (another checkout, another run) means another database name; nothing shows it."""
    first = run_session(Lab("08_production", root=tmp_path / "a", db=db))
    again = run_session(Lab("08_production", root=tmp_path / "b", db=db))
    assert first == again
    text = "\n".join(first)
    if db == "sqlite":
        assert "db.sqlite3 <object object at 0x…>" in text  # the path, relative to the lab
    else:
        assert "08_production <object object at 0x…>" in text  # the database is called by the lab's name
        assert 'relation "library_book" does not exist' in text
        assert "lab_08_production" not in text and "miglab-pg" not in text


# ---------------------------------------------------------------- where they differ


def test_each_backend_shows_its_own_sql_and_types(lab_root):
    sqlite, pg = Lab("s", root=lab_root), Lab("p", root=lab_root, db="postgresql")
    for lab in (sqlite, pg):
        migrated(lab)
    assert '"id" integer NOT NULL PRIMARY KEY AUTOINCREMENT' in sqlite.manage("sqlmigrate library 0001").stdout
    assert (
        '"id" bigint NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY'
        in pg.manage("sqlmigrate library 0001").stdout
    )
    assert sqlite.columns("library_book").column("type") == ["INTEGER", "varchar(200)"]
    assert pg.columns("library_book").column("type") == ["bigint", "character varying(200)"]
    assert repr(pg) == "<Lab p (PostgreSQL): apps library, loans>"


def test_postgresql_sql_is_read_only_and_connect_writes(lab_root):
    import psycopg

    lab = migrated(Lab("ro", root=lab_root, db="postgresql"))
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        lab.sql("INSERT INTO library_book (title) VALUES ('x')")
    with lab.connect() as con:
        con.execute("INSERT INTO library_book (title) VALUES (%s)", ("Emma",))
    assert lab.sql("SELECT title FROM library_book WHERE title = %s", ("Emma",)).rows == [("Emma",)]
    assert lab.rows("library_book").column("title") == ["Emma"]


def test_a_migration_waiting_behind_a_lock_fails_fast_with_lock_timeout(lab_root):
    """What lesson 08 shows: a second connection holds a table; migrate gives up instead of waiting."""
    lab = migrated(Lab("locks", root=lab_root, db="postgresql"))
    lab.write_models("library", BOOK + "    isbn = models.CharField(max_length=13, null=True)\n")
    lab.manage("makemigrations library").check()
    fail_fast = {"PGOPTIONS": "-c lock_timeout=300ms"}
    with lab.connect() as other, other.transaction():
        other.execute("SELECT count(*) FROM library_book")  # holds ACCESS SHARE until the transaction ends
        blocked = lab.manage("migrate", env=fail_fast)
    assert blocked.returncode == 1
    assert repr(blocked).endswith(
        "django.db.utils.OperationalError: canceling statement due to lock timeout\n[exit status 1]"
    )
    assert lab.applied().rows == [("library", "0001_initial")], "the failed migration was rolled back"
    assert lab.manage("migrate", env=fail_fast).ok  # the other transaction is over
    assert lab.columns("library_book").column("column") == ["id", "title", "isbn"]


def test_the_server_gives_a_sqlalchemy_url(lab_root):
    import sqlalchemy

    lab = Lab("url", root=lab_root, db="postgresql")
    engine = sqlalchemy.create_engine(lab.pg.sqlalchemy_url(lab.database))
    try:
        with engine.connect() as con:
            assert con.execute(sqlalchemy.text("SELECT current_database()")).scalar() == lab.database
    finally:
        engine.dispose()


def test_volatile_numbers_of_postgresql_messages_are_hidden():
    text = (
        "ERROR:  deadlock detected\nDETAIL:  Process 4242 waits for ShareLock on transaction 771; "
        "blocked by process 4243.\nProcess 4243 waits for AccessExclusiveLock on relation 16390 of "
        'database 16384; blocked by process 4242.\nCONTEXT:  while locking tuple (0,1) in relation "t"'
    )
    assert postgres.sanitize(text) == (
        "ERROR:  deadlock detected\nDETAIL:  Process <pid> waits for ShareLock on transaction <xid>; "
        "blocked by process <pid>.\nProcess <pid> waits for AccessExclusiveLock on relation <oid> of "
        'database <oid>; blocked by process <pid>.\nCONTEXT:  while locking tuple (<block>,<row>) in relation "t"'
    )


# ---------------------------------------------------------------- who may connect


def psql_as(user: str, pg: postgres.Server, dbname: str, role: str, password: str = "") -> subprocess.CompletedProcess:
    """The server's own psql, run as another OS user (as a sandboxed grader's process would be)."""
    env = {"PATH": "/usr/bin:/bin", "PGPASSWORD": password, "LC_ALL": "C"}
    return subprocess.run(
        [
            "setpriv",
            f"--reuid={user}",
            f"--regid={user}",
            "--clear-groups",
            str(pg.bindir / "psql"),
            "-h",
            str(pg.socket_dir),
            "-p",
            str(pg.port),
            "-U",
            role,
            "-d",
            dbname,
            "-XAtc",
            "SELECT current_user",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        cwd="/",
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="runs psql as another OS user (needs root)")
def test_a_role_reaches_its_own_database_only_and_never_the_superuser(lab_root):
    lab = Lab("other", root=lab_root, db="postgresql")  # someone else's database on the same server
    pg = lab.pg
    pg.drop_database("student_a")
    pg.drop_role("student_a")
    pg.create_role("student_a", "pw-a")
    pg.create_database("student_a", owner="student_a")
    try:
        nobody = "65534"
        own = psql_as(nobody, pg, "student_a", "student_a", "pw-a")
        assert own.returncode == 0 and own.stdout.strip() == "student_a", own.stderr
        wrong_password = psql_as(nobody, pg, "student_a", "student_a", "guess")
        assert wrong_password.returncode != 0 and "password authentication failed" in wrong_password.stderr
        other = psql_as(nobody, pg, lab.database, "student_a", "pw-a")
        assert other.returncode != 0 and "permission denied for database" in other.stderr
        admin = psql_as(nobody, pg, "postgres", "postgres")
        assert admin.returncode != 0 and "Peer authentication failed" in admin.stderr
        # The course's own processes are the superuser (peer: this OS user is mapped to it).
        with pg.connect() as con:
            assert con.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (True,)
        # And no TCP: the server listens on its socket only.
        with pg.connect() as con:
            assert con.execute("SHOW listen_addresses").fetchone() == ("",)
    finally:
        pg.drop_database("student_a")
        pg.drop_role("student_a")


# ---------------------------------------------------------------- no PostgreSQL


@pytest.fixture
def elsewhere(monkeypatch):
    """A server folder of this test's own (so the lookups run again)."""
    base = Path(tempfile.mkdtemp(prefix="pgt-"))
    monkeypatch.setenv("MIGLAB_PG_DIR", str(base))
    yield base
    shutil.rmtree(base, ignore_errors=True)


def test_without_postgresql_one_clear_message_and_sqlite_labs_work(lab_root, elsewhere, monkeypatch, tmp_path):
    empty = tmp_path / "no-postgres-here"
    empty.mkdir()
    monkeypatch.setenv("MIGLAB_PG_BINDIR", str(empty))
    with pytest.raises(LabError) as e:
        Lab("pg", root=lab_root, db="postgresql")
    message = str(e.value)
    assert message.startswith("PostgreSQL is not available: ")
    assert "initdb" in message and "tools/install_postgres.sh" in message and "apt-get install postgresql" in message
    assert 'SQLite labs (the default, db="sqlite") do not need it.' in message
    assert "Traceback" not in message and not list(elsewhere.iterdir())
    lab = migrated(Lab("still", root=lab_root))
    assert lab.tables() == ["django_migrations", "library_book"]


def test_without_the_driver_one_clear_message(lab_root, elsewhere, monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # what `import psycopg` meets where it is not installed
    with pytest.raises(LabError, match=r"(?s)psycopg\) is not installed.*pip install 'psycopg\[binary\]==3\.3\.9'"):
        Lab("pg", root=lab_root, db="postgresql")


@pytest.mark.skipif(os.geteuid() != 0, reason="the server's user is chosen only as root")
def test_without_a_user_to_run_it_as_one_clear_message(lab_root, elsewhere, monkeypatch):
    monkeypatch.setenv("MIGLAB_PG_OS_USER", "no-such-user-here")
    with pytest.raises(LabError, match="refuses to run as root, and there is no `no-such-user-here` user"):
        Lab("pg", root=lab_root, db="postgresql")


def test_a_server_that_cannot_start_is_one_clear_message_and_leaves_nothing_running(lab_root, elsewhere, monkeypatch):
    real = postgres.find_bindir()
    broken = elsewhere / "broken-bin"  # a folder the server's user can reach
    broken.mkdir(mode=0o755)
    elsewhere.chmod(0o755)
    for tool in ("initdb", "postgres"):
        (broken / tool).symlink_to(real / tool)
    (broken / "pg_ctl").write_text("#!/bin/sh\necho 'pg_ctl: could not start server (as on a full disk)' >&2\nexit 1\n")
    (broken / "pg_ctl").chmod(0o755)
    monkeypatch.setenv("MIGLAB_PG_BINDIR", str(broken))
    with pytest.raises(LabError, match=r"(?s)the server did not start \(pg_ctl exit status 1\).*as on a full disk"):
        Lab("pg", root=lab_root, db="postgresql")
    assert not postgres.Server(elsewhere).is_running() and not (elsewhere / "data").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="makes a folder of another user")
def test_a_server_folder_of_someone_else_is_refused(lab_root, elsewhere):
    os.chown(elsewhere, 65534, 65534)
    with pytest.raises(LabError, match="is not a folder of this user that others cannot write to"):
        Lab("pg", root=lab_root, db="postgresql")


def test_an_unknown_backend_is_named():
    with pytest.raises(LabError, match="db='mysql': the lab runs on 'sqlite' or 'postgresql'"):
        Lab("x", db="mysql")


# ---------------------------------------------------------------- the lease

USER = textwrap.dedent("""
    import sys
    from miglab.lab import postgres
    pg = postgres.server()
    pg.create_database(sys.argv[1])
    with pg.connect(sys.argv[1]) as con:
        con.execute("CREATE TABLE t (id int)")
    print("up", flush=True)
    sys.stdin.readline()
""")


class User:
    """Another process using the server (a notebook's kernel, say) until told to go."""

    def __init__(self, base: Path, name: str):
        env = {**os.environ, "MIGLAB_PG_DIR": str(base)}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", USER, name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )

    def wait_up(self) -> User:
        line = self.proc.stdout.readline()
        assert line == "up\n", self.proc.stderr.read()
        return self

    def leave(self) -> None:
        self.proc.stdin.close()
        assert self.proc.wait(timeout=30) == 0, self.proc.stderr.read()

    def crash(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)


def eventually(condition, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.fixture
def base():
    """A server of this test's own (the test process itself never leases it); stopped at the end."""
    folder = Path(tempfile.mkdtemp(prefix="pgl-"))
    yield folder
    server = postgres.Server(folder)
    if not eventually(lambda: server.reaper_pid() is None, timeout=10):  # a failed test: leave nothing behind
        os.kill(server.reaper_pid(), signal.SIGKILL)
    files = Path(os.path.realpath(server.data_dir))
    if server.is_running():
        postgres._stop(folder, server.bindir, "postgres" if os.geteuid() == 0 else "", target=files)
    shutil.rmtree(folder, ignore_errors=True)


def test_the_server_runs_while_used_and_stops_when_the_last_user_leaves(base):
    server = postgres.Server(base)
    a, b = User(base, "db_a"), User(base, "db_b")  # both at once, from cold: one server for both
    a.wait_up(), b.wait_up()
    assert server.is_running() and server.reaper_pid() is not None
    pid = postgres._postmaster_pid(server.data_dir)
    files = Path(os.path.realpath(server.data_dir))  # in /dev/shm when it has room
    a.leave()
    time.sleep(0.5)
    assert postgres._postmaster_pid(server.data_dir) == pid, "a user is left: the server must keep running"
    b.leave()
    assert eventually(lambda: not server.is_running()), "the last user left: the server must stop"
    assert eventually(lambda: server.reaper_pid() is None)
    assert not server.data_dir.exists() and not files.exists(), "its scratch data is deleted with it"
    again = User(base, "db_c").wait_up()  # and the next user starts a fresh one
    assert server.is_running()
    again.leave()
    assert eventually(lambda: not server.is_running())


def test_a_killed_last_user_stops_the_server_too(base):
    server = postgres.Server(base)
    user = User(base, "db_a").wait_up()
    assert server.is_running()
    user.crash()  # SIGKILL: no clean-up code of its own runs
    assert eventually(lambda: not server.is_running()), "a crashed user must not leave the server running"


def test_a_killed_reaper_is_replaced_by_the_next_user(base):
    server = postgres.Server(base)
    first = User(base, "db_a").wait_up()
    os.kill(server.reaper_pid(), signal.SIGKILL)
    assert eventually(lambda: server.reaper_pid() is None)
    second = User(base, "db_b").wait_up()  # finds the server running, without a reaper: starts one
    assert server.reaper_pid() is not None
    first.leave()
    second.leave()
    assert eventually(lambda: not server.is_running())

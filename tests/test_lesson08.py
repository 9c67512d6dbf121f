"""Lesson 08, "Migrations in production": the facts it states, pinned on real Django, real SQLite
and the course's real PostgreSQL server (nothing mocked).

tests/test_lessons.py runs every notebooks/NN_*.ipynb under nbval against its stored outputs, so
lesson 08 is compared there like the others. Here:

* each claim of the lesson, on the backend(s) it is made for: which operations rebuild a table,
  what a failed migration leaves behind (atomic or not), transactions of RunPython, lock waits and
  lock_timeout (three ways to set it), SQLite's "database is locked", the locks of the one-step way
  and of a batched backfill, default against db_default, AddIndex against AddIndexConcurrently,
  RunSQL with reverse_sql and state_operations, SeparateDatabaseAndState for a move and for a field
  removed over two deploys, migrate --check, and what django-migration-linter flags and misses;
* the timings the lesson prints are all in a form that tests/nbval_sanitize.cfg hides;
* the lesson run with every practice cell answered correctly: every check ticks.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbval.plugin import get_sanitize_patterns

from miglab import Lab

ROOT = Path(__file__).resolve().parent.parent
LESSON = ROOT / "notebooks" / "08_migrations_in_production.ipynb"
SANITIZE = Path(__file__).resolve().parent / "nbval_sanitize.cfg"

BOOK = """
class Book(models.Model):
    title = models.CharField(max_length=200)
"""


def book(*lines: str, meta: str = "") -> str:
    return BOOK + "".join(f"    {line}\n" for line in lines) + (f"\n    class Meta:\n        {meta}\n" if meta else "")


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request):
    return request.param


@pytest.fixture
def lab(lab_root, db):
    return Lab("l8", root=lab_root, db=db)


@pytest.fixture
def pg(lab_root):
    return Lab("l8pg", root=lab_root, db="postgresql")


def write(lab, sql: str) -> None:
    con = lab.connect()
    try:
        con.execute(sql)
        con.commit()
    finally:
        con.close()


def start(lab, models: str = BOOK, rows: int = 0) -> Lab:
    """library migrated to 0001 with `rows` books."""
    lab.write_models("library", models)
    lab.manage("makemigrations library").check()
    lab.manage("migrate").check()
    if rows:
        if lab.db == "postgresql":
            write(lab, f"INSERT INTO library_book (title) SELECT 'Book ' || n FROM generate_series(1, {rows}) n")
            write(lab, "ALTER TABLE library_book SET (autovacuum_enabled = off)")
        else:
            write(
                lab,
                f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows}) "
                "INSERT INTO library_book (title) SELECT 'Book ' || i FROM n",
            )
    return lab


def storage_id(lab, table: str = "library_book"):
    if lab.db == "postgresql":
        return lab.sql("SELECT relfilenode FROM pg_class WHERE relname = %s", (table,)).rows[0][0]
    return lab.sql("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).rows[0][0]


def rebuilt_by_migrate(lab) -> bool:
    before = storage_id(lab)
    lab.manage("migrate").check()
    return storage_id(lab) != before


def columns(lab) -> list[str]:
    return lab.columns("library_book").column("column")


def error_line(result) -> str:
    return next(line for line in result.output.splitlines() if "Error: " in line)


# ------------------------------------------------------------------ one migration, two scripts


def test_a_not_null_column_with_default_is_a_rebuild_on_sqlite_and_an_alter_table_on_postgresql(lab_root):
    sqlite, pg = (start(Lab(n, root=lab_root, db=d)) for n, d in (("s", "sqlite"), ("p", "postgresql")))
    for lab in (sqlite, pg):
        lab.write_models(
            "library",
            book("isbn = models.CharField(max_length=13, null=True)", "pages = models.IntegerField(default=0)"),
        )
        lab.manage("makemigrations library").check()
    on_sqlite = sqlite.manage("sqlmigrate library 0002").check().stdout
    on_pg = pg.manage("sqlmigrate library 0002").check().stdout
    nullable = 'ALTER TABLE "library_book" ADD COLUMN "isbn" varchar(13) NULL;'
    assert nullable in on_sqlite and nullable in on_pg, "a nullable column is added in place on both"
    assert 'CREATE TABLE "new__library_book"' in on_sqlite and 'DROP TABLE "library_book";' in on_sqlite
    assert 'ALTER TABLE "new__library_book" RENAME TO "library_book";' in on_sqlite
    assert 'ALTER TABLE "library_book" ADD COLUMN "pages" integer DEFAULT 0 NOT NULL;' in on_pg
    assert 'ALTER TABLE "library_book" ALTER COLUMN "pages" DROP DEFAULT;' in on_pg, (
        "default= is not kept in the database"
    )
    assert "new__" not in on_pg


CHANGES = [  # (the new Book, rebuilt on SQLite, rebuilt on PostgreSQL)
    pytest.param(book("isbn = models.CharField(max_length=13, null=True)"), False, False, id="add-nullable"),
    pytest.param(book("pages = models.IntegerField(default=0)"), True, False, id="add-constant-default"),
    pytest.param(book("copies = models.IntegerField(db_default=1)"), True, False, id="add-db-default"),
    pytest.param(BOOK.replace("max_length=200", "max_length=300"), True, False, id="longer-varchar"),
    pytest.param(
        BOOK.replace("models.CharField(max_length=200)", "models.CharField(max_length=200, null=True)"),
        True,
        False,
        id="drop-not-null",
    ),
    pytest.param(
        book(meta='indexes = [models.Index(fields=["title"], name="book_title_idx")]'), False, False, id="add-index"
    ),
]


@pytest.mark.parametrize("models, on_sqlite, on_pg", CHANGES)
def test_which_operations_rebuild_the_table(lab, models, on_sqlite, on_pg):
    """The lesson's storage id: relfilenode (PostgreSQL) or rootpage (SQLite) changes only when rows move."""
    start(lab, rows=2000)
    lab.write_models("library", models)
    lab.manage("makemigrations library --noinput").check()
    assert rebuilt_by_migrate(lab) is (on_pg if lab.db == "postgresql" else on_sqlite)
    assert lab.sql("SELECT count(*) FROM library_book").rows[0][0] == 2000


def with_pages(lab) -> Lab:
    """0002: pages = IntegerField(default=0), added to a table with rows."""
    lab.write_models("library", book("pages = models.IntegerField(default=0)"))
    lab.manage("makemigrations library").check()
    lab.manage("migrate").check()
    return lab


def test_integer_to_bigint_rewrites_the_table_on_both(lab):
    with_pages(start(lab, rows=2000))
    lab.write_models("library", book("pages = models.BigIntegerField(default=0)"))
    lab.manage("makemigrations library").check()
    assert rebuilt_by_migrate(lab)
    if lab.db == "postgresql":
        assert 'ALTER COLUMN "pages" TYPE bigint' in lab.manage("sqlmigrate library 0003").stdout


def test_set_not_null_checks_in_place_on_postgresql_and_rebuilds_on_sqlite(lab):
    """The contract step: SET NOT NULL rewrites nothing on PostgreSQL; SQLite's AlterField rebuilds."""
    start(lab, models=book("sort_title = models.CharField(max_length=200, null=True)"), rows=500)
    write(lab, "UPDATE library_book SET sort_title = lower(title)")
    lab.write_models("library", book("sort_title = models.CharField(max_length=200)"))
    lab.manage("makemigrations library --noinput").check()  # "existing NULLs handled manually": they were
    sql = lab.manage("sqlmigrate library 0002").stdout
    if lab.db == "postgresql":
        assert 'ALTER TABLE "library_book" ALTER COLUMN "sort_title" SET NOT NULL;' in sql
    else:
        assert 'CREATE TABLE "new__library_book"' in sql
    assert rebuilt_by_migrate(lab) is (lab.db == "sqlite")


# ------------------------------------------------------------------ a migration that fails halfway

HALFWAY = """
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = {atomic}
    dependencies = [("library", "0001_initial")]
    operations = [
        migrations.AddField("book", "shelf", models.CharField(max_length=10, null=True)),
        migrations.AlterField("book", "title", models.CharField(max_length=200, unique=True)),
    ]
"""


def test_a_migration_failing_halfway_is_rolled_back_on_both(lab):
    start(lab, rows=3)
    write(lab, "INSERT INTO library_book (title) VALUES ('Book 2')")
    lab.write_file("library/migrations/0002_halfway.py", HALFWAY.format(atomic=True))
    failed = lab.manage("migrate")
    expected = (
        "UNIQUE constraint failed: new__library_book.title"
        if lab.db == "sqlite"
        else 'could not create unique index "library_book_title_'
    )
    assert failed.returncode == 1 and expected in error_line(failed)
    assert columns(lab) == ["id", "title"], "the AddField was rolled back with the failed AlterField"
    assert lab.tables() == ["django_migrations", "library_book"]
    assert lab.applied().rows == [("library", "0001_initial")]


def test_atomic_false_leaves_the_first_operation_behind_and_sqlite_its_half_made_table(lab):
    start(lab, rows=3)
    write(lab, "INSERT INTO library_book (title) VALUES ('Book 2')")
    lab.write_file("library/migrations/0002_halfway.py", HALFWAY.format(atomic=False))
    assert lab.manage("migrate").returncode == 1
    assert columns(lab) == ["id", "title", "shelf"], "the AddField stays"
    assert lab.applied().rows == [("library", "0001_initial")], "and its migration is not recorded"
    leftovers = ["new__library_book"] if lab.db == "sqlite" else []
    assert lab.tables() == sorted(["django_migrations", "library_book", *leftovers])
    again = lab.manage("migrate")
    assert again.returncode == 1 and (
        "duplicate column name: shelf" in again.output
        or 'column "shelf" of relation "library_book" already exists' in again.output
    )


def test_only_mysql_and_oracle_cannot_roll_back_ddl():
    from django.db.backends.mysql.features import DatabaseFeatures as MySQL
    from django.db.backends.oracle.features import DatabaseFeatures as Oracle
    from django.db.backends.postgresql.features import DatabaseFeatures as PostgreSQL
    from django.db.backends.sqlite3.base import DatabaseFeatures as SQLite

    assert [b.can_rollback_ddl for b in (SQLite, PostgreSQL, MySQL, Oracle)] == [True, True, False, False]


WHERE_AM_I = """
from django.db import migrations


def report(apps, schema_editor):
    print(f"[in a transaction: {{schema_editor.connection.in_atomic_block}}]", end="")


class Migration(migrations.Migration):
    atomic = {atomic}
    dependencies = [("library", "0001_initial")]
    operations = [
        migrations.RunPython(report, migrations.RunPython.noop),
        migrations.RunPython(report, migrations.RunPython.noop, atomic=True),
        migrations.RunPython(report, migrations.RunPython.noop, atomic=False),
    ]
"""


@pytest.mark.parametrize("atomic, seen", [(False, ["False", "True", "False"]), (True, ["True", "True", "True"])])
def test_runpython_runs_outside_a_transaction_in_a_non_atomic_migration_unless_it_asks(lab, atomic, seen):
    start(lab)
    lab.write_file("library/migrations/0002_where_am_i.py", WHERE_AM_I.format(atomic=atomic))
    assert re.findall(r"\[in a transaction: (\w+)\]", lab.manage("migrate").check().stdout) == seen


# ------------------------------------------------------------------ locks

LOCK_TIMEOUT_TEXT = "django.db.utils.OperationalError: canceling statement due to lock timeout"


def wait_for_a_lock_wait(pg: Lab, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pg.sql(
            "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).rows:
            return
        time.sleep(0.01)
    raise AssertionError("nothing waited for a lock")


def while_it_waits(pg: Lab, command: str, hold: str, then: str):
    """(the locks on library_book while `command` waits, whether `then` went through, the command's result)"""
    import psycopg

    outcome = {}
    with pg.connect() as second, pg.connect() as third:
        with second.transaction():
            second.execute(hold)
            worker = threading.Thread(target=lambda: outcome.update(result=pg.manage(command)))
            worker.start()
            wait_for_a_lock_wait(pg)
            locks = pg.sql(
                "SELECT l.locktype, l.mode, l.granted FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE a.datname = current_database() AND a.backend_type = 'client backend' "
                "AND a.pid <> pg_backend_pid() AND (l.relation = 'library_book'::regclass OR NOT l.granted) "
                "ORDER BY l.granted DESC, l.mode"
            ).rows
            third.execute("SET lock_timeout = '200ms'")
            try:
                third.execute(then)
                went_through = True
            except psycopg.errors.LockNotAvailable:
                went_through = False
        worker.join(60)
    return locks, went_through, outcome["result"]


def with_subtitle(pg: Lab) -> None:
    pg.write_models("library", book("subtitle = models.CharField(max_length=200, null=True)"))
    pg.manage("makemigrations library").check()


def test_alter_table_waits_behind_an_open_reader_and_new_readers_queue_behind_it(pg):
    start(pg, rows=100)
    with_subtitle(pg)
    locks, went_through, result = while_it_waits(
        pg, "migrate", hold="SELECT count(*) FROM library_book", then="SELECT title FROM library_book WHERE id = 1"
    )
    assert locks == [("relation", "AccessShareLock", True), ("relation", "AccessExclusiveLock", False)]
    assert not went_through, "a plain read queued behind the waiting ALTER TABLE"
    assert result.ok, "once the reader committed, the migration went through"


@pytest.mark.parametrize("how", ["PGOPTIONS", "settings OPTIONS", "SET LOCAL in RunSQL"])
def test_lock_timeout_makes_migrate_fail_fast_and_roll_back(pg, how):
    start(pg, rows=10)
    env = {}
    if how == "PGOPTIONS":
        with_subtitle(pg)
        env = {"PGOPTIONS": "-c lock_timeout=300ms"}
    elif how == "settings OPTIONS":
        with_subtitle(pg)
        pg.write_file(
            "project/settings.py",
            pg.read_file("project/settings.py")
            + '\nDATABASES["default"]["OPTIONS"] = {"options": "-c lock_timeout=300ms"}\n',
        )
    else:
        pg.write_file(
            "library/migrations/0002_book_subtitle.py",
            """
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("library", "0001_initial")]
    operations = [migrations.RunSQL(["SET LOCAL lock_timeout = '300ms'",
                                     'ALTER TABLE "library_book" ADD COLUMN "subtitle" text NULL'])]
""",
        )
    with pg.connect() as second, second.transaction():
        second.execute("SELECT count(*) FROM library_book")
        begun = time.monotonic()
        blocked = pg.manage("migrate", env=env, timeout=30)
        waited = time.monotonic() - begun
    assert not blocked.timed_out and waited < 10
    assert blocked.returncode == 1 and repr(blocked).endswith(LOCK_TIMEOUT_TEXT + "\n[exit status 1]")
    assert pg.applied().rows == [("library", "0001_initial")] and columns(pg) == ["id", "title"]
    assert pg.manage("migrate", env=env).ok, "the table is quiet again: the same command goes through"


def test_sqlite_a_reader_of_any_table_locks_the_file_until_the_busy_timeout(lab_root):
    lab = start(Lab("busy", root=lab_root))
    lab.write_models("library", book("subtitle = models.CharField(max_length=200, null=True)"))
    lab.manage("makemigrations library").check()
    lab.write_file(
        "project/settings.py",
        lab.read_file("project/settings.py") + '\nDATABASES["default"]["OPTIONS"] = {"timeout": 0.2}\n',
    )
    second = lab.connect()
    second.execute("BEGIN")
    second.execute("SELECT count(*) FROM django_migrations").fetchall()  # not even the migrated table
    begun = time.monotonic()
    locked = lab.manage("migrate")
    waited = time.monotonic() - begun
    second.rollback()
    second.close()
    assert locked.returncode == 1 and repr(locked).endswith(
        "django.db.utils.OperationalError: database is locked\n[exit status 1]"
    )
    assert waited < 5, "the 0.2 s from OPTIONS, not Python's default of 5 s"
    assert columns(lab) == ["id", "title"]
    assert lab.manage("migrate").ok


def test_django_leaves_sqlites_busy_timeout_to_python_unless_options_set_it(lab_root):
    """So the wait is sqlite3.connect's own default (5 s, in Python's documentation) unless OPTIONS say otherwise."""
    lab = Lab("params", root=lab_root)
    show = "from django.db import connection\nprint(sorted(connection.get_connection_params()))"
    assert "'timeout'" not in lab.shell(show).check().stdout
    lab.write_file(
        "project/settings.py",
        lab.read_file("project/settings.py") + '\nDATABASES["default"]["OPTIONS"] = {"timeout": 0.2}\n',
    )
    assert "'timeout'" in lab.shell(show).check().stdout


# ------------------------------------------------------------------ a required column on a big table

LOCKS_HELD = """
def locks_held(schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT string_agg(mode, ', ' ORDER BY mode) FROM pg_locks "
                       "WHERE pid = pg_backend_pid() AND relation = 'library_book'::regclass")
        print(f"[locks: {cursor.fetchone()[0]}]", end="")
"""
ONE_STEP = (
    """
from django.db import migrations, models
from django.db.models.functions import Lower
"""
    + LOCKS_HELD
    + """

def fill(apps, schema_editor):
    apps.get_model("library", "Book").objects.update(sort_title=Lower("title"))
    locks_held(schema_editor)


class Migration(migrations.Migration):
    dependencies = [("library", "0001_initial")]
    operations = [
        migrations.AddField("book", "sort_title", models.CharField(max_length=200, default=""),
                            preserve_default=False),
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
"""
)
EXPAND = """
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("library", "0001_initial")]
    operations = [migrations.AddField("book", "sort_title", models.CharField(max_length=200, null=True))]
"""
BACKFILL = (
    """
from django.db import migrations, transaction
from django.db.models import Max
from django.db.models.functions import Lower
"""
    + LOCKS_HELD
    + """

def fill(apps, schema_editor):
    Book = apps.get_model("library", "Book")
    last = Book.objects.aggregate(last=Max("id"))["last"] or 0
    for start in range(1, last + 1, 1000):
        with transaction.atomic():
            Book.objects.filter(id__gte=start, id__lt=start + 1000, sort_title=None).update(sort_title=Lower("title"))
            locks_held(schema_editor)


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("library", "0002_sort_title_nullable")]
    operations = [migrations.RunPython(fill, migrations.RunPython.noop)]
"""
)


def test_the_one_step_fill_runs_under_access_exclusive_and_the_batched_backfill_does_not(pg):
    start(pg, rows=5000)
    pg.write_models("library", book("sort_title = models.CharField(max_length=200)"))
    pg.write_file("library/migrations/0002_sort_title_one_step.py", ONE_STEP)
    one_step = pg.manage("migrate").check()
    assert re.findall(r"\[locks: ([\w, ]+)\]", one_step.stdout) == ["AccessExclusiveLock, RowExclusiveLock"]
    pg.manage("migrate library 0001").check()
    pg.remove_file("library/migrations/0002_sort_title_one_step.py")

    pg.write_file("library/migrations/0002_sort_title_nullable.py", EXPAND)
    pg.write_file("library/migrations/0003_backfill.py", BACKFILL)
    backfill = pg.manage("migrate").check()
    assert re.findall(r"\[locks: ([\w, ]+)\]", backfill.stdout) == ["RowExclusiveLock"] * 5, (
        "each batch is a transaction of its own that holds only RowExclusiveLock"
    )
    assert pg.sql("SELECT count(*) FROM library_book WHERE sort_title = lower(title)").rows == [(5000,)]
    # The backfill fills only NULLs, so running it again after an interruption is safe.
    write(pg, "UPDATE library_book SET sort_title = NULL WHERE id > 4500")
    write(pg, "UPDATE library_book SET sort_title = 'kept' WHERE id = 1")
    pg.manage("migrate library 0002_sort_title_nullable").check()
    pg.manage("migrate").check()
    assert pg.sql("SELECT count(*) FROM library_book WHERE sort_title IS NULL").rows == [(0,)]
    assert pg.sql("SELECT sort_title FROM library_book WHERE id = 1").rows == [("kept",)]


PAUSED = """
import time
from pathlib import Path

from django.db import migrations, models


def pause(apps, schema_editor):
    Path("pausing").touch()  # the fill of a big table, stretched: the test reads meanwhile
    time.sleep(2)


class Migration(migrations.Migration):
    atomic = {atomic}
    dependencies = [("library", "0001_initial")]
    operations = [
        migrations.AddField("book", "sort_title", models.CharField(max_length=200, null=True)),
        migrations.RunPython(pause, migrations.RunPython.noop),
    ]
"""


@pytest.mark.parametrize("atomic, reader_waits", [(True, True), (False, False)], ids=["one-step", "non-atomic"])
def test_the_alter_tables_lock_lasts_to_the_end_of_an_atomic_migration_only(pg, atomic, reader_waits):
    """What the lesson's timings show, without timing anything: while the migration's fill runs, another
    client's read waits (the ACCESS EXCLUSIVE of ALTER TABLE is held to the commit) or goes through."""
    import psycopg

    start(pg, rows=100)
    pg.write_models("library", book("sort_title = models.CharField(max_length=200, null=True)"))
    pg.write_file("library/migrations/0002_sort_title.py", PAUSED.format(atomic=atomic))
    worker = threading.Thread(target=lambda: pg.manage("migrate").check())
    worker.start()
    marker = pg.path / "pausing"
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    with pg.connect() as reader:
        reader.execute("SET lock_timeout = '300ms'")
        try:
            reader.execute("SELECT title FROM library_book WHERE id = 1")
            waited = False
        except psycopg.errors.LockNotAvailable:
            waited = True
    worker.join(60)
    assert marker.exists() and waited is reader_waits
    assert columns(pg) == ["id", "title", "sort_title"]


# ------------------------------------------------------------------ default against db_default

OLD_INSERT = "INSERT INTO library_book (title) VALUES ('from old code')"


def test_db_default_stays_in_the_database_and_serves_old_code_default_does_not(lab):
    start(lab, rows=3)
    lab.write_models(
        "library",
        book(
            'format = models.CharField(max_length=20, default="paperback")',
            'language = models.CharField(max_length=10, db_default="en")',
        ),
    )
    lab.manage("makemigrations library").check()
    lab.manage("migrate").check()
    if lab.db == "postgresql":
        defaults = dict(
            lab.sql(
                "SELECT column_name, column_default FROM information_schema.columns WHERE table_name = 'library_book'"
            ).rows
        )
    else:
        defaults = {r[1]: r[4] for r in lab.sql('PRAGMA table_info("library_book")')}
    assert defaults["format"] is None and defaults["language"] in ("'en'", "'en'::character varying")
    with pytest.raises(
        Exception, match=r'NOT NULL constraint failed: library_book\.format|null value in column "format"'
    ):
        write(lab, OLD_INSERT)
    assert lab.sql("SELECT DISTINCT format, language FROM library_book").rows == [("paperback", "en")], (
        "the existing rows got both values"
    )

    lab.write_models(
        "library",
        book(
            'format = models.CharField(max_length=20, db_default="paperback")',
            'language = models.CharField(max_length=10, db_default="en")',
        ),
    )
    lab.manage("makemigrations library --name format_db_default").check()
    if lab.db == "postgresql":
        assert (
            'ALTER TABLE "library_book" ALTER COLUMN "format" SET DEFAULT \'paperback\';'
            in lab.manage("sqlmigrate library 0003").stdout
        )
    rebuilt = rebuilt_by_migrate(lab)
    assert rebuilt is (lab.db == "sqlite"), "on PostgreSQL a new default only changes the catalogue"
    write(lab, OLD_INSERT)
    assert lab.sql("SELECT format, language FROM library_book WHERE title = 'from old code'").rows == [
        ("paperback", "en")
    ]


# ------------------------------------------------------------------ indexes

CONCURRENT = """
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = {atomic}
    dependencies = [("library", "0001_initial")]
    operations = [AddIndexConcurrently("book", models.Index(fields=["title"], name="book_title_idx"))]
"""
INDEXED = book(meta='indexes = [models.Index(fields=["title"], name="book_title_idx")]')


def test_add_index_concurrently_needs_a_non_atomic_migration(pg):
    start(pg, rows=10)
    pg.write_models("library", INDEXED)
    pg.write_file("library/migrations/0002_title_index.py", CONCURRENT.format(atomic=True))
    refused = pg.manage("migrate")
    assert refused.returncode == 1 and repr(refused).endswith(
        "django.db.utils.NotSupportedError: The AddIndexConcurrently operation cannot be executed inside a "
        "transaction (set atomic = False on the migration).\n[exit status 1]"
    )
    pg.write_file("library/migrations/0002_title_index.py", CONCURRENT.format(atomic=False))
    assert (
        pg.manage("sqlmigrate library 0002")
        .stdout.strip()
        .endswith('CREATE INDEX CONCURRENTLY "book_title_idx" ON "library_book" ("title");')
    )
    pg.manage("migrate").check()
    assert "book_title_idx" in pg.sql("SELECT indexname FROM pg_indexes WHERE tablename = 'library_book'").column(
        "indexname"
    )
    assert pg.manage("makemigrations --check").ok, "the model's Meta.indexes and the migration agree"


@pytest.mark.parametrize("concurrently", [False, True])
def test_a_plain_index_build_blocks_writers_and_a_concurrent_one_does_not(pg, concurrently):
    start(pg, rows=10)
    pg.write_models("library", INDEXED)
    if concurrently:
        pg.write_file("library/migrations/0002_title_index.py", CONCURRENT.format(atomic=False))
    else:
        pg.manage("makemigrations library --name title_index").check()
    locks, went_through, result = while_it_waits(
        pg,
        "migrate",
        hold="UPDATE library_book SET title = 'first' WHERE id = 1",
        then="UPDATE library_book SET title = 'second' WHERE id = 2",
    )
    if concurrently:
        assert locks == [
            ("relation", "RowExclusiveLock", True),
            ("relation", "ShareUpdateExclusiveLock", True),
            ("virtualxid", "ShareLock", False),
        ]
    else:
        assert locks == [("relation", "RowExclusiveLock", True), ("relation", "ShareLock", False)]
    assert went_through is concurrently
    assert result.ok


def test_a_failed_concurrent_build_leaves_an_invalid_index(pg):
    start(pg, rows=10)
    pg.write_models("library", INDEXED)
    pg.write_file("library/migrations/0002_title_index.py", CONCURRENT.format(atomic=False))
    with pg.connect() as second, second.transaction():
        second.execute("UPDATE library_book SET title = 'first' WHERE id = 1")
        failed = pg.manage("migrate", env={"PGOPTIONS": "-c lock_timeout=300ms"})
    assert failed.returncode == 1 and LOCK_TIMEOUT_TEXT in failed.output
    assert pg.sql(
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = 'book_title_idx'"
    ).rows == [(False,)]


def test_add_index_concurrently_does_not_work_on_sqlite(lab_root):
    lab = start(Lab("conc", root=lab_root))
    lab.write_file("library/migrations/0002_title_index.py", CONCURRENT.format(atomic=False))
    failed = lab.manage("migrate")
    assert failed.returncode == 1 and "unexpected keyword argument 'concurrently'" in failed.output


# ------------------------------------------------------------------ RunSQL

NOTES = """
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("library", "0001_initial")]
    operations = [
        migrations.RunSQL('ALTER TABLE "library_book" ADD COLUMN "notes" text NULL', reverse_sql={reverse},{state}),
    ]
"""
STATE = ' state_operations=[migrations.AddField("book", "notes", models.TextField(null=True))]'


def test_runsql_is_invisible_to_the_state_unless_state_operations_describe_it(lab):
    start(lab)
    lab.write_models("library", book("notes = models.TextField(null=True)"))
    lab.write_file("library/migrations/0002_book_notes.py", NOTES.format(reverse=None, state=""))
    wants = lab.manage("makemigrations --check")
    assert wants.returncode == 1 and "+ Add field notes to book" in wants.stdout
    lab.write_file("library/migrations/0002_book_notes.py", NOTES.format(reverse=None, state=STATE))
    assert lab.manage("makemigrations --check").stdout.strip() == "No changes detected"


def test_runsql_without_reverse_sql_is_irreversible_and_with_it_migrates_back(lab):
    start(lab)
    lab.write_models("library", book("notes = models.TextField(null=True)"))
    lab.write_file("library/migrations/0002_book_notes.py", NOTES.format(reverse=None, state=STATE))
    lab.manage("migrate").check()
    one_way = lab.manage("migrate library 0001")
    assert one_way.returncode == 1 and "IrreversibleError" in one_way.output and "is not reversible" in one_way.output
    assert columns(lab) == ["id", "title", "notes"]
    lab.write_file(
        "library/migrations/0002_book_notes.py",
        NOTES.format(reverse=repr('ALTER TABLE "library_book" DROP COLUMN "notes"'), state=STATE),
    )
    lab.manage("migrate library 0001").check()
    assert columns(lab) == ["id", "title"]


# ------------------------------------------------------------------ SeparateDatabaseAndState

MEMBER = "\n\nclass Member(models.Model):\n    name = models.CharField(max_length=100)\n"
MOVED_IN = """
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = [("library", "0002_member")]
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.CreateModel("Member", [
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=100)),
            ])],
            database_operations=[migrations.RunSQL(
                'ALTER TABLE "library_member" RENAME TO "loans_member"',
                reverse_sql='ALTER TABLE "loans_member" RENAME TO "library_member"')],
        ),
    ]
"""
MOVED_OUT = """
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("library", "0002_member"), ("loans", "0001_initial")]
    operations = [migrations.SeparateDatabaseAndState(state_operations=[migrations.DeleteModel("Member")])]
"""


def test_moving_a_model_autodetected_drops_its_rows_and_separate_database_and_state_keeps_them(lab):
    start(lab)
    lab.write_models("library", BOOK + MEMBER)
    lab.manage("makemigrations library --name member").check()
    lab.manage("migrate").check()
    write(lab, "INSERT INTO library_member (name) VALUES ('Ada'), ('Grace')")
    before = storage_id(lab, "library_member")
    lab.write_models("library", BOOK)
    lab.write_models("loans", MEMBER)
    made = lab.manage("makemigrations").check().stdout
    assert "- Delete model Member" in made and "+ Create model Member" in made
    assert 'CREATE TABLE "loans_member"' in lab.manage("sqlmigrate loans 0001").stdout
    assert 'DROP TABLE "library_member"' in lab.manage("sqlmigrate library 0003").stdout
    lab.remove_file("loans/migrations/0001_initial.py")
    lab.remove_file("library/migrations/0003_delete_member.py")
    lab.write_file("loans/migrations/0001_initial.py", MOVED_IN)
    lab.write_file("library/migrations/0003_member_moved.py", MOVED_OUT)
    lab.manage("migrate").check()
    assert lab.manage("makemigrations --check").ok
    assert lab.rows("loans_member").column("name") == ["Ada", "Grace"]
    assert "library_member" not in lab.tables()
    assert storage_id(lab, "loans_member") == before, "renamed in the catalogue: no row was copied"
    lab.manage("migrate loans zero").check()
    assert lab.rows("library_member").column("name") == ["Ada", "Grace"], "and back again"


FORGET_PAGES = """
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("library", "0002_book_pages")]
    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.AlterField("book", "pages", models.IntegerField(null=True))],
            state_operations=[migrations.RemoveField("book", "pages")],
        ),
    ]
"""
DROP_PAGES = """
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("library", "0003_forget_pages")]
    operations = [migrations.RunSQL('ALTER TABLE "library_book" DROP COLUMN "pages"',
                                    reverse_sql='ALTER TABLE "library_book" ADD COLUMN "pages" integer NULL')]
"""


def test_a_field_removed_over_two_deploys_keeps_old_and_new_code_working_in_between(pg):
    import psycopg

    with_pages(start(pg, rows=3))
    old_read = (
        pg.shell("from library.models import Book\nprint(Book.objects.filter(pk=1).only('pages').query)")
        .check()
        .stdout.strip()
    )
    assert '"library_book"."pages"' in old_read

    pg.write_models("library", BOOK)
    one_deploy = pg.manage("makemigrations library").check()
    assert "- Remove field pages from book" in one_deploy.stdout
    assert 'ALTER TABLE "library_book" DROP COLUMN "pages";' in pg.manage("sqlmigrate library 0003").stdout
    pg.remove_file("library/migrations/0003_remove_book_pages.py")

    pg.write_file("library/migrations/0003_forget_pages.py", FORGET_PAGES)
    assert pg.manage("makemigrations --check").ok, "the state has no pages any more"
    assert 'ALTER COLUMN "pages" DROP NOT NULL' in pg.manage("sqlmigrate library 0003").stdout
    pg.manage("migrate").check()
    with pg.connect() as con:
        assert con.execute(old_read).fetchall() == [(1, 0)], "deploy 1: the old code still reads its column"
    pg.shell("from library.models import Book\nBook.objects.create(title='new code')").check()

    pg.write_file("library/migrations/0004_drop_pages.py", DROP_PAGES)
    assert pg.manage("migrate --check").returncode == 1
    pg.manage("migrate").check()
    checked = pg.manage("migrate --check")
    assert checked.ok and checked.output == ""
    with (
        pytest.raises(psycopg.errors.UndefinedColumn, match=re.escape("column library_book.pages does not exist")),
        pg.connect() as con,
    ):
        con.execute(old_read)
    pg.manage("migrate library 0003").check()
    assert columns(pg) == ["id", "title", "pages"], "deploy 2 can be undone (the values are gone, the column is back)"


# ------------------------------------------------------------------ the linter


def linted(lab: Lab) -> dict[str, list[str]]:
    lab.write_file(
        "project/settings.py",
        lab.read_file("project/settings.py") + '\nINSTALLED_APPS += ["django_migration_linter"]\n',
    )
    out = lab.manage("lintmigrations --no-cache").stdout
    found: dict[str, list[str]] = {}
    current = None
    for line in out.splitlines():
        m = re.match(r"\((\w+), (\w+)\)\.\.\. (\w+)", line)
        if m:
            current = f"{m[1]}.{m[2]}"
            found[current] = [m[3]]
        elif line.startswith("\t") and current:
            found[current].append(line.strip())
    return found


def test_the_linter_runs_with_this_django_and_flags_what_the_lesson_says(pg):
    start(pg)
    steps = [
        ("pages_default", book("pages = models.IntegerField(default=0)")),
        (
            "language_db_default",
            book(
                "pages = models.IntegerField(default=0)", 'language = models.CharField(max_length=10, db_default="en")'
            ),
        ),
        (
            "both_kinds",
            book(
                "pages = models.IntegerField(default=0)",
                'language = models.CharField(max_length=10, db_default="en")',
                'format = models.CharField(max_length=20, default="paperback")',
                'shelf = models.CharField(max_length=20, db_default="A")',
            ),
        ),
        (
            "title_index",
            book(
                "pages = models.IntegerField(default=0)",
                'language = models.CharField(max_length=10, db_default="en")',
                'format = models.CharField(max_length=20, default="paperback")',
                'shelf = models.CharField(max_length=20, db_default="A")',
                meta='indexes = [models.Index(fields=["title"], name="book_title_idx")]',
            ),
        ),
    ]
    for name, models in steps:
        pg.write_models("library", models)
        pg.manage(f"makemigrations library --name {name}").check()
    pg.write_file(
        "library/migrations/0006_irreversible_sql.py",
        """
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("library", "0005_title_index")]
    operations = [migrations.RunSQL("SELECT 1")]
""",
    )
    found = linted(pg)
    assert found["library.0002_pages_default"] == ["ERR", "NOT NULL constraint on columns"]
    assert found["library.0003_language_db_default"] == ["OK"], "db_default keeps a DEFAULT: not flagged"
    assert found["library.0004_both_kinds"] == ["OK"], (
        "a default= column next to a later db_default one in the same migration is missed"
    )
    assert found["library.0005_title_index"] == ["WARNING", "CREATE INDEX locks table"]
    assert found["library.0006_irreversible_sql"] == ["WARNING", "RunSQL data migration is not reversible"]


def test_the_linter_flags_dropped_columns_renamed_tables_and_type_changes_not_concurrent_indexes(pg):
    with_pages(start(pg))  # 0002_book_pages
    pg.write_models("library", book("pages = models.BigIntegerField(default=0)"))
    pg.manage("makemigrations library --name pages_bigint").check()
    pg.write_file("library/migrations/0004_drop_pages.py", DROP_PAGES.replace("0003_forget_pages", "0003_pages_bigint"))
    pg.write_file(
        "library/migrations/0005_rename.py",
        """
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("library", "0004_drop_pages")]
    operations = [migrations.RunSQL('ALTER TABLE "library_book" RENAME TO "library_volume"',
                                    reverse_sql='ALTER TABLE "library_volume" RENAME TO "library_book"')]
""",
    )
    pg.write_file(
        "library/migrations/0006_concurrent.py",
        CONCURRENT.format(atomic=False).replace('"0001_initial"', '"0005_rename"'),
    )
    found = linted(pg)
    assert found["library.0003_pages_bigint"][0] == "ERR" and found["library.0003_pages_bigint"][1].startswith(
        "ALTERING columns (Could be backward compatible."
    )
    assert found["library.0004_drop_pages"][0] == "ERR" and "DROPPING columns" in found["library.0004_drop_pages"][1]
    assert found["library.0005_rename"][:2] == ["ERR", "RENAMING tables (table: library_book)"]
    assert found["library.0006_concurrent"] == ["OK"]


# ------------------------------------------------------------------ the lesson itself


def test_every_timing_the_lesson_prints_is_hidden_by_the_sanitizer():
    patterns = get_sanitize_patterns(SANITIZE.read_text())
    nb = nbformat.read(LESSON, as_version=4)
    timings = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            text = out.get("text", "") + out.get("data", {}).get("text/plain", "")
            timings += len(re.findall(r"\b\d+\.\d{3} s\b", text))
            for regex, replace in patterns:
                text = re.sub(regex, replace, text)
            assert not re.search(r"\d+\.\d+ ?m?s\b", text), text
    assert timings >= 20, "the lesson shows its timings as 0.123 s"


def stream_text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


ANSWERS = [  # for each practice cell, in order: (the untouched text, a right answer)
    [
        ('"title: max_length 200 -> 300": None', '"title: max_length 200 -> 300": False'),
        ('"pages: IntegerField -> BigIntegerField": None', '"pages: IntegerField -> BigIntegerField": True'),
        ('"an index on title": None', '"an index on title": False'),
    ],
    [("fail_fast = None", 'fail_fast = {"PGOPTIONS": "-c lock_timeout=300ms"}')],
    [("atomic = True   # ✏️", "atomic = False   #")],
    [("reverse_sql = None", """reverse_sql = 'ALTER TABLE "library_book" DROP COLUMN "notes"'""")],
]


@pytest.mark.slow
def test_every_practice_cell_answered_correctly_ticks_and_the_lesson_runs_on(tmp_path, monkeypatch):
    monkeypatch.setenv("MIGLAB_WORKDIR", str(tmp_path / "labs"))
    nb = nbformat.read(LESSON, as_version=4)
    practice = [c for c in nb.cells if c.cell_type == "code" and "practice" in c.metadata.get("tags", [])]
    assert len(practice) == len(ANSWERS), "give ANSWERS an entry for every practice cell, in order"
    for cell, edits in zip(practice, ANSWERS):
        for untouched, answer in edits:
            assert cell.source.count(untouched) == 1, untouched
            cell.source = cell.source.replace(untouched, answer)
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(LESSON.parent)}}
    ).execute()  # raises if a cell fails
    for i, cell in enumerate(practice):
        out = stream_text(cell)
        assert "✓ " in out and "Not yet" not in out, f"practice cell {i}:\n{out}"
    assert not any("Not done above yet" in stream_text(c) for c in nb.cells if c.cell_type == "code"), (
        "a catch-up cell redid what the learner had already done"
    )
    linted_cell = next(c for c in nb.cells if "lintmigrations" in c.source and c.cell_type == "code")
    assert "RunSQL data migration is not reversible" not in linted_cell.outputs[0]["data"]["text/plain"], (
        "with its reverse_sql, 0015 is no longer flagged"
    )


def test_the_lesson_states_what_these_tests_pin():
    text = "\n".join(c.source for c in nbformat.read(LESSON, as_version=4).cells if c.cell_type == "markdown")
    for claim in [
        r"Since PostgreSQL 11 a constant default",
        r"`relfilenode`",
        r"`rootpage`",
        r"MySQL and Oracle commit every schema statement",
        r"`new__library_book`,? behind",
        r"unless it asks for one with `atomic=True`",
        r"`ACCESS EXCLUSIVE`",
        r"Python's default is 5",
        r'"options": "-c lock_timeout=5s"',
        r"`SET NOT NULL` reads every row once to check it but rewrites nothing",
        r"on SQLite\s+`AddIndexConcurrently` does not work at all",
        r"leaves an invalid index behind",
        r"Django does not read SQL",
        r"without copying a row",
        r"`migrate --check`",
        r"hid the dropped default of `format`",
    ]:
        assert re.search(claim, text), claim

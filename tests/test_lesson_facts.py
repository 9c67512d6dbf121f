"""The Django facts that lessons 04-06 teach, pinned against the real lab (real manage.py, real SQLite).

If a Django upgrade changes one of these behaviours, the test names the lesson claim that broke.
The last tests run the lessons' practice cells with a correct answer typed in and expect a tick.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

BOOK = """
class Book(models.Model):
    title = models.CharField(max_length=200)
"""


def book_with(*lines: str) -> str:
    return BOOK + "".join(f"    {line}\n" for line in lines)


def start(lab, *titles: str, models: str = BOOK) -> None:
    """A migrated library app (0001 only) holding the given books."""
    lab.write_models("library", models)
    lab.manage("makemigrations library").check()
    lab.manage("migrate").check()
    for t in titles:
        lab.shell(f"from library.models import Book; Book.objects.create(title={t!r})").check()


def last_line(result) -> str:
    return result.output.strip().splitlines()[-1]


def column_names(lab, table: str) -> list[str]:
    return lab.columns(table).column("column")


# ------------------------------------------------------------------ lesson 04: RunPython

FILL = '''
import sys

from django.db import migrations
from django.utils.text import slugify


def fill(apps, schema_editor):
    Book = apps.get_model("library", "Book")
    print("historical fields:", sorted(f.name for f in Book._meta.get_fields()), file=sys.stderr)
    for book in Book.objects.all():
        book.slug = slugify(book.title)
        book.save(update_fields=["slug"])


def clear(apps, schema_editor):
    apps.get_model("library", "Book").objects.update(slug="")


class Migration(migrations.Migration):
    dependencies = [("library", "0002_book_slug")]
    operations = [migrations.RunPython(fill, {reverse})]
'''


def with_slug_migration(lab, reverse: str = "clear"):
    start(lab, "The Left Hand of Darkness", "Emma")
    lab.write_models("library", book_with('slug = models.SlugField(max_length=200, default="")'))
    lab.manage("makemigrations library --name book_slug").check()
    lab.manage("migrate").check()
    lab.write_file("library/migrations/0003_fill.py", FILL.replace("{reverse}", reverse))


def test_runpython_backfills_forwards_and_its_reverse_runs_when_migrating_back(lab):
    with_slug_migration(lab)
    assert lab.rows("library_book").column("slug") == ["", ""], "AddField gives old rows the default only"
    forwards = lab.manage("migrate")
    assert forwards.ok and "Applying library.0003_fill... OK" in forwards.stdout
    assert lab.rows("library_book").column("slug") == ["the-left-hand-of-darkness", "emma"]
    back = lab.manage("migrate library 0002")
    assert back.ok and "Unapplying library.0003_fill... OK" in back.stdout
    assert lab.rows("library_book").column("slug") == ["", ""], "the reverse function ran"
    assert ("library", "0003_fill") not in lab.applied().rows
    assert "slug" in column_names(lab, "library_book"), "0002 is still applied: the column stays"


def test_makemigrations_empty_writes_a_wired_up_migration_with_no_operations(lab):
    start(lab)
    made = lab.manage("makemigrations library --empty --name fill_slugs")
    assert made.ok and "0002_fill_slugs.py" in made.stdout
    text = lab.show_migration("library", "0002")
    assert "('library', '0001_initial')" in text and re.search(r"operations = \[\s*\]", text)


def test_apps_get_model_is_the_historical_model_while_models_py_is_todays(lab):
    with_slug_migration(lab)
    lab.write_models("library", book_with('slug = models.SlugField(max_length=200, default="")',
                                          "pages = models.PositiveIntegerField(default=0)"))
    lab.manage("makemigrations library --name book_pages").check()
    lab.manage("migrate library zero").check()
    assert lab.tables() == ["django_migrations"], "migrate app zero leaves no table of the app"
    replay = lab.manage("migrate")
    assert replay.ok, replay
    assert "historical fields: ['id', 'slug', 'title']" in replay.stderr, "no 'pages' yet at 0003"

    # The same data migration importing models.py breaks on a fresh database.
    lab.manage("migrate library zero").check()
    bad = FILL.replace("{reverse}", "migrations.RunPython.noop").replace(
        'Book = apps.get_model("library", "Book")', "from library.models import Book")
    lab.write_file("library/migrations/0003_fill.py", bad)
    broken = lab.manage("migrate")
    assert broken.returncode == 1
    assert last_line(broken) == "django.db.utils.OperationalError: no such column: library_book.pages"
    assert [n for _, n in lab.applied()] == ["0001_initial", "0002_book_slug"], "0003 was rolled back"


PEEK = '''
import sys

from django.apps import apps as global_apps
from django.db import migrations


def peek(apps, schema_editor):
    old = apps.get_model("library", "Book")
    today = global_apps.get_model("library", "Book")
    print("historical:", sorted(f.name for f in old._meta.fields), hasattr(old, "shout"), file=sys.stderr)
    print("global:", sorted(f.name for f in today._meta.fields), hasattr(today, "shout"), file=sys.stderr)


class Migration(migrations.Migration):
    dependencies = [("library", "0001_initial")]
    operations = [migrations.RunPython(peek, migrations.RunPython.noop)]
'''


def test_historical_model_lacks_later_fields_and_custom_methods_unlike_the_global_registry(lab):
    start(lab)
    lab.write_file("library/migrations/0002_peek.py", PEEK)
    lab.write_models("library", book_with("pages = models.PositiveIntegerField(default=0)",
                                          "def shout(self):", "    return self.title.upper()"))
    lab.manage("makemigrations library --name book_pages").check()
    done = lab.manage("migrate")
    assert done.ok, done
    assert "historical: ['id', 'title'] False" in done.stderr
    assert "global: ['id', 'pages', 'title'] True" in done.stderr, "django.apps.apps is today's model"


def test_runpython_without_reverse_is_one_way_and_noop_makes_it_reversible(lab):
    with_slug_migration(lab, reverse="")
    lab.manage("migrate").check()
    refused = lab.manage("migrate library 0002")
    assert refused.returncode == 1 and "is not reversible" in refused.output
    lab.write_file("library/migrations/0003_fill.py", FILL.replace("{reverse}", "migrations.RunPython.noop"))
    back = lab.manage("migrate library 0002")
    assert back.ok, back
    assert lab.rows("library_book").column("slug") == ["the-left-hand-of-darkness", "emma"], "noop left the data"


# ------------------------------------------------------------ lesson 05: escape hatches

def test_sqlmigrate_prints_sql_and_changes_nothing(lab):
    start(lab, "Middlemarch")
    lab.write_models("library", book_with("subtitle = models.CharField(max_length=200, blank=True)"))
    lab.manage("makemigrations library").check()
    sql = lab.manage("sqlmigrate library 0002")
    assert sql.ok and 'CREATE TABLE "new__library_book"' in sql.stdout, "SQLite rebuilds the table"
    assert column_names(lab, "library_book") == ["id", "title"]
    assert [n for _, n in lab.applied()] == ["0001_initial"]


def test_fake_records_without_running_sql_and_fake_backwards_removes_the_record(lab):
    start(lab, "Middlemarch")
    lab.write_models("library", book_with("subtitle = models.CharField(max_length=200, blank=True)"))
    lab.manage("makemigrations library").check()
    faked = lab.manage("migrate library 0002 --fake")
    assert faked.ok and "Applying library.0002_book_subtitle... FAKED" in faked.stdout
    assert ("library", "0002_book_subtitle") in lab.applied().rows
    assert column_names(lab, "library_book") == ["id", "title"], "--fake ran no SQL"
    query = lab.shell("from library.models import Book; print(Book.objects.first().subtitle)")
    assert last_line(query) == "django.db.utils.OperationalError: no such column: library_book.subtitle"
    # The repair the lesson's practice asks for.
    unfaked = lab.manage("migrate library 0001 --fake")
    assert unfaked.ok and "Unapplying library.0002_book_subtitle... FAKED" in unfaked.stdout
    assert lab.manage("migrate library").ok
    assert column_names(lab, "library_book") == ["id", "title", "subtitle"]


LOAN_TABLE = '''
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute("CREATE TABLE loans_loan (id integer NOT NULL PRIMARY KEY AUTOINCREMENT, {columns})")
    cursor.execute("INSERT INTO loans_loan (borrower) VALUES (%s)", ["Ada"])
'''
LOAN = """
class Loan(models.Model):
    borrower = models.CharField(max_length=100)
    due = models.DateField()
"""


@pytest.mark.parametrize("columns, label", [
    ("borrower varchar(100) NOT NULL, due date NULL", "matching columns"),
    ("borrower varchar(100) NOT NULL", "a column missing: still faked, names only are checked"),
])
def test_fake_initial_adopts_existing_tables_by_name(lab, columns, label):
    lab.shell(LOAN_TABLE.format(columns=columns)).check()
    lab.write_models("loans", LOAN)
    lab.manage("makemigrations loans").check()
    adopted = lab.manage("migrate loans --fake-initial")
    assert adopted.ok and "Applying loans.0001_initial... FAKED" in adopted.stdout, label
    assert lab.rows("loans_loan").column("borrower") == ["Ada"]
    assert lab.applied().rows == [("loans", "0001_initial")]


def test_fake_initial_runs_an_initial_migration_whose_tables_are_missing(lab):
    lab.write_models("library", BOOK)
    lab.manage("makemigrations library").check()
    done = lab.manage("migrate --fake-initial")
    assert "Applying library.0001_initial... OK" in done.stdout
    assert "library_book" in lab.tables()


def churn(lab):
    """Lesson 05's five loans migrations: add note, rename to remark, add returned, remove remark."""
    steps = [
        (LOAN, None),
        (LOAN + "    note = models.CharField(max_length=200, blank=True)\n", None),
        (LOAN + "    remark = models.CharField(max_length=200, blank=True)\n", "y\n"),
        (LOAN + "    remark = models.CharField(max_length=200, blank=True)\n"
                "    returned = models.BooleanField(default=False)\n", None),
        (LOAN + "    returned = models.BooleanField(default=False)\n", None),
    ]
    for models, answer in steps:
        lab.write_models("loans", models)
        lab.manage("makemigrations loans", input=answer).check()
    assert lab.migrations("loans") == ["0001_initial", "0002_loan_note", "0003_rename_note_loan_remark",
                                       "0004_loan_returned", "0005_remove_loan_remark"]


def test_squash_keeps_the_net_effect_and_replaces_the_originals(lab):
    churn(lab)
    lab.manage("migrate loans").check()
    squashed = lab.manage("squashmigrations loans 0005 --noinput")
    assert squashed.ok and "Optimized from 5 operations to 1 operations." in squashed.stdout
    text = lab.show_migration("loans", "0001_squashed")
    replaces = re.search(r"replaces = \[(.*)\]", text).group(1)
    assert re.findall(r"'(\d{4}\w*)'", replaces) == lab.migrations("loans")[:1] + lab.migrations("loans")[2:]
    assert text.count("migrations.CreateModel(") == 1 and "AddField" not in text
    assert "'returned'" in text and "'note'" not in text and "'remark'" not in text

    # An old database: the originals are applied, the squash is recorded by the next migrate.
    assert "[-] 0001_squashed_0005_remove_loan_remark (5 squashed migrations)" in \
        lab.manage("showmigrations loans").stdout
    again = lab.manage("migrate loans")
    assert "No migrations to apply." in again.stdout
    assert ("loans", "0001_squashed_0005_remove_loan_remark") in lab.applied().rows
    assert "[X] 0001_squashed_0005_remove_loan_remark" in lab.manage("showmigrations loans").stdout

    # A new database runs only the squashed migration and ends with the final columns.
    lab.remove_file("db.sqlite3")
    fresh = lab.manage("migrate loans")
    assert re.findall(r"Applying (\S+)\.\.\. OK", fresh.stdout) == ["loans.0001_squashed_0005_remove_loan_remark"]
    assert column_names(lab, "loans_loan") == ["id", "borrower", "due", "returned"]


# ------------------------------------------------------------ lesson 06: when it goes wrong

NON_NULL = "Field 'pages' on model 'book' not migrated: it is impossible to add a non-nullable field " \
           "without specifying a default."


@pytest.mark.parametrize("rows", [("Solaris",), ()], ids=["with-rows", "empty-table"])
def test_non_nullable_field_without_default_is_refused_with_exit_3(lab, rows):
    start(lab, *rows)
    lab.write_models("library", book_with("pages = models.PositiveIntegerField()"))
    refused = lab.manage("makemigrations library --noinput")
    assert refused.returncode == 3 and refused.output.strip() == NON_NULL
    assert lab.migrations("library") == ["0001_initial"], "nothing was written"
    # blank=True is form validation only: still refused.
    lab.write_models("library", book_with("pages = models.PositiveIntegerField(blank=True)"))
    assert lab.manage("makemigrations library --noinput").returncode == 3


@pytest.mark.parametrize("field, stored", [
    ("pages = models.PositiveIntegerField(null=True)", None),
    ("pages = models.PositiveIntegerField(default=0)", 0),
])
def test_default_or_null_fixes_the_non_nullable_field(lab, field, stored):
    start(lab, "Solaris", "Invisible Cities")
    lab.write_models("library", book_with(field))
    assert lab.manage("makemigrations library --noinput").ok
    assert lab.manage("migrate").ok
    assert lab.rows("library_book").column("pages") == [stored, stored]


CONFLICT = ("CommandError: Conflicting migrations detected; multiple leaf nodes in the migration graph: "
            "(0002_book_isbn, 0002_book_pages in library).")


def two_branches(lab):
    start(lab)
    lab.write_models("library", book_with("pages = models.PositiveIntegerField(null=True)"))
    lab.manage("makemigrations library").check()
    alice = lab.read_file("library/migrations/0002_book_pages.py")
    lab.remove_file("library/migrations/0002_book_pages.py")
    lab.write_models("library", book_with("isbn = models.CharField(max_length=13, blank=True)"))
    lab.manage("makemigrations library").check()
    lab.write_file("library/migrations/0002_book_pages.py", alice)
    lab.write_models("library", book_with("pages = models.PositiveIntegerField(null=True)",
                                          "isbn = models.CharField(max_length=13, blank=True)"))


def test_two_0002_migrations_are_a_conflict_for_migrate_and_makemigrations(lab):
    two_branches(lab)
    for command in ("migrate", "makemigrations library"):
        stopped = lab.manage(command)
        assert stopped.returncode == 1 and stopped.output.splitlines()[0] == CONFLICT, command
    # Renaming a file does not help: both still depend on 0001.
    pages = lab.read_file("library/migrations/0002_book_pages.py")
    lab.remove_file("library/migrations/0002_book_pages.py")
    lab.write_file("library/migrations/0003_book_pages.py", pages)
    assert "Conflicting migrations detected" in lab.manage("migrate").output


def test_merge_writes_a_migration_depending_on_both_leaves_with_no_operations(lab):
    two_branches(lab)
    merged = lab.manage("makemigrations --merge", input="y\n")
    assert merged.ok and "Created new merge migration library/migrations/" \
        "0003_merge_0002_book_isbn_0002_book_pages.py" in merged.stdout
    text = lab.show_migration("library", "0003")
    assert "('library', '0002_book_isbn')" in text and "('library', '0002_book_pages')" in text
    assert re.search(r"operations = \[\s*\]", text)
    done = lab.manage("migrate")
    assert done.ok and len(re.findall(r"Applying library\.\S+ OK", done.stdout)) == 3
    assert column_names(lab, "library_book") == ["id", "title", "pages", "isbn"]
    assert lab.manage("makemigrations library").stdout.strip() == "No changes detected in app 'library'"


def test_merge_answered_no_writes_nothing(lab):
    two_branches(lab)
    declined = lab.manage("makemigrations --merge", input="n\n")
    assert lab.migrations("library") == ["0001_initial", "0002_book_isbn", "0002_book_pages"], declined


def test_lost_history_gives_table_already_exists_and_fake_initial_adopts_it(lab):
    start(lab, "Ficciones")
    lab.shell("from django.db import connection\nconnection.cursor().execute('DROP TABLE django_migrations')").check()
    failed = lab.manage("migrate")
    assert failed.returncode == 1
    assert last_line(failed) == 'django.db.utils.OperationalError: table "library_book" already exists'
    assert len(lab.applied()) == 0, "the failed migration was rolled back"
    fixed = lab.manage("migrate --fake-initial")
    assert fixed.ok and "Applying library.0001_initial... FAKED" in fixed.stdout
    assert lab.applied().rows == [("library", "0001_initial")]
    assert lab.rows("library_book").column("title") == ["Ficciones"]


# ------------------------------------------------------- practice cells, answered correctly

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"

# lesson stem: (the practice cell's untouched line, the line a learner who got it right types)
PRACTICE = {
    "04_data_migrations_runpython": (
        "migrations.RunPython(tidy_authors, reverse_code=None),   # <- replace None",
        "migrations.RunPython(tidy_authors, reverse_code=migrations.RunPython.noop),",
    ),
    "05_escape_hatches": (
        "repair = []   # <- your turn",
        'repair = ["migrate library 0001 --fake", "migrate library"]',
    ),
    "06_when_it_goes_wrong": (
        "language = models.CharField(max_length=20)   # <- your turn",
        'language = models.CharField(max_length=20, default="en")',
    ),
}


def practice_cell(nb, untouched: str) -> int:
    found = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and untouched in c.source]
    assert len(found) == 1, f"the practice line {untouched!r} must appear in exactly one cell"
    assert "verify(" in nb.cells[found[0]].source
    return found[0]


def stream_text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


@pytest.mark.parametrize("stem", list(PRACTICE))
def test_untouched_practice_cell_says_not_yet(stem):
    nb = nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4)
    i = practice_cell(nb, PRACTICE[stem][0])
    assert "✗ Not yet:" in stream_text(nb.cells[i]) and "✓" not in stream_text(nb.cells[i])


@pytest.mark.parametrize("stem", list(PRACTICE))
def test_practice_cell_answered_correctly_shows_a_tick(stem, tmp_path, monkeypatch):
    monkeypatch.setenv("MIGLAB_WORKDIR", str(tmp_path / "labs"))
    nb = nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4)
    untouched, answer = PRACTICE[stem]
    i = practice_cell(nb, untouched)
    line = next(x for x in nb.cells[i].source.splitlines() if untouched in x)
    indent = line[: len(line) - len(line.lstrip())]
    nb.cells[i].source = nb.cells[i].source.replace(line, indent + answer)
    nb.cells = nb.cells[: i + 1]  # run the lesson up to and including the practice cell
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    out = stream_text(nb.cells[i])
    assert "✓ " in out and "Not yet" not in out, out

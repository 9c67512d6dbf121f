"""The Django facts that the lessons teach, pinned against the real lab (real manage.py, real SQLite).

If a Django upgrade changes one of these behaviours, the test names the lesson claim that broke.
A few claims that used to be wrong in the lessons are also checked in the lessons' own text, so
they cannot come back. The last tests run every lesson with each practice cell answered
correctly, and expect a tick from every check and no error anywhere.
"""

from __future__ import annotations

import re
import sqlite3
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


# ------------------------------------------------------------- lessons 01-02: files and records

PAGES_MIGRATION = "library/migrations/0002_book_pages.py"


def test_regenerating_a_missing_migration_gives_a_file_of_the_same_name(lab_root):
    """Lesson 1: Ben's own makemigrations writes 0002_book_pages.py, the path of yours (a git add/add clash)."""
    from miglab import Lab

    written = []
    for name in ("you", "ben"):
        lab = Lab(name, root=lab_root)
        lab.write_models("library", BOOK)
        lab.manage("makemigrations library").check()
        lab.write_models("library", book_with("pages = models.PositiveIntegerField(null=True)"))
        written += re.findall(r"^  (\S+\.py)$", lab.manage("makemigrations library").check().stdout, re.M)
    assert written == [PAGES_MIGRATION, PAGES_MIGRATION]


def test_django_migrations_records_names_so_a_changed_file_is_taken_as_applied(lab):
    """Lesson 1: a same-named file with other contents is silently skipped where the name is recorded."""
    start(lab)
    lab.write_models("library", book_with("pages = models.PositiveIntegerField(null=True)"))
    lab.manage("makemigrations library").check()
    lab.manage("migrate").check()
    lab.write_models("library", book_with("pages = models.PositiveIntegerField(default=0)"))
    lab.write_file(PAGES_MIGRATION, lab.read_file(PAGES_MIGRATION).replace("(null=True)", "(default=0)"))
    again = lab.manage("migrate")
    assert again.ok and again.stdout.strip().endswith("No migrations to apply."), again
    assert "have changes that are not yet reflected" not in again.output, "files and models agree: no warning"
    assert lab.columns("library_book").rows[-1] == ("pages", "integer unsigned", "yes"), "still nullable"


def test_makemigrations_compares_with_the_files_not_the_database(lab):
    """Lesson 2: a planned but unapplied migration already counts; the database is not consulted."""
    start(lab)
    lab.write_models("library", book_with("pages = models.IntegerField(default=0)"))
    lab.manage("makemigrations library").check()
    assert column_names(lab, "library_book") == ["id", "title"]
    assert lab.manage("makemigrations library").stdout.strip() == "No changes detected in app 'library'"


# ------------------------------------------------------------------ lesson 03: the graph


def applied_order(result) -> list[str]:
    return re.findall(r"Applying (\S+)\.\.\. OK", result.stdout)


EMPTY = """
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [{deps}]
    operations = []
"""


def test_dependencies_decide_the_order_not_file_numbers(lab):
    start(lab)
    lab.write_file("library/migrations/0002_runs_second.py", EMPTY.format(deps='("library", "0003_runs_first")'))
    lab.write_file("library/migrations/0003_runs_first.py", EMPTY.format(deps='("library", "0001_initial")'))
    assert applied_order(lab.manage("migrate")) == ["library.0003_runs_first", "library.0002_runs_second"]


@pytest.mark.parametrize("first, second", [("0002_book_isbn", "0002_book_pages"), ("0002_a_pages", "0002_b_isbn")])
def test_names_only_break_ties_the_dependencies_leave_open(lab, first, second):
    """Lessons 3 and 6: two independent leaves under a merge run in a fixed order by name (the later name
    first); renaming the files flips it, and both orders respect every dependency."""
    start(lab)
    for name in (first, second):
        lab.write_file(f"library/migrations/{name}.py", EMPTY.format(deps='("library", "0001_initial")'))
    lab.write_file(
        "library/migrations/0003_merge.py", EMPTY.format(deps=f'("library", "{first}"), ("library", "{second}")')
    )
    assert applied_order(lab.manage("migrate")) == [f"library.{second}", f"library.{first}", "library.0003_merge"]


GRAPH_LIBRARY = (
    BOOK
    + """
class Branch(models.Model):
    name = models.CharField(max_length=100)
"""
)
GRAPH_LOANS = """
from library.models import Book, Branch


class Loan(models.Model):
    book = models.ForeignKey(Book, on_delete=models.CASCADE)
    branch = models.ForeignKey(Branch, null=True, on_delete=models.SET_NULL)
"""


def test_migrating_an_app_back_first_unapplies_its_dependants_in_other_apps(lab):
    """Lesson 3: migrate library 0001 unapplies loans.0002 (it needs library.0002) and keeps loans.0001."""
    lab.write_models("library", BOOK)
    lab.write_models(
        "loans",
        "from library.models import Book\n\n\nclass Loan(models.Model):\n"
        "    book = models.ForeignKey(Book, on_delete=models.CASCADE)\n",
    )
    lab.manage("makemigrations").check()
    lab.write_models("library", GRAPH_LIBRARY)
    lab.write_models("loans", GRAPH_LOANS)
    lab.manage("makemigrations").check()
    assert "('library', '0002_branch')" in lab.show_migration("loans", "0002")
    lab.manage("migrate").check()
    back = lab.manage("migrate library 0001")
    assert back.ok and "Rendering model states... DONE" in back.stdout
    assert re.findall(r"Unapplying (\S+)\.\.\. OK", back.stdout) == ["loans.0002_loan_branch", "library.0002_branch"]
    assert lab.applied().rows == [("library", "0001_initial"), ("loans", "0001_initial")]


def test_run_before_adds_an_arrow_from_the_migration_that_declares_it(lab):
    """Lesson 3: run_before makes another app's migration wait, without editing that file."""
    from miglab.lab.graph import migration_graph

    lab.write_models("library", BOOK)
    lab.write_models("loans", "class Loan(models.Model):\n    borrower = models.CharField(max_length=100)\n")
    lab.manage("makemigrations").check()
    lab.write_file("library/migrations/0002_close.py", EMPTY.format(deps='("library", "0001_initial")'))
    mine = EMPTY.format(deps='("loans", "0001_initial")')
    lab.write_file("loans/migrations/0002_move.py", mine)
    plan = migration_graph(lab).plan
    assert plan.index(("library", "0002_close")) < plan.index(("loans", "0002_move")), "library sorts first"
    lab.write_file(
        "loans/migrations/0002_move.py",
        mine.replace("    operations = []", '    run_before = [("library", "0002_close")]\n    operations = []'),
    )
    graph = migration_graph(lab)
    assert (("loans", "0002_move"), ("library", "0002_close")) in graph.edges
    assert graph.plan.index(("loans", "0002_move")) < graph.plan.index(("library", "0002_close"))
    ran = applied_order(lab.manage("migrate"))
    assert ran.index("loans.0002_move") < ran.index("library.0002_close")


AUTH_APPS = '\nINSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", *INSTALLED_APPS]\n'
MEMBER = """
from django.contrib.auth.models import AbstractUser


class Member(AbstractUser):
    card_number = models.CharField(max_length=20, blank=True)
"""


def test_swappable_dependency_points_at_the_first_migration_of_the_user_models_app(lab):
    """Lesson 3: makemigrations writes swappable_dependency(settings.AUTH_USER_MODEL); the setting decides."""
    from miglab.lab.graph import migration_graph

    settings = lab.read_file("project/settings.py") + AUTH_APPS
    lab.write_file("project/settings.py", settings)
    lab.write_models(
        "loans",
        "from django.conf import settings\n\n\nclass Loan(models.Model):\n"
        "    borrower = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)\n",
    )
    lab.manage("makemigrations loans").check()
    text = lab.show_migration("loans", "0001")
    assert "migrations.swappable_dependency(settings.AUTH_USER_MODEL)," in text
    assert migration_graph(lab).dependencies(("loans", "0001_initial")) == [("auth", "0001_initial")]
    resolved = lab.shell("from django.db import migrations\nprint(tuple(migrations.swappable_dependency('auth.User')))")
    assert resolved.stdout.strip() == "('auth', '__first__')"

    lab.write_file("project/settings.py", settings + 'AUTH_USER_MODEL = "library.Member"\n')
    lab.write_models("library", MEMBER)
    lab.manage("makemigrations library").check()
    assert lab.show_migration("loans", "0001") == text, "the loans file did not change"
    assert migration_graph(lab).dependencies(("loans", "0001_initial")) == [("library", "0001_initial")]


def test_a_cycle_error_names_the_migrations_on_the_loop(lab):
    """Lesson 3 prints Django's message; its order comes from a set, so only the names are pinned."""
    start(lab)
    lab.write_models(
        "loans",
        "from library.models import Book\n\n\nclass Loan(models.Model):\n"
        "    book = models.ForeignKey(Book, on_delete=models.CASCADE)\n",
    )
    lab.manage("makemigrations loans").check()
    path = "library/migrations/0001_initial.py"
    lab.write_file(
        path,
        lab.read_file(path).replace(
            "dependencies = [\n    ]", "dependencies = [\n        ('loans', '0001_initial'),\n    ]"
        ),
    )
    failed = lab.manage("migrate")
    head, _, names = last_line(failed).partition(": ")
    assert failed.returncode == 1 and head == "django.db.migrations.exceptions.CircularDependencyError"
    assert sorted(names.split(", ")) == ["library.0001_initial", "loans.0001_initial"]


# ------------------------------------------------------------------ lesson 04: RunPython

FILL = """
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
"""


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
    lab.write_models(
        "library",
        book_with(
            'slug = models.SlugField(max_length=200, default="")', "pages = models.PositiveIntegerField(default=0)"
        ),
    )
    lab.manage("makemigrations library --name book_pages").check()
    lab.manage("migrate library zero").check()
    assert lab.tables() == ["django_migrations"], "migrate app zero leaves no table of the app"
    replay = lab.manage("migrate")
    assert replay.ok, replay
    assert "historical fields: ['id', 'slug', 'title']" in replay.stderr, "no 'pages' yet at 0003"

    # The same data migration importing models.py breaks on a fresh database.
    lab.manage("migrate library zero").check()
    bad = FILL.replace("{reverse}", "migrations.RunPython.noop").replace(
        'Book = apps.get_model("library", "Book")', "from library.models import Book"
    )
    lab.write_file("library/migrations/0003_fill.py", bad)
    broken = lab.manage("migrate")
    assert broken.returncode == 1
    assert last_line(broken) == "django.db.utils.OperationalError: no such column: library_book.pages"
    assert [n for _, n in lab.applied()] == ["0001_initial", "0002_book_slug"], "0003 was rolled back"


def peek_migration(after: str, *lines: str) -> str:
    """A data migration after ``library.<after>`` whose function prints ``lines`` (expressions about the
    historical ``Book`` and, as ``today``, the global registry's Book) to stderr."""
    prints = "".join(f"    print({line}, file=sys.stderr)\n" for line in lines)
    return f'''
import sys

from django.apps import apps as global_apps
from django.db import migrations


def peek(apps, schema_editor):
    Book = apps.get_model("library", "Book")
    today = global_apps.get_model("library", "Book")
{prints}

class Migration(migrations.Migration):
    dependencies = [("library", "{after}")]
    operations = [migrations.RunPython(peek, migrations.RunPython.noop)]
'''


PEEK = peek_migration(
    "0001_initial",
    '"historical:", sorted(f.name for f in Book._meta.fields), hasattr(Book, "shout")',
    '"global:", sorted(f.name for f in today._meta.fields), hasattr(today, "shout")',
)


def test_historical_model_lacks_later_fields_and_custom_methods_unlike_the_global_registry(lab):
    start(lab)
    lab.write_file("library/migrations/0002_peek.py", PEEK)
    lab.write_models(
        "library",
        book_with(
            "pages = models.PositiveIntegerField(default=0)", "def shout(self):", "    return self.title.upper()"
        ),
    )
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


def test_undoing_a_runpython_without_reverse_raises_irreversible_error_and_keeps_it_applied(lab):
    with_slug_migration(lab, reverse="")
    lab.manage("migrate").check()
    refused = lab.manage("migrate library 0002")
    assert refused.returncode == 1
    assert last_line(refused).startswith("django.db.migrations.exceptions.IrreversibleError: Operation <RunPython")
    assert ("library", "0003_fill") in lab.applied().rows


MANAGERS = """
class ShelfManager(models.Manager):
    use_in_migrations = True

    def long_titles(self):
        return self.filter(title__regex=r"^.{10,}$")


class EverydayManager(models.Manager):
    def short_titles(self):
        return self.all()


class Book(models.Model):
    title = models.CharField(max_length=200)
    objects = ShelfManager()
    everyday = EverydayManager()
"""

PEEK_MANAGERS = peek_migration(
    "0002_book_managers",
    '"objects:", type(Book.objects).__name__, hasattr(Book.objects, "long_titles")',
    '"everyday:", hasattr(Book, "everyday")',
)


def test_historical_models_have_only_the_managers_marked_use_in_migrations(lab):
    start(lab)
    lab.write_models("library", MANAGERS)
    made = lab.manage("makemigrations library --name book_managers")
    assert made.ok and "~ Change managers on book" in made.stdout
    text = lab.show_migration("library", "0002")
    assert "('objects', library.models.ShelfManager())" in text and "Everyday" not in text
    lab.write_file("library/migrations/0003_peek.py", PEEK_MANAGERS)
    done = lab.manage("migrate")
    assert done.ok, done
    assert "objects: ShelfManager True" in done.stderr and "everyday: False" in done.stderr


COUNT_LOANS = """
from django.db import migrations


def count_loans(apps, schema_editor):
    Loan = apps.get_model("loans", "Loan")
    Loan.objects.count()


class Migration(migrations.Migration):
    dependencies = [{dependencies}]
    operations = [migrations.RunPython(count_loans, migrations.RunPython.noop)]
"""


def test_a_data_migration_using_another_apps_model_needs_a_dependency_on_that_app(lab):
    lab.write_models("library", BOOK)
    lab.write_models(
        "loans",
        "from library.models import Book\n\n\nclass Loan(models.Model):\n"
        "    book = models.ForeignKey(Book, on_delete=models.CASCADE)\n",
    )
    lab.manage("makemigrations").check()
    lab.write_file(
        "library/migrations/0002_count_loans.py", COUNT_LOANS.format(dependencies='("library", "0001_initial")')
    )
    failed = lab.manage("migrate")
    assert failed.returncode == 1 and last_line(failed) == "LookupError: No installed app with label 'loans'."
    assert "loans_loan" not in lab.tables(), "library sorts first: loans had not run yet"
    lab.write_file(
        "library/migrations/0002_count_loans.py",
        COUNT_LOANS.format(dependencies='("library", "0001_initial"), ("loans", "0001_initial")'),
    )
    fixed = lab.manage("migrate")
    assert fixed.ok and re.findall(r"Applying (\S+)\.\.\. OK", fixed.stdout) == [
        "loans.0001_initial",
        "library.0002_count_loans",
    ]


# ------------------------------------------------------------ lesson 05: escape hatches


def test_sqlmigrate_prints_sql_and_changes_nothing(lab):
    start(lab, "Middlemarch")
    lab.write_models("library", book_with("subtitle = models.CharField(max_length=200, blank=True)"))
    lab.manage("makemigrations library").check()
    sql = lab.manage("sqlmigrate library 0002")
    assert sql.ok and 'CREATE TABLE "new__library_book"' in sql.stdout, "SQLite rebuilds the table"
    assert column_names(lab, "library_book") == ["id", "title"]
    assert [n for _, n in lab.applied()] == ["0001_initial"]


@pytest.mark.parametrize(
    "field, in_place",
    [
        ("models.CharField(max_length=200, null=True)", True),
        ("models.CharField(max_length=200, blank=True)", False),
        ("models.CharField(max_length=200, null=True, default='x')", False),
        ("models.PositiveIntegerField(null=True)", True),
        ("models.PositiveIntegerField(db_default=1)", False),
    ],
    ids=["nullable", "blank-not-null", "nullable-with-default", "nullable-number", "db-default"],
)
def test_sqlite_adds_only_a_nullable_column_without_default_in_place(lab, field, in_place):
    """Lesson 5: only some new columns need SQLite's table rebuild; a plain ALTER TABLE adds the others."""
    start(lab)
    lab.write_models("library", book_with(f"extra = {field}"))
    lab.manage("makemigrations library --noinput").check()
    sql = lab.manage("sqlmigrate library 0002").check().stdout
    assert ('ALTER TABLE "library_book" ADD COLUMN "extra"' in sql) is in_place, sql
    assert ('CREATE TABLE "new__library_book"' in sql) is (not in_place), sql
    back = lab.manage("sqlmigrate library 0002 --backwards").check().stdout
    assert 'ALTER TABLE "library_book" DROP COLUMN "extra"' in back, back
    assert [n for _, n in lab.applied()] == ["0001_initial"], "sqlmigrate ran nothing"


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


LOAN_TABLE = """
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute("CREATE TABLE loans_loan (id integer NOT NULL PRIMARY KEY AUTOINCREMENT, {columns})")
    cursor.execute("INSERT INTO loans_loan (borrower) VALUES (%s)", ["Ada"])
"""
LOAN = """
class Loan(models.Model):
    borrower = models.CharField(max_length=100)
    due = models.DateField()
"""


@pytest.mark.parametrize(
    "columns, label",
    [
        ("borrower varchar(100) NOT NULL, due date NULL", "matching columns"),
        ("borrower varchar(100) NOT NULL", "a column missing: still faked, names only are checked"),
    ],
)
def test_fake_initial_adopts_existing_tables_by_name(lab, columns, label):
    lab.shell(LOAN_TABLE.format(columns=columns)).check()
    lab.write_models("loans", LOAN)
    lab.manage("makemigrations loans").check()
    adopted = lab.manage("migrate loans --fake-initial")
    assert adopted.ok and "Applying loans.0001_initial... FAKED" in adopted.stdout, label
    assert lab.rows("loans_loan").column("borrower") == ["Ada"]
    assert lab.applied().rows == [("loans", "0001_initial")]


HAND_WRITTEN_FIRST = """
from django.db import migrations, models


class Migration(migrations.Migration):
{initial}
    dependencies = []

    operations = [
        migrations.CreateModel(
            name="Loan",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False)),
                ("borrower", models.CharField(max_length=100)),
                ("due", models.DateField()),
            ],
        ),
    ]
"""


@pytest.mark.parametrize(
    "initial, faked",
    [
        ("", True),
        ("    initial = True\n", True),
        ("    initial = False\n", False),
    ],
    ids=["no-initial-line", "initial-true", "initial-false"],
)
def test_fake_initial_also_treats_a_first_migration_without_the_flag_as_initial(lab, initial, faked):
    """Lesson 5: no `initial` line and no dependency in its own app counts as initial; False opts out."""
    lab.shell(LOAN_TABLE.format(columns="borrower varchar(100) NOT NULL, due date NULL")).check()
    lab.write_models("loans", LOAN)
    lab.write_file("loans/migrations/0001_first.py", HAND_WRITTEN_FIRST.format(initial=initial))
    done = lab.manage("migrate loans --fake-initial")
    if faked:
        assert done.ok and "Applying loans.0001_first... FAKED" in done.stdout
    else:
        assert done.returncode == 1 and last_line(done).endswith('table "loans_loan" already exists')


CYCLE_LIBRARY = """
class Book(models.Model):
    title = models.CharField(max_length=200)
    last_loan = models.ForeignKey("loans.Loan", null=True, on_delete=models.SET_NULL, related_name="+")
"""
CYCLE_LOANS = """
class Loan(models.Model):
    book = models.ForeignKey("library.Book", on_delete=models.CASCADE)
    borrower = models.CharField(max_length=100)
"""


def two_apps_pointing_at_each_other(lab):
    lab.write_models("library", CYCLE_LIBRARY)
    lab.write_models("loans", CYCLE_LOANS)
    made = lab.manage("makemigrations").check()
    return made


def test_makemigrations_splits_a_foreign_key_cycle_into_two_initial_migrations(lab):
    """Lessons 1, 3 and 5: an app can have more than one migration flagged initial."""
    made = two_apps_pointing_at_each_other(lab)
    assert lab.migrations("library") == ["0001_initial", "0002_initial"], made
    for name in ("0001", "0002"):
        assert "    initial = True\n" in lab.show_migration("library", name)
    second = lab.show_migration("library", "0002")
    assert "('loans', '0001_initial')" in second and "migrations.AddField(" in second


@pytest.mark.parametrize(
    "last_loan_column, outcome",
    [
        ("", "OK"),
        (", last_loan_id bigint NULL", "FAKED"),
    ],
    ids=["column-missing", "column-there"],
)
def test_fake_initial_checks_addfield_columns_by_name_never_types(lab, last_loan_column, outcome):
    """Lesson 5: CreateModel tables and AddField columns must exist; types and NULL are not compared."""
    two_apps_pointing_at_each_other(lab)
    lab.shell(f"""
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute("CREATE TABLE library_book (id integer NOT NULL PRIMARY KEY AUTOINCREMENT, "
                   "title varchar(200) NOT NULL{last_loan_column})")
    cursor.execute("CREATE TABLE loans_loan (id integer NOT NULL PRIMARY KEY AUTOINCREMENT, "
                   "borrower text NULL, book_id bigint NOT NULL)")
""").check()
    done = lab.manage("migrate --fake-initial")
    assert done.ok, done
    assert re.findall(r"Applying (\S+)\.\.\. (\w+)", done.stdout) == [
        ("library.0001_initial", "FAKED"),
        ("loans.0001_initial", "FAKED"),
        ("library.0002_initial", outcome),
    ]
    assert lab.columns("loans_loan").rows[1] == ("borrower", "TEXT", "yes"), "the wrong type was adopted as is"
    assert "last_loan_id" in column_names(lab, "library_book")


def test_fake_initial_runs_an_initial_migration_whose_tables_are_missing(lab):
    lab.write_models("library", BOOK)
    lab.manage("makemigrations library").check()
    done = lab.manage("migrate --fake-initial")
    assert "Applying library.0001_initial... OK" in done.stdout
    assert "library_book" in lab.tables()


FILL_NOTES = """
from django.db import migrations


def fill_notes(apps, schema_editor):
    apps.get_model("loans", "Loan").objects.filter(note="").update(note="(none)")


class Migration(migrations.Migration):
    dependencies = [("loans", "0002_loan_note")]
    operations = [{operation}]
"""
BARRIERS = {
    "RunPython": "migrations.RunPython(fill_notes, migrations.RunPython.noop{elidable})",
    "RunSQL": "migrations.RunSQL(\"UPDATE loans_loan SET note = '(none)'\", migrations.RunSQL.noop{elidable})",
}


def churn(lab, barrier: str = "RunPython", elidable: bool = False):
    """Lesson 05's five loans migrations: add note, fill it (a data migration), add returned, remove note."""
    operation = BARRIERS[barrier].format(elidable=", elidable=True" if elidable else "")
    lab.write_models("loans", LOAN)
    lab.manage("makemigrations loans").check()
    lab.write_models("loans", LOAN + "    note = models.CharField(max_length=200, blank=True)\n")
    lab.manage("makemigrations loans").check()
    lab.write_file("loans/migrations/0003_fill_notes.py", FILL_NOTES.format(operation=operation))
    lab.write_models(
        "loans",
        LOAN + "    note = models.CharField(max_length=200, blank=True)\n"
        "    returned = models.BooleanField(default=False)\n",
    )
    lab.manage("makemigrations loans").check()
    lab.write_models("loans", LOAN + "    returned = models.BooleanField(default=False)\n")
    lab.manage("makemigrations loans").check()
    assert lab.migrations("loans") == [
        "0001_initial",
        "0002_loan_note",
        "0003_fill_notes",
        "0004_loan_returned",
        "0005_remove_loan_note",
    ]


SQUASHED = "0001_squashed_0005_remove_loan_note"


@pytest.mark.parametrize("barrier", list(BARRIERS))
def test_squash_optimizer_stops_at_runpython_or_runsql_unless_elidable(lab, barrier):
    """Lesson 5: the squash concatenates and optimizes; a data operation is a barrier unless elidable."""
    churn(lab, barrier)
    blocked = lab.manage("squashmigrations loans 0005 --noinput")
    assert blocked.ok and "Optimized from 5 operations to 4 operations." in blocked.stdout
    text = lab.show_migration("loans", "0001_squashed")
    assert re.findall(r"migrations\.(\w+)\(", text.split("operations = [", 1)[1]) == [
        "CreateModel",
        barrier,
        "AddField",
        "RemoveField",
    ]
    if barrier == "RunPython":
        assert "Manual porting required" in blocked.stdout
        assert "code=loans.migrations.0003_fill_notes.fill_notes" in text, "functions are not copied over"
        broken = lab.manage("showmigrations loans")
        assert broken.returncode == 1 and "SyntaxError" in last_line(broken), "the squash does not even load"

    lab.remove_file(f"loans/migrations/{SQUASHED}.py")
    operation = BARRIERS[barrier].format(elidable=", elidable=True")
    lab.write_file("loans/migrations/0003_fill_notes.py", FILL_NOTES.format(operation=operation))
    elided = lab.manage("squashmigrations loans 0005 --noinput")
    assert elided.ok and "Optimized from 5 operations to 1 operations." in elided.stdout
    assert "Manual porting required" not in elided.stdout


def test_squash_replaces_the_originals_on_old_databases_and_alone_on_new_ones(lab):
    churn(lab, elidable=True)
    lab.manage("migrate loans").check()
    squashed = lab.manage("squashmigrations loans 0005 --noinput")
    assert squashed.ok and "Optimized from 5 operations to 1 operations." in squashed.stdout
    text = lab.show_migration("loans", "0001_squashed")
    replaces = re.search(r"replaces = \[(.*)\]", text).group(1)
    assert re.findall(r"'(\d{4}\w*)'", replaces) == [n for n in lab.migrations("loans") if n != SQUASHED]
    assert text.count("migrations.CreateModel(") == 1 and "AddField" not in text and "RunPython" not in text
    assert "'returned'" in text and "'note'" not in text and "    initial = True\n" in text

    # An old database: the originals are applied, the squash is recorded by the next migrate.
    assert f"[-] {SQUASHED} (5 squashed migrations)" in lab.manage("showmigrations loans").stdout
    again = lab.manage("migrate loans")
    assert "No migrations to apply." in again.stdout
    assert ("loans", SQUASHED) in lab.applied().rows
    assert f"[X] {SQUASHED}" in lab.manage("showmigrations loans").stdout

    # A new database runs only the squashed migration, and records the replaced ones too.
    lab.remove_file("db.sqlite3")
    fresh = lab.manage("migrate loans")
    assert re.findall(r"Applying (\S+)\.\.\. OK", fresh.stdout) == [f"loans.{SQUASHED}"]
    assert column_names(lab, "loans_loan") == ["id", "borrower", "due", "returned"]
    assert [n for _, n in lab.applied()] == [n for n in lab.migrations("loans") if n != SQUASHED] + [SQUASHED]

    # migrate <app> zero unapplies it (and forgets every row of the app).
    zero = lab.manage("migrate loans zero")
    assert zero.ok and f"Unapplying loans.{SQUASHED}... OK" in zero.stdout
    assert "loans_loan" not in lab.tables() and len(lab.applied()) == 0


def test_retiring_a_squash_needs_its_dependants_updated_and_prune(lab):
    """Lesson 5: delete the originals, drop replaces, repoint dependants, then migrate --prune."""
    churn(lab, elidable=True)
    lab.write_models(
        "library",
        BOOK + '    last_loan = models.ForeignKey("loans.Loan", null=True, '
        'on_delete=models.SET_NULL, related_name="+")\n',
    )
    lab.manage("makemigrations library").check()
    dependant = "library/migrations/0001_initial.py"
    assert "('loans', '0005_remove_loan_note')" in lab.read_file(dependant)
    lab.manage("migrate").check()
    lab.manage("squashmigrations loans 0005 --noinput").check()
    lab.manage("migrate").check()
    originals = [n for n in lab.migrations("loans") if n != SQUASHED]

    for name in originals:
        lab.remove_file(f"loans/migrations/{name}.py")
    refused = lab.manage("migrate loans --prune")
    assert "Cannot use --prune because the following squashed migrations have their 'replaces'" in refused.stdout

    path = f"loans/migrations/{SQUASHED}.py"
    lab.write_file(path, re.sub(r"\n    replaces = \[.*\]\n", "\n", lab.read_file(path)))
    broken = lab.manage("migrate loans --prune")
    assert broken.returncode == 1 and last_line(broken) == (
        "django.db.migrations.exceptions.NodeNotFoundError: Migration library.0001_initial dependencies "
        "reference nonexistent parent node ('loans', '0005_remove_loan_note')"
    )

    lab.write_file(dependant, lab.read_file(dependant).replace("0005_remove_loan_note", SQUASHED))
    pruned = lab.manage("migrate loans --prune")
    assert pruned.ok and re.findall(r"Pruning loans\.(\S+) OK", pruned.stdout) == originals
    assert [n for a, n in lab.applied() if a == "loans"] == [SQUASHED]


def test_a_squashed_migration_can_be_squashed_again(lab):
    """Lesson 5: since Django 6.0, a squash range may start with a squashed migration."""
    churn(lab, elidable=True)
    lab.manage("migrate").check()
    lab.manage("squashmigrations loans 0005 --noinput").check()
    lab.write_models(
        "loans",
        LOAN + "    returned = models.BooleanField(default=False)\n"
        "    renewals = models.PositiveIntegerField(default=0)\n",
    )
    lab.manage("makemigrations loans").check()
    lab.manage("migrate").check()
    again = lab.manage("squashmigrations loans 0006 --noinput")
    assert again.ok, again
    assert f"Will squash the following migrations:\n - {SQUASHED}\n - 0006_loan_renewals\n" in again.stdout
    assert "0001_squashed_0006_loan_renewals" in lab.migrations("loans")


# ------------------------------------------------------------ lesson 06: when it goes wrong

NON_NULL = (
    "Field 'pages' on model 'book' not migrated: it is impossible to add a non-nullable field "
    "without specifying a default."
)


@pytest.mark.parametrize("rows", [("Solaris",), ()], ids=["with-rows", "empty-table"])
def test_non_nullable_field_without_default_is_refused_with_exit_3(lab, rows):
    start(lab, *rows)
    lab.write_models("library", book_with("pages = models.PositiveIntegerField()"))
    refused = lab.manage("makemigrations library --noinput")
    assert refused.returncode == 3 and refused.output.strip() == NON_NULL
    assert lab.migrations("library") == ["0001_initial"], "nothing was written"
    # For a number, blank=True is not enough: there is no empty value to fill the rows with.
    lab.write_models("library", book_with("pages = models.PositiveIntegerField(blank=True)"))
    assert lab.manage("makemigrations library --noinput").returncode == 3


def test_blank_true_is_enough_for_a_text_field_and_fills_the_rows_with_empty_strings(lab):
    """Lessons 5 and 6: for a text field, blank=True changes what makemigrations does: no question, ''."""
    start(lab, "Solaris", "Invisible Cities")
    lab.write_models("library", book_with("isbn = models.CharField(max_length=13, blank=True)"))
    made = lab.manage("makemigrations library --noinput")
    assert made.ok and "+ Add field isbn to book" in made.stdout
    assert "preserve_default" not in lab.show_migration("library", "0002")
    lab.manage("migrate").check()
    assert lab.rows("library_book").column("isbn") == ["", ""]
    assert create_table(lab).count("DEFAULT") == 0


def create_table(lab) -> str:
    return lab.sql("SELECT sql FROM sqlite_master WHERE name = 'library_book'").rows[0][0]


def insert_row(lab, **values):
    """Insert a book with raw SQL, as a program other than Django would, naming only these columns."""
    with sqlite3.connect(lab.db_path) as con:
        con.execute(
            f"INSERT INTO library_book ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
            tuple(values.values()),
        )


def test_a_one_off_default_from_the_prompt_fills_the_rows_and_leaves_no_database_default(lab):
    """Lesson 6: the interactive fix, preserve_default=False, and no DEFAULT in the table."""
    start(lab, "Solaris", "Invisible Cities")
    lab.write_models("library", book_with("pages = models.PositiveIntegerField()"))
    asked = lab.manage("makemigrations library", input="1\n0\n")
    assert asked.ok and "Please select a fix:" in asked.stdout
    assert " 1) Provide a one-off default now" in asked.stdout
    text = lab.show_migration("library", "0002")
    assert "field=models.PositiveIntegerField(default=0)," in text and "preserve_default=False," in text
    sql = lab.manage("sqlmigrate library 0002").check().stdout
    assert 'SELECT "id", "title", 0 FROM "library_book"' in sql and "DEFAULT" not in sql
    lab.manage("migrate").check()
    assert lab.rows("library_book").column("pages") == [0, 0]
    with pytest.raises(sqlite3.IntegrityError, match=re.escape("NOT NULL constraint failed: library_book.pages")):
        insert_row(lab, title="Kindred")


def test_a_models_default_leaves_no_database_default_but_db_default_does(lab):
    """Lesson 6: default= fills the old rows only; db_default (Django 5.0+) stays in the schema."""
    start(lab, "Solaris")
    lab.write_models(
        "library",
        book_with(
            "pages = models.PositiveIntegerField(default=0)", "copies = models.PositiveIntegerField(db_default=1)"
        ),
    )
    lab.manage("makemigrations library --noinput").check()
    lab.manage("migrate").check()
    assert lab.rows("library_book").dicts()[0] == {"id": 1, "title": "Solaris", "copies": 1, "pages": 0}
    table = create_table(lab)
    assert '"copies" integer unsigned DEFAULT 1 NOT NULL' in table and table.count("DEFAULT") == 1
    insert_row(lab, title="Kindred", pages=264)
    assert lab.rows("library_book").dicts()[1]["copies"] == 1, "the database filled copies itself"
    with pytest.raises(sqlite3.IntegrityError, match=re.escape("library_book.pages")):
        insert_row(lab, title="Beloved")


@pytest.mark.parametrize(
    "field, stored",
    [
        ("pages = models.PositiveIntegerField(null=True)", None),
        ("pages = models.PositiveIntegerField(default=0)", 0),
    ],
)
def test_default_or_null_fixes_the_non_nullable_field(lab, field, stored):
    start(lab, "Solaris", "Invisible Cities")
    lab.write_models("library", book_with(field))
    assert lab.manage("makemigrations library --noinput").ok
    assert lab.manage("migrate").ok
    assert lab.rows("library_book").column("pages") == [stored, stored]


CONFLICT = (
    "CommandError: Conflicting migrations detected; multiple leaf nodes in the migration graph: "
    "(0002_book_isbn, 0002_book_pages in library)."
)


def two_branches(lab):
    start(lab)
    lab.write_models("library", book_with("pages = models.PositiveIntegerField(null=True)"))
    lab.manage("makemigrations library").check()
    alice = lab.read_file("library/migrations/0002_book_pages.py")
    lab.remove_file("library/migrations/0002_book_pages.py")
    lab.write_models("library", book_with("isbn = models.CharField(max_length=13, blank=True)"))
    lab.manage("makemigrations library").check()
    lab.write_file("library/migrations/0002_book_pages.py", alice)
    lab.write_models(
        "library",
        book_with(
            "pages = models.PositiveIntegerField(null=True)", "isbn = models.CharField(max_length=13, blank=True)"
        ),
    )


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
    assert (
        merged.ok
        and "Created new merge migration library/migrations/0003_merge_0002_book_isbn_0002_book_pages.py"
        in merged.stdout
    )
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


def test_sqlite_and_postgresql_roll_back_schema_changes_mysql_and_oracle_cannot():
    """Lesson 6: whether a failed migration leaves half its DDL behind depends on the backend."""
    from django.db.backends.mysql.features import DatabaseFeatures as MySQL
    from django.db.backends.oracle.features import DatabaseFeatures as Oracle
    from django.db.backends.postgresql.features import DatabaseFeatures as PostgreSQL

    assert (PostgreSQL.can_rollback_ddl, MySQL.can_rollback_ddl, Oracle.can_rollback_ddl) == (True, False, False)


def test_sqlite_rolls_back_a_migration_that_fails_halfway(lab):
    start(lab)
    lab.write_file(
        "library/migrations/0002_two_steps.py",
        """
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("library", "0001_initial")]
    operations = [
        migrations.RunSQL("CREATE TABLE library_note (id integer PRIMARY KEY)"),
        migrations.RunSQL("CREATE TABLE library_book (id integer PRIMARY KEY)"),
    ]
""",
    )
    failed = lab.manage("migrate")
    assert failed.returncode == 1 and last_line(failed).endswith("table library_book already exists")
    assert "library_note" not in lab.tables(), "the first statement was rolled back with the second"
    assert [n for _, n in lab.applied()] == ["0001_initial"]


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


def test_a_rename_answered_no_drops_the_data_and_answered_yes_keeps_it(lab):
    """Lesson 6: N means RemoveField + AddField; migrating back re-creates an empty column."""
    start(lab, models=book_with("pages = models.PositiveIntegerField(null=True)"))
    lab.shell("from library.models import Book; Book.objects.create(title='Kindred', pages=264)").check()
    lab.write_models("library", book_with("page_count = models.PositiveIntegerField(null=True)"))
    no = lab.manage("makemigrations library", input="n\n")
    assert "Was book.pages renamed to book.page_count (a PositiveIntegerField)? [y/N]" in no.stdout
    assert "- Remove field pages from book" in no.stdout and "+ Add field page_count to book" in no.stdout
    lab.manage("migrate").check()
    assert lab.rows("library_book").column("page_count") == [None], "the numbers are gone"
    lab.manage("migrate library 0001").check()
    assert lab.rows("library_book").column("pages") == [None], "migrating back does not bring them back"

    lab.remove_file("library/migrations/0002_remove_book_pages_book_page_count.py")
    with sqlite3.connect(lab.db_path) as con:  # the backup, played by an UPDATE
        con.execute("UPDATE library_book SET pages = 264")
    yes = lab.manage("makemigrations library", input="y\n")
    assert "~ Rename field pages on book to page_count" in yes.stdout
    lab.manage("migrate").check()
    assert lab.rows("library_book").column("page_count") == [264]


def test_a_dependency_on_a_missing_file_is_a_node_not_found_error_until_the_file_arrives(lab):
    start(lab)
    lab.write_file("loans/migrations/0001_initial.py", EMPTY.format(deps='("library", "0002_book_isbn")'))
    failed = lab.manage("migrate")
    assert failed.returncode == 1 and last_line(failed) == (
        "django.db.migrations.exceptions.NodeNotFoundError: Migration loans.0001_initial dependencies "
        "reference nonexistent parent node ('library', '0002_book_isbn')"
    )
    assert lab.applied().rows == [("library", "0001_initial")], "nothing ran"
    lab.write_file("library/migrations/0002_book_isbn.py", EMPTY.format(deps='("library", "0001_initial")'))
    assert applied_order(lab.manage("migrate")) == ["library.0002_book_isbn", "loans.0001_initial"]


def test_an_applied_migration_that_gains_a_dependency_is_an_inconsistent_history(lab):
    """Lesson 6: checked before migrate and makemigrations; a new migration carries the dependency instead."""
    start(lab)
    applied = EMPTY.format(deps="")
    lab.write_file("loans/migrations/0001_initial.py", applied)
    lab.manage("migrate").check()
    lab.write_file("library/migrations/0002_book_language.py", EMPTY.format(deps='("library", "0001_initial")'))
    lab.write_file("loans/migrations/0001_initial.py", EMPTY.format(deps='("library", "0002_book_language")'))
    message = (
        "django.db.migrations.exceptions.InconsistentMigrationHistory: Migration loans.0001_initial is "
        "applied before its dependency library.0002_book_language on database 'default'."
    )
    for command in ("migrate", "makemigrations"):
        stopped = lab.manage(command)
        assert stopped.returncode == 1 and last_line(stopped) == message, command
    lab.write_file("loans/migrations/0001_initial.py", applied)
    lab.write_file(
        "loans/migrations/0002_wait.py",
        EMPTY.format(deps='("loans", "0001_initial"), ("library", "0002_book_language")'),
    )
    assert applied_order(lab.manage("migrate")) == ["library.0002_book_language", "loans.0002_wait"]


# ------------------------------------------------------------------ lesson 07: wrap-up


def test_a_label_change_is_a_no_op_alterfield_that_is_still_recorded(lab):
    start(lab)
    lab.write_models("library", BOOK.replace("max_length=200)", 'max_length=200, verbose_name="book title")'))
    made = lab.manage("makemigrations library --name label_title")
    assert made.ok and "~ Alter field title on book" in made.stdout
    assert "-- (no-op)" in lab.manage("sqlmigrate library 0002").stdout
    lab.manage("migrate").check()
    assert ("library", "0002_label_title") in lab.applied().rows


def test_makemigrations_check_exits_1_and_writes_nothing(lab):
    start(lab)
    assert lab.manage("makemigrations --check").returncode == 0
    lab.write_models("library", book_with("subtitle = models.CharField(max_length=200, blank=True)"))
    checked = lab.manage("makemigrations --check")
    assert checked.returncode == 1 and "+ Add field subtitle to book" in checked.stdout
    assert lab.migrations("library") == ["0001_initial"], "--check implies --dry-run"


# ------------------------------------------------------- what the lessons say

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def lesson_text(stem: str) -> str:
    return "\n".join(c.source for c in nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4).cells)


# What the lessons say about the facts above. Claims that were wrong once (issue 13) must stay out
# (False); their corrections must stay in (True), each shown on real Django by a test above.
CLAIMS = [
    ("06_when_it_goes_wrong", r"blank=True only affects form validation", False),
    ("01_what_is_a_migration", r"initial = True`\*\*: this is the app's first migration", False),
    ("03_the_migration_graph", r"Django never sorts by", False),
    ("05_escape_hatches", r"for a migration marked `initial = True`, if every table", False),
    ("05_escape_hatches", r"checks that the \*tables\* exist, not that their columns", False),
    ("05_escape_hatches", r"replays\s+the operations of `0001` to `0005` and keeps only their net effect", False),
    ("05_escape_hatches", r"On SQLite, adding this column means rebuilding the table", False),
    ("01_what_is_a_migration", r"Django\s+finds two different migrations both claiming to come right after", False),
    ("06_when_it_goes_wrong", r"SQLite\s+rolled the failed migration back, so nothing was half-done\.", False),
    ("01_what_is_a_migration", r"`0001_initial` \*and\* `0002_initial`, both flagged", True),
    ("01_what_is_a_migration", r"stores an app and a \*\*name\*\*", True),
    ("03_the_migration_graph", r"they only break\s+ties", True),
    ("03_the_migration_graph", r"swappable_dependency\(settings\.AUTH_USER_MODEL\)", True),
    ("04_data_migrations_runpython", r"use_in_migrations = True", True),
    ("05_escape_hatches", r"every\s+column its `AddField` operations would add exists", True),
    ("05_escape_hatches", r"no `initial` line at\s+all whose `dependencies` name nothing in their own app", True),
    ("05_escape_hatches", r"never checks\*\*: types", True),
    ("05_escape_hatches", r"`RunSQL` blocks it the same way", True),
    ("05_escape_hatches", r"`elidable=True`", True),
    ("05_escape_hatches", r"copy them over by hand", True),
    ("05_escape_hatches", r"migrate <app> --prune", True),
    ("05_escape_hatches", r"Since Django 6\.0", True),
    ("05_escape_hatches", r"one plain `ALTER TABLE \.\.\. ADD COLUMN`, even on SQLite", True),
    ("06_when_it_goes_wrong", r"preserve_default=False", True),
    ("06_when_it_goes_wrong", r"Only `copies` has a `DEFAULT`", True),
    ("06_when_it_goes_wrong", r"MySQL and\s+Oracle cannot roll back", True),
    ("06_when_it_goes_wrong", r"`blank=True` is enough", True),
]


@pytest.mark.parametrize("stem, claim, said", CLAIMS, ids=[f"{s[:2]}-{i}" for i, (s, _, _) in enumerate(CLAIMS)])
def test_the_lessons_state_the_corrected_facts_and_not_the_retracted_ones(stem, claim, said):
    found = bool(re.search(claim, lesson_text(stem)))
    assert found == said, f"{stem} {'no longer says' if said else 'says again'}: {claim}"


# ------------------------------------------------------- practice cells, answered correctly

# lesson stem: for each practice cell, in order, the (untouched text, right answer) replacements
# that a learner who got it right makes. Every practice cell must have its entry.
SURNAME_FIRST = (
    '        pass   # ✏️ "Toni Morrison" -> "Morrison, Toni", then book.save(update_fields=["author"])',
    '        first, _, last = book.author.rpartition(" ")\n'
    '        book.author = f"{last}, {first}"\n'
    '        book.save(update_fields=["author"])',
)
SURNAME_LAST = (
    '    pass       # ✏️ the way back: "Morrison, Toni" -> "Toni Morrison"',
    '    Book = apps.get_model("library", "Book")\n'
    "    for book in Book.objects.all():\n"
    '        last, _, first = book.author.partition(", ")\n'
    '        book.author = f"{first} {last}"\n'
    '        book.save(update_fields=["author"])',
)
COMMAND = "command = None   # ✏️"
ANSWERS = {
    "01_what_is_a_migration": [
        [("answer = None", 'answer = "0001_initial"')],
        [("    # published = models.DateField(null=True)", "    published = models.DateField(null=True)")],
    ],
    "02_plan_then_apply": [
        [("prediction = None", "prediction = False")],
        [(COMMAND, 'command = "sqlmigrate library 0003"  #')],
        [(COMMAND, 'command = "migrate"  #')],
    ],
    "03_the_migration_graph": [
        [
            (
                "my_order = []",
                'my_order = [("library", "0001_initial"), ("loans", "0001_initial"), '
                '("library", "0002_branch"), ("loans", "0002_loan_branch")]',
            )
        ],
        [("prediction = []", 'prediction = [("loans", "0002_loan_branch"), ("library", "0002_branch")]')],
        [("run_before = []", 'run_before = [("library", "0005_close_empty_branches")]')],
        [("AUTH_USER_MODEL = None", 'AUTH_USER_MODEL = "library.Member"')],
    ],
    "04_data_migrations_runpython": [
        [("reverse_code=None", "reverse_code=migrations.RunPython.noop")],
        [SURNAME_FIRST, SURNAME_LAST],
    ],
    "05_escape_hatches": [
        [(COMMAND, 'command = "sqlmigrate library 0002 --backwards"  #')],
        [("repair = []", 'repair = ["migrate library 0001 --fake", "migrate library"]')],
        [(COMMAND, 'command = "squashmigrations loans 0005 --noinput"  #')],
        [
            (
                '"migrations.RunPython(fill_notes, migrations.RunPython.noop)",   # ✏️',
                '"migrations.RunPython(fill_notes, migrations.RunPython.noop, elidable=True)",  #',
            )
        ],
        [(COMMAND, 'command = "migrate loans zero"  #')],
    ],
    "06_when_it_goes_wrong": [
        [("language = models.CharField(max_length=20)", 'language = models.CharField(max_length=20, default="en")')],
        [(COMMAND, 'command = "makemigrations --merge"  #')],
        [(COMMAND, 'command = "migrate --fake-initial"  #')],
    ],
    "07_wrap_up": [
        [("prediction = None", "prediction = False")],
    ],
}


def stream_text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def answered(stem: str):
    """The whole lesson, with every practice cell answered as ANSWERS says."""
    nb = nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4)
    practice = [c for c in nb.cells if c.cell_type == "code" and "practice" in c.metadata.get("tags", [])]
    assert len(practice) == len(ANSWERS[stem]), "give ANSWERS an entry for every practice cell, in order"
    for cell, edits in zip(practice, ANSWERS[stem]):
        for untouched, answer in edits:
            assert cell.source.count(untouched) == 1, f"{untouched!r} must appear once in its practice cell"
            cell.source = cell.source.replace(untouched, answer)
    return nb, practice


@pytest.mark.slow
@pytest.mark.parametrize("stem", list(ANSWERS))
def test_every_practice_cell_answered_correctly_ticks_and_the_lesson_runs_on(stem, tmp_path, monkeypatch):
    monkeypatch.setenv("MIGLAB_WORKDIR", str(tmp_path / "labs"))
    nb, practice = answered(stem)
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    ).execute()  # raises if a cell fails
    for i, cell in enumerate(practice):
        out = stream_text(cell)
        assert "✓ " in out and "Not yet" not in out, f"practice cell {i}:\n{out}"
    caught_up = [stream_text(c) for c in nb.cells if c.cell_type == "code" and "catch_up(" in c.source]
    assert all("✓ Done in your practice cell above" in out for out in caught_up), (
        "a catch-up cell redid what the learner had already done"
    )

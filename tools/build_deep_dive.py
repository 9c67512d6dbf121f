"""Write the instructor notebook source/deep_dive/deep_dive.ipynb and its answer key.

The notebook is generated, never edited by hand: change this script and run

    .venv/bin/python tools/build_deep_dive.py

then `make release` to regenerate release/ through nbgrader. Points and the
checks behind every graded cell come from miglab.judges.GRADED, so the judge and
the notebook cannot drift apart.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from miglab.judges import GRADED, QUIZ_CHOICES  # noqa: E402

OUT = ROOT / "source" / "deep_dive" / "deep_dive.ipynb"
KEY = ROOT / "source" / "deep_dive" / "answer_key.json"

cells: list = []


def _meta(**kw) -> dict:
    return {"nbgrader": {"schema_version": 3, **kw}}


def md(cell_id: str, text: str) -> None:
    cells.append(nbformat.v4.new_markdown_cell(
        textwrap.dedent(text).strip("\n"),
        metadata=_meta(grade=False, solution=False, locked=True, grade_id=f"md_{cell_id}"),
    ))


def code(cell_id: str, source: str, *, locked: bool = True) -> None:
    cells.append(nbformat.v4.new_code_cell(
        textwrap.dedent(source).strip("\n"),
        metadata=_meta(grade=False, solution=False, locked=locked, grade_id=cell_id),
    ))


def answer(cell_id: str, source: str) -> None:
    cells.append(nbformat.v4.new_code_cell(
        textwrap.dedent(source).strip("\n"),
        metadata=_meta(grade=False, solution=True, locked=False, grade_id=f"answer_{cell_id}"),
    ))


def test(grade_id: str, visible: str, hidden: str = "") -> None:
    points, checks = GRADED[grade_id]
    body = textwrap.dedent(visible).strip("\n")
    if hidden:
        body += "\n### BEGIN HIDDEN TESTS\n" + textwrap.dedent(hidden).strip("\n") + "\n### END HIDDEN TESTS"
    for cid in checks:  # every check of the cell must be called by it
        assert f'"{cid}"' in body, (grade_id, cid)
    cells.append(nbformat.v4.new_code_cell(
        body, metadata=_meta(grade=True, solution=False, locked=True, grade_id=grade_id, points=points),
    ))


# ---------------------------------------------------------------- the notebook

md("intro", """
# Graded assignment: inside `makemigrations` and `migrate`

You have watched Django plan and apply migrations in the lessons. Now you build
the pieces yourself: the filter that decides what `migrate` still has to run,
the graph that orders migrations, the optimizer behind `squashmigrations`, a
real data migration, and a short quiz.

**How this notebook works**

* Run the first code cell once, then work top to bottom.
* Each answer goes in a cell marked `# YOUR CODE HERE`: delete the
  `raise NotImplementedError()` line and write your code there.
* The cell right after each answer is a check. It tells you at once whether
  the example works (a line starting with ✔) or what went wrong. When you
  submit, the same cells run again with more inputs you have not seen, so make
  your code right in general, not just for the example.
* Points are shown on every check cell. Where a question has independent parts,
  each part is its own check cell and scores on its own.
* Quiz answers are recorded here and marked when your notebook is graded.
""")

code("setup", """
# Run this cell first. It loads the checks and the pieces of Django this notebook uses.
from miglab.checks import check, setup_kernel
setup_kernel()

from django.db import migrations, models
""")

# ---------------------------------------------------------------- part 1

md("part1", """
## Part 1: fill in the blanks

### 1.1 What is still to do

`migrate` first computes a **plan**: every migration needed to reach the
target, dependencies first. Then it reads the `django_migrations` table to see
what this database has already applied, and runs only the rest.

Complete `pending_migrations(plan, applied)`:

* `plan` is a list of `(app_label, migration_name)` pairs, already in the order
  they must run;
* `applied` is a collection (a list or a set) of the pairs recorded in
  `django_migrations`. It may mention migrations that are not in the plan;
* return the list of planned migrations that are not applied yet, **in plan
  order**.
""")

answer("pending", '''
def pending_migrations(plan, applied):
    """The migrations of `plan` that the database has not applied yet, in plan order."""
    already = set(applied)
    ### BEGIN SOLUTION
    return [migration for migration in plan if migration not in already]
    ### END SOLUTION
''')

test("pending_basic", """
plan = [("library", "0001_initial"), ("library", "0002_book_pages"),
        ("loans", "0001_initial"), ("library", "0003_book_isbn")]
print(pending_migrations(plan, {("library", "0001_initial")}))
check("pending.example", pending_migrations)
""", """
check("pending.hidden", pending_migrations)
""")

test("pending_edge", """
# Hidden checks: an empty plan, applied rows from other apps, the same name in two apps.
""", """
check("pending.edge", pending_migrations)
""")

md("deps", """
### 1.2 `dependencies`

The `loans` app gets its first migration. Its `Loan` model has a
`ForeignKey` to `library.Book`, so the `loans_loan` table can only be created
once `library_book` exists. When this migration was written, `library` had two
migrations: `0001_initial` (creates `Book`) and `0002_book_pages` (adds a
column).

Set `LOANS_0001_DEPENDENCIES` to the list that `makemigrations` writes into
`loans/migrations/0001_initial.py`: it points at the **latest** migration of
the app the foreign key refers to.
""")

answer("deps", '''
# loans/migrations/0001_initial.py would say:  dependencies = LOANS_0001_DEPENDENCIES
### BEGIN SOLUTION
LOANS_0001_DEPENDENCIES = [("library", "0002_book_pages")]
### END SOLUTION
''')

test("deps_loans", """
check("deps.loans", LOANS_0001_DEPENDENCIES)
""")

md("get_model", """
### 1.3 The model inside a data migration

A function run by `RunPython` receives `apps`, a registry of the models **as
they were at that point of the migration history**. Complete
`get_book_model` so that it returns the `Book` model of the `library` app from
that registry (never import it from `library/models.py`: that file describes
today's model, which may have columns the database does not have yet).
""")

answer("get_model", '''
def get_book_model(apps, schema_editor):
    """library's Book model, as it was when this migration runs."""
    ### BEGIN SOLUTION
    return apps.get_model("library", "Book")
    ### END SOLUTION
''')

test("get_model", """
check("get_model", get_book_model)
""")

md("reverse", """
### 1.4 Making a data migration reversible

This migration adds a nullable `days` column to `loans.Loan` (an earlier
operation in the same file) and then fills it with 14 for every existing loan.
Migrating backwards drops the column anyway, so undoing the fill needs no work
at all, but the migration must still say so, or Django refuses to reverse it.

Set `FILL_OPERATION` to the `RunPython` operation: `set_default_loan_days`
forwards, and Django's ready-made "do nothing" function as the reverse.
""")

answer("reverse", '''
def set_default_loan_days(apps, schema_editor):
    Loan = apps.get_model("loans", "Loan")
    Loan.objects.filter(days__isnull=True).update(days=14)


### BEGIN SOLUTION
FILL_OPERATION = migrations.RunPython(set_default_loan_days, migrations.RunPython.noop)
### END SOLUTION
''')

test("reverse_arg", """
check("reverse", FILL_OPERATION)
""")

md("merge", """
### 1.5 A merge migration

Two branches each added a third migration to `library`: `0003_book_isbn` and
`0003_book_subtitle`, both on top of `0002_book_pages`. Now the app has two
leaf nodes and `migrate` stops with *Conflicting migrations detected*.
`makemigrations --merge` writes `0004_merge` with no operations; only its
`dependencies` matter. Set `MERGE_DEPENDENCIES` to them.
""")

answer("merge", '''
# library/migrations/0004_merge.py would say:  dependencies = MERGE_DEPENDENCIES
### BEGIN SOLUTION
MERGE_DEPENDENCIES = [("library", "0003_book_isbn"), ("library", "0003_book_subtitle")]
### END SOLUTION
''')

test("merge_deps", """
check("merge", MERGE_DEPENDENCIES)
""")

# ---------------------------------------------------------------- part 2

md("part2", """
## Part 2: the migration graph

In this part a project's migrations are given as a dict: each key is an
`(app_label, name)` pair and its value is the list of pairs it depends on
(its `dependencies`). Every migration appears as a key.

### 2.1 A plan order

Write `order_migrations(dependencies)`. It returns a list holding every
migration exactly once, where each migration comes **after every migration it
depends on**. Many orders can be right; any of them scores full marks. File
names and dict order mean nothing: only the edges count, and edges may cross
from one app to another.

If the dependencies contain a cycle, no order exists: raise `ValueError` with
a message that names every migration on the cycle (by its name, such as
`0002_book_pages`) and no migration that is not on it.
""")

answer("order", '''
def order_migrations(dependencies):
    """Every migration once, each after all the migrations it depends on."""
    ### BEGIN SOLUTION
    order = []
    done = set()
    on_path = []  # the chain of migrations being visited, for reporting a cycle

    def visit(node):
        if node in done:
            return
        if node in on_path:
            cycle = on_path[on_path.index(node):] + [node]
            raise ValueError("circular dependency: " + " -> ".join(f"{app}.{name}" for app, name in cycle))
        on_path.append(node)
        for parent in dependencies[node]:
            visit(parent)
        on_path.pop()
        done.add(node)
        order.append(node)

    for node in dependencies:
        visit(node)
    return order
    ### END SOLUTION
''')

test("order_basic", """
example = {
    ("library", "0001_initial"): [],
    ("library", "0002_book_pages"): [("library", "0001_initial")],
    ("loans", "0001_initial"): [("library", "0002_book_pages")],
    ("loans", "0002_loan_due"): [("loans", "0001_initial")],
}
print(order_migrations(example))
check("order.example", order_migrations)
""", """
check("order.hidden", order_migrations)
""")

test("order_cross", """
# Hidden checks: larger graphs you have not seen, with dependencies between apps.
""", """
check("order.cross", order_migrations)
""")

test("order_cycle", """
cyclic = {
    ("library", "0001_initial"): [],
    ("library", "0002_book_pages"): [("library", "0001_initial"), ("loans", "0002_loan_due")],
    ("loans", "0001_initial"): [("library", "0002_book_pages")],
    ("loans", "0002_loan_due"): [("loans", "0001_initial")],
}
try:
    order_migrations(cyclic)
except ValueError as error:
    print("ValueError:", error)
check("cycle.example", order_migrations)
""", """
check("cycle.hidden", order_migrations)
""")

md("leaves", """
### 2.2 Leaf nodes and conflicts

A **leaf node** of an app is one of its migrations that no other migration of
the *same* app depends on (a migration of another app depending on it does not
count). A healthy app has exactly one leaf: its newest migration. Two leaves
mean two branches were merged in git without a merge migration, which is the
conflict `makemigrations` and `migrate` refuse to work with.

* `find_leaves(dependencies)` returns a dict: every app label → the list of
  its leaf migration names (any order).
* `find_conflicts(dependencies)` returns the same kind of dict, but only for
  the apps that have more than one leaf (an empty dict when all is well).
""")

answer("leaves", '''
def find_leaves(dependencies):
    """{app_label: [names of that app's leaf migrations]} for every app."""
    ### BEGIN SOLUTION
    has_child_in_app = set()
    for (app, _name), parents in dependencies.items():
        for parent in parents:
            if parent[0] == app:
                has_child_in_app.add(parent)
    leaves = {}
    for node in dependencies:
        leaves.setdefault(node[0], [])
        if node not in has_child_in_app:
            leaves[node[0]].append(node[1])
    return leaves
    ### END SOLUTION


def find_conflicts(dependencies):
    """The apps with more than one leaf, and their leaves."""
    ### BEGIN SOLUTION
    return {app: names for app, names in find_leaves(dependencies).items() if len(names) > 1}
    ### END SOLUTION
''')

test("leaves", """
forked = {
    ("library", "0001_initial"): [],
    ("library", "0002_book_pages"): [("library", "0001_initial")],
    ("library", "0002_book_isbn"): [("library", "0001_initial")],
    ("loans", "0001_initial"): [("library", "0002_book_pages")],
}
print(find_leaves(forked))
check("leaves.example", find_leaves)
""", """
check("leaves.hidden", find_leaves)
""")

test("conflicts", """
print(find_conflicts(forked))
check("conflicts.example", find_conflicts)
""", """
check("conflicts.hidden", find_conflicts)
""")

# ---------------------------------------------------------------- part 3

md("part3", """
## Part 3: the optimizer behind `squashmigrations`

Squashing replays a run of operations and keeps only their net effect.

### 3.1 Replaying columns

Start with a table's columns as a dict `{name: type}` and replay a list of
operations, each a tuple:

| operation | meaning |
| --- | --- |
| `("add", name, type)` | a new column |
| `("remove", name)` | the column is dropped |
| `("rename", old, new)` | same column and data, new name |
| `("alter", name, type)` | same column, new type |

Write `replay_columns(columns, operations)` returning the final dict. Do not
change the `columns` argument. The operations are always valid (nothing is
removed twice, a rename never overwrites a column). Hidden checks include
random sequences generated with Hypothesis.
""")

answer("replay", '''
def replay_columns(columns, operations):
    """The columns after every operation, as {name: type}."""
    result = dict(columns)
    for operation in operations:
        kind = operation[0]
        ### BEGIN SOLUTION
        if kind == "add":
            result[operation[1]] = operation[2]
        elif kind == "remove":
            del result[operation[1]]
        elif kind == "rename":
            result[operation[2]] = result.pop(operation[1])
        elif kind == "alter":
            result[operation[1]] = operation[2]
        else:
            raise ValueError(f"unknown operation {kind!r}")
        ### END SOLUTION
    return result
''')

test("replay_basic", """
print(replay_columns({"title": "string", "pages": "integer"},
                     [("add", "isbn", "string"), ("rename", "pages", "page_count"),
                      ("remove", "isbn"), ("alter", "title", "text")]))
check("replay.example", replay_columns)
""", """
check("replay.hidden", replay_columns)
""")

test("replay_random", """
# Hidden checks: 40 random valid sequences (Hypothesis, fixed seed), compared with Django's replay.
""", """
check("replay.random", replay_columns)
""")

md("squash", """
### 3.2 Squashing real operations

Now the operations are Django's own: `migrations.CreateModel`, `AddField`,
`AlterField`, `RemoveField`, `RenameField` and `DeleteModel`, all in the app
`library`, where a `Book` model (`id`, `title`, `pages`) **already exists
with rows** before the first operation.

Write `squash(operations)` returning a new list of operations that

1. leaves the schema exactly as replaying every original operation does
   (checked with Django's `ProjectState`);
2. is **no longer** than what Django's own `MigrationOptimizer` produces for
   the same list;
3. never loses data Django would keep: a rename of an existing column must
   stay a `RenameField`, never become `RemoveField` + `AddField`.

Useful facts: `op.name`, `op.fields` (`CreateModel`), `op.model_name`,
`op.name`, `op.field` (field operations), `op.old_name`, `op.new_name`
(`RenameField`). Model names in field operations are lower case. Build new
operations rather than changing the ones you receive. Names can come back: a
column that was removed or renamed away may later be added again under the
same name.
""")

answer("squash", '''
def squash(operations):
    """A shorter list of operations with the same final schema, keeping renames as renames."""
    ### BEGIN SOLUTION
    created = {}   # models created in this list: lower name -> [name, {field name: field}]
    existing = {}  # models that existed before: lower name -> {"columns": {...}, "removed": [...]}
    deleted = []   # existing models that are deleted

    def existing_model(key):
        return existing.setdefault(key, {"columns": {}, "removed": []})

    for op in operations:
        if isinstance(op, migrations.CreateModel):
            created[op.name_lower] = [op.name, dict(op.fields)]
        elif isinstance(op, migrations.DeleteModel):
            if op.name_lower in created:
                del created[op.name_lower]
            else:
                existing.pop(op.name_lower, None)
                deleted.append(op.name)
        elif op.model_name_lower in created:
            fields = created[op.model_name_lower][1]
            if isinstance(op, (migrations.AddField, migrations.AlterField)):
                fields[op.name] = op.field
            elif isinstance(op, migrations.RemoveField):
                del fields[op.name]
            elif isinstance(op, migrations.RenameField):
                created[op.model_name_lower][1] = {
                    (op.new_name if name == op.old_name else name): field for name, field in fields.items()
                }
        else:
            model = existing_model(op.model_name_lower)
            columns = model["columns"]  # current name -> {"origin": old name or None, "field": new definition}
            if isinstance(op, migrations.AddField):
                columns[op.name] = {"origin": None, "field": op.field}
            elif isinstance(op, migrations.AlterField):
                columns.setdefault(op.name, {"origin": op.name, "field": None})["field"] = op.field
            elif isinstance(op, migrations.RemoveField):
                column = columns.pop(op.name, {"origin": op.name})
                if column["origin"] is not None:
                    model["removed"].append(column["origin"])
            elif isinstance(op, migrations.RenameField):
                columns[op.new_name] = columns.pop(op.old_name, {"origin": op.old_name, "field": None})

    result = []
    for key, model in existing.items():
        columns = model["columns"]
        result += [migrations.RemoveField(key, name) for name in model["removed"]]
        renames = {c["origin"]: name for name, c in columns.items()
                   if c["origin"] is not None and c["origin"] != name}
        while renames:
            free = [old for old, new in renames.items() if new not in renames]
            if free:
                old = free[0]
                result.append(migrations.RenameField(key, old, renames.pop(old)))
            else:  # a cycle of renames (a swap): park one column under a temporary name
                old = next(iter(renames))
                parked = old + "_squash_tmp"
                result.append(migrations.RenameField(key, old, parked))
                renames[parked] = renames.pop(old)
        for name, c in columns.items():
            if c["origin"] is not None and c["field"] is not None:
                result.append(migrations.AlterField(key, name, c["field"]))
        for name, c in columns.items():
            if c["origin"] is None:
                result.append(migrations.AddField(key, name, c["field"]))
    result += [migrations.DeleteModel(name) for name in deleted]
    result += [migrations.CreateModel(name, list(fields.items())) for name, fields in created.values()]
    return result
    ### END SOLUTION
''')

test("squash_state", """
example = [
    migrations.AddField("book", "isbn", models.CharField(max_length=13)),
    migrations.AlterField("book", "isbn", models.CharField(max_length=20)),
    migrations.AddField("book", "draft", models.BooleanField(default=False)),
    migrations.RemoveField("book", "draft"),
]
print(squash(example))
check("squash.example", squash)
""", """
check("squash.hidden", squash)
""")

test("squash_short", """
# The example again: is your list as short as Django's optimizer's?
check("squash.example_short", squash)
""", """
check("squash.short", squash)
""")

test("squash_rename", """
# A rename of an existing column must stay a rename.
print(squash([migrations.RenameField("book", "title", "name")]))
check("squash.rename_example", squash)
""", """
check("squash.rename", squash)
""")

test("squash_random", """
# Hidden checks: 40 random sequences (Hypothesis, fixed seed) judged on all three rules.
""", """
check("squash.random", squash)
""")

# ---------------------------------------------------------------- part 4

md("part4", """
## Part 4: a live data migration

The lab project's `library` app has three migrations on disk:

* `0001_initial` creates `Book` with a `title`;
* `0002_book_slug` adds `slug`, a text column that is empty (`""`) for every
  existing row;
* `0004_book_isbn` adds `isbn`, and depends on **your** `0003_fill_slugs`.

`library/models.py` already has all three fields, so importing `Book` from
there inside your migration would ask the database for an `isbn` column that
does not exist yet at 0003: use `apps.get_model`.

Write the missing parts of `0003_fill_slugs` below (it is the text of the
file):

* forwards: give every book `slug = slugify(title)` (`slugify` from
  `django.utils.text` is imported for you);
* backwards: set every slug back to `""`;
* `operations`: the `RunPython` operation with both functions.

The check writes your file into a fresh copy of the lab project, fills the
table with books, runs the real `python manage.py migrate library 0003`,
reads the rows, then migrates back with `migrate library 0002` and reads them
again.
""")

answer("datamig", '''
FILL_SLUGS_MIGRATION = """
from django.db import migrations
from django.utils.text import slugify


def forwards(apps, schema_editor):
    ### BEGIN SOLUTION
    Book = apps.get_model("library", "Book")
    for book in Book.objects.all():
        book.slug = slugify(book.title)
        book.save(update_fields=["slug"])
    ### END SOLUTION


def backwards(apps, schema_editor):
    ### BEGIN SOLUTION
    Book = apps.get_model("library", "Book")
    Book.objects.update(slug="")
    ### END SOLUTION


class Migration(migrations.Migration):
    dependencies = [("library", "0002_book_slug")]
    # operations = [...]
    ### BEGIN SOLUTION
    operations = [migrations.RunPython(forwards, backwards)]
    ### END SOLUTION
"""
''')

test("datamig_forward", """
# Forwards on three example books: Dune, The Left Hand of Darkness, Kindred.
check("datamig.forward.visible", FILL_SLUGS_MIGRATION)
""", """
check("datamig.forward.hidden", FILL_SLUGS_MIGRATION)
""")

test("datamig_backward", """
# Backwards: migrate library 0002 must run your reverse function.
check("datamig.backward.visible", FILL_SLUGS_MIGRATION)
""", """
check("datamig.backward.hidden", FILL_SLUGS_MIGRATION)
""")

# ---------------------------------------------------------------- part 5

QUIZ = [
    ("What does `python manage.py makemigrations` do?",
     ["It runs the SQL of every migration that has not run yet.",
      "It writes new migration files that describe how the models changed, and leaves the database alone.",
      "It creates the tables for every model in the database.",
      "It removes migration files whose changes are already in the database."], "b"),
    ("What does `python manage.py migrate` do?",
     ["It applies, in dependency order, the migration files that this database has not applied yet.",
      "It compares models.py with the database columns and writes a file for the difference.",
      "It prints the SQL of a migration without running it.",
      "It copies the database schema into models.py."], "a"),
    ("What do the entries of a migration's `dependencies` list point at?",
     ["The models that the migration changes.",
      "The Python packages the migration imports.",
      "Migrations that will run after this one.",
      "Migrations that must be applied before this one."], "d"),
    ("How does Django decide the order in which migrations run?",
     ["Alphabetically by file name, across all apps.",
      "By each file's modification date.",
      "By a topological sort of the graph formed by the `dependencies` edges.",
      "App by app, in the order of `INSTALLED_APPS`, ignoring dependencies."], "c"),
    ("Which operation lets a migration change the data in existing rows with Python code?",
     ["`RunPython`", "`AlterField`", "`AddField`", "`RenameField`"], "a"),
    ("Inside a data migration's function, how should you get the model you work on?",
     ["`from library.models import Book`",
      "`apps.get_model(\"library\", \"Book\")` on the `apps` argument",
      "Define a fresh `class Book(models.Model)` inside the function.",
      "`django.apps.apps.get_model(\"library\", \"Book\")`, the global registry"], "b"),
    ("What does `migrate --fake` do?",
     ["It runs the SQL inside a transaction and rolls it back.",
      "It deletes the migration's rows from `django_migrations`.",
      "It records the migrations as applied without running their SQL.",
      "It prints the plan without changing anything."], "c"),
    ("Which command prints the SQL of one migration without applying it?",
     ["`showmigrations`", "`makemigrations --dry-run`", "`migrate --plan`", "`sqlmigrate`"], "d"),
    ("Should migration files be committed to version control?",
     ["No: every machine regenerates them with makemigrations.",
      "Yes, always: they are source code, and every machine must apply the same ones.",
      "Only the initial migration of each app.",
      "Only on the production branch."], "b"),
    ("Two branches each added a `0003` migration to the same app. After merging the branches, `migrate` "
     "reports conflicting leaf nodes. What is the usual fix?",
     ["Delete one of the two `0003` files.",
      "Rename one file to `0004_...`.",
      "Run `makemigrations --merge`, which writes a migration depending on both leaves.",
      "Run `migrate --fake` on one of them."], "c"),
    ("What does the `django_migrations` table hold?",
     ["One row per migration applied to this database (app, name, when).",
      "A copy of every migration file's source code.",
      "The SQL that each migration ran.",
      "The migrations that are still waiting to be applied."], "a"),
    ("A migration's `RunPython` has no reverse function. What happens on `migrate library <earlier>`?",
     ["Django skips that operation silently.",
      "Django stops with an error: the operation cannot be reversed.",
      "Django runs the forwards function again.",
      "Django deletes the rows the function touched."], "b"),
    ("When is `migrate --fake-initial` the right tool?",
     ["When an initial migration failed halfway and must run again.",
      "To create a migration file for tables that already exist.",
      "To skip data migrations in tests.",
      "When adopting a database whose tables already exist: initial migrations are marked applied if their "
      "tables are there."], "d"),
    ("What does the `replaces` attribute of a squashed migration list?",
     ["The migrations it stands in for; Django uses it instead of them where none of them is applied yet.",
      "The tables it drops.",
      "The apps it must run after.",
      "The fields it renames."], "a"),
    ("You add `pages = models.IntegerField()` to a model whose table already has rows and run "
     "`makemigrations --noinput`. It refuses. Which change lets it write the migration?",
     ["Run `migrate` first.",
      "Give the field a `default=` (or allow `null=True`).",
      "Delete the existing rows with `--fake`.",
      "Add the column by hand in the database."], "b"),
]

assert len(QUIZ) == len(QUIZ_CHOICES), "judges.QUIZ_CHOICES and the quiz disagree"

md("part5", """
## Part 5: quiz

For each question, set the variable to the letter of the best answer, as a
string: `Q01 = "a"`. The check right after tells you whether the answer is
well formed; whether it is right is marked when your notebook is graded.
""")

answer_key = {}
for number, (question, options, right) in enumerate(QUIZ, 1):
    qid = f"q{number:02d}"
    letters = QUIZ_CHOICES[qid]
    assert len(options) == len(letters) and right in letters
    answer_key[qid] = right
    listing = "\n".join(f"* **{letter}.** {text}" for letter, text in zip(letters, options))
    md(qid, f"**{qid.upper()}.** {question}\n\n{listing}")
    answer(qid, f'''
# {qid.upper()} = "?"   <- one of the letters a, b, c, d
### BEGIN SOLUTION
{qid.upper()} = "{right}"
### END SOLUTION
''')
    test(f"quiz_{qid}", f'check("quiz.{qid}", {qid.upper()})')

md("end", """
## Done

Save the notebook and submit it. Before you do, *Kernel → Restart and run all*
is a good way to see exactly what the grader will see.
""")


def build() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for cell in cells:
        cell["id"] = cell.metadata["nbgrader"]["grade_id"].replace("_", "-")
    nb.cells = cells
    nbformat.validate(nb)
    return nb


def main(out: Path = OUT, key: Path = KEY) -> None:
    nb = build()
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out)
    key.write_text(json.dumps(answer_key, indent=2, sort_keys=True) + "\n")
    total = sum(c.metadata["nbgrader"].get("points", 0) for c in nb.cells)
    print(f"wrote {out.name} ({len(nb.cells)} cells, {total} points) and {key.name}")


if __name__ == "__main__":
    main()

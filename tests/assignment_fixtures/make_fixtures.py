"""Write the hand-made submissions that tests/test_assignment.py grades.

    .venv/bin/python tests/assignment_fixtures/make_fixtures.py

Each submission is the student notebook (release/deep_dive/deep_dive.ipynb)
with some answer cells filled in by hand, as a learner would:

* ``partial.ipynb``: a realistic half-right submission; the expected score of
  every graded cell is written in tests/test_assignment.py;
* ``alternative.ipynb``: every answer right but written differently from the
  instructor's solution (Kahn's algorithm gives another plan order, a pairwise
  optimizer instead of a net-effect one, ``apps.get_model`` with keywords, a
  ``defaultdict`` and an ``OrderedDict`` where dicts are asked for, tuples
  where lists are, other quiz formatting).
"""

from __future__ import annotations

from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
RELEASE = HERE.parent.parent / "release" / "deep_dive" / "deep_dive.ipynb"

PARTIAL = {
    # Assumes every applied migration is in the plan: crashes on the edge cases only.
    "answer_pending": """
def pending_migrations(plan, applied):
    rest = list(plan)
    for migration in applied:
        rest.remove(migration)
    return rest
""",
    "answer_deps": 'LOANS_0001_DEPENDENCIES = [("library", "0001_initial")]',
    "answer_get_model": """
def get_book_model(apps, schema_editor):
    return apps.get_model("library", "Book")
""",
    # No reverse at all: the migration cannot be unapplied.
    "answer_reverse": """
def set_default_loan_days(apps, schema_editor):
    Loan = apps.get_model("loans", "Loan")
    Loan.objects.filter(days__isnull=True).update(days=14)


FILL_OPERATION = migrations.RunPython(set_default_loan_days)
""",
    "answer_merge": 'MERGE_DEPENDENCIES = [("library", "0003_book_subtitle"), ("library", "0003_book_isbn")]',
    # A depth-first order that never notices a cycle.
    "answer_order": """
def order_migrations(dependencies):
    order, seen = [], set()

    def visit(node):
        if node in seen:
            return
        seen.add(node)
        for parent in dependencies[node]:
            visit(parent)
        order.append(node)

    for node in dependencies:
        visit(node)
    return order
""",
    # Leaves right; conflicts forgets to keep only the apps with several leaves.
    "answer_leaves": """
def find_leaves(dependencies):
    parents_in_app = {p for node, ps in dependencies.items() for p in ps if p[0] == node[0]}
    out = {}
    for app, name in dependencies:
        out.setdefault(app, [])
        if (app, name) not in parents_in_app:
            out[app].append(name)
    return out


def find_conflicts(dependencies):
    return find_leaves(dependencies)
""",
    "answer_replay": """
def replay_columns(columns, operations):
    result = dict(columns)
    for operation in operations:
        kind = operation[0]
        if kind == "add" or kind == "alter":
            result[operation[1]] = operation[2]
        elif kind == "remove":
            result.pop(operation[1])
        else:
            result[operation[2]] = result.pop(operation[1])
    return result
""",
    # Squashing nothing: the schema is right and renames survive, but it is never shorter.
    "answer_squash": """
def squash(operations):
    return list(operations)
""",
    # Forwards right, but the reverse does nothing: slugs stay filled after migrating back.
    "answer_datamig": '''
FILL_SLUGS_MIGRATION = """
from django.db import migrations
from django.utils.text import slugify


def forwards(apps, schema_editor):
    Book = apps.get_model("library", "Book")
    for book in Book.objects.all():
        book.slug = slugify(book.title)
        book.save()


class Migration(migrations.Migration):
    dependencies = [("library", "0002_book_slug")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
"""
''',
    "answer_q01": 'Q01 = "b"',
    "answer_q02": 'Q02 = "c"',  # wrong
    "answer_q03": 'Q03 = "d"',
    "answer_q04": 'Q04 = "z"',  # not a choice
    # answer_q05 left as released: raise NotImplementedError()
    "answer_q06": 'Q06 = "b"',
    "answer_q07": 'Q07 = "c"',
    "answer_q08": 'Q08 = "d"',
    "answer_q09": 'Q09 = "b"',
    "answer_q10": 'Q10 = "c"',
    "answer_q11": 'Q11 = "d"',  # wrong
    "answer_q12": 'Q12 = "b"',
    "answer_q13": 'Q13 = "d"',
    "answer_q14": 'Q14 = "a"',
    "answer_q15": 'Q15 = "b"',
}

ALTERNATIVE = {
    "answer_pending": """
def pending_migrations(plan, applied):
    applied = list(applied)
    result = []
    for app_label, name in plan:
        if (app_label, name) not in applied:
            result.append((app_label, name))
    return result
""",
    "answer_deps": 'LOANS_0001_DEPENDENCIES = [["library", "0002_book_pages"]]',
    "answer_get_model": """
def get_book_model(apps, schema_editor):
    return apps.get_model(app_label="library", model_name="Book")   # keywords: Django accepts them
""",
    "answer_reverse": """
def set_default_loan_days(apps, schema_editor):
    Loan = apps.get_model("loans", "Loan")
    Loan.objects.filter(days__isnull=True).update(days=14)


noop = migrations.RunPython.noop
FILL_OPERATION = migrations.RunPython(code=set_default_loan_days, reverse_code=noop)
""",
    "answer_merge": 'MERGE_DEPENDENCIES = (("library", "0003_book_subtitle"), ("library", "0003_book_isbn"))',
    # Kahn's algorithm, newest-first tie break: a different valid order than depth-first.
    "answer_order": """
def order_migrations(dependencies):
    waiting = {node: len(set(parents)) for node, parents in dependencies.items()}
    children = {node: [] for node in dependencies}
    for node, parents in dependencies.items():
        for parent in set(parents):
            children[parent].append(node)
    ready = sorted((n for n, count in waiting.items() if count == 0), reverse=True)
    order = []
    while ready:
        node = ready.pop(0)
        order.append(node)
        for child in children[node]:
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
        ready.sort(reverse=True)
    if len(order) == len(dependencies):
        return order
    # Walk back along unfinished parents until a migration repeats: that loop is the cycle.
    stuck = {n for n, count in waiting.items() if count > 0}
    node, walk = min(stuck), []
    while node not in walk:
        walk.append(node)
        node = min(p for p in dependencies[node] if p in stuck)
    loop = walk[walk.index(node):]
    raise ValueError("these migrations depend on each other in a circle: "
                     + ", ".join(name for _app, name in loop))
""",
    "answer_leaves": """
def find_leaves(dependencies):
    from collections import defaultdict

    result = defaultdict(list)   # any mapping will do where a dict is asked for
    for node in dependencies:
        app = node[0]
        children_here = [n for n, ps in dependencies.items() if node in ps and n[0] == app]
        result[app]
        if not children_here:
            result[app].append(node[1])
    return result


def find_conflicts(dependencies):
    conflicts = {}
    for app, names in find_leaves(dependencies).items():
        if len(names) >= 2:
            conflicts[app] = names
    return conflicts
""",
    "answer_replay": """
def replay_columns(columns, operations):
    cols = list(columns.items())
    for op in operations:
        if op[0] == "add":
            cols.append((op[1], op[2]))
        elif op[0] == "remove":
            cols = [(n, t) for n, t in cols if n != op[1]]
        elif op[0] == "rename":
            cols = [(op[2] if n == op[1] else n, t) for n, t in cols]
        elif op[0] == "alter":
            cols = [(n, op[2] if n == op[1] else t) for n, t in cols]
    from collections import OrderedDict

    return OrderedDict(cols)
""",
    # A pairwise optimizer: fold a later operation into an earlier one when nothing in between
    # touches the same model and field names, until no pair folds any more.
    "answer_squash": '''
def _names(op):
    if isinstance(op, migrations.RenameField):
        return {op.old_name, op.new_name}
    if isinstance(op, (migrations.CreateModel, migrations.DeleteModel)):
        return None  # the whole model
    return {op.name}


def _model(op):
    return op.name_lower if isinstance(op, (migrations.CreateModel, migrations.DeleteModel)) else op.model_name_lower


def _fold(a, b):
    """What a then b become as one list, or None when they do not fold."""
    M = migrations
    if _model(a) != _model(b):
        return None
    if isinstance(a, M.CreateModel):
        fields = list(a.fields)
        if isinstance(b, M.DeleteModel):
            return []
        if isinstance(b, M.AddField):
            return [M.CreateModel(a.name, fields + [(b.name, b.field)])]
        if isinstance(b, M.AlterField):
            return [M.CreateModel(a.name, [(n, b.field if n == b.name else f) for n, f in fields])]
        if isinstance(b, M.RemoveField):
            return [M.CreateModel(a.name, [(n, f) for n, f in fields if n != b.name])]
        if isinstance(b, M.RenameField):
            return [M.CreateModel(a.name, [(b.new_name if n == b.old_name else n, f) for n, f in fields])]
        return None
    if isinstance(a, M.AddField) and not isinstance(b, (M.CreateModel, M.DeleteModel)):
        if isinstance(b, M.AlterField) and b.name == a.name:
            return [M.AddField(a.model_name, a.name, b.field)]
        if isinstance(b, M.RemoveField) and b.name == a.name:
            return []
        if isinstance(b, M.RenameField) and b.old_name == a.name:
            return [M.AddField(a.model_name, b.new_name, a.field)]
    if isinstance(a, M.AlterField):
        if isinstance(b, M.AlterField) and b.name == a.name:
            return [b]
        if isinstance(b, M.RemoveField) and b.name == a.name:
            return [b]
        if isinstance(b, M.RenameField) and b.old_name == a.name:  # move the alter after the rename
            return [b, M.AlterField(a.model_name, b.new_name, a.field)]
    if isinstance(a, M.RenameField) and isinstance(b, M.RenameField) and b.old_name == a.new_name:
        return [] if b.new_name == a.old_name else [M.RenameField(a.model_name, a.old_name, b.new_name)]
    return None


def _blocks(between, a, b):
    if _model(between) != _model(a):
        return False
    mine, theirs = (_names(a) or set()) | (_names(b) or set()), _names(between)
    return theirs is None or _names(a) is None or bool(mine & theirs)


def squash(operations):
    ops = list(operations)
    changed = True
    while changed:
        changed = False
        for i in range(len(ops)):
            for j in range(i + 1, len(ops)):
                folded = _fold(ops[i], ops[j])
                if folded is not None:
                    ops = ops[:i] + folded + ops[i + 1:j] + ops[j + 1:]
                    changed = True
                    break
                if _blocks(ops[j], ops[i], ops[i]):
                    break
            if changed:
                break
    return ops
''',
    "answer_datamig": '''
FILL_SLUGS_MIGRATION = """
from django.db import migrations
from django.utils.text import slugify


def fill(apps, schema_editor):
    Book = apps.get_model("library.Book")
    books = list(Book.objects.all())
    for book in books:
        book.slug = slugify(book.title)
    Book.objects.bulk_update(books, ["slug"])


def empty(apps, schema_editor):
    apps.get_model("library", "Book").objects.all().update(slug="")


class Migration(migrations.Migration):
    dependencies = [
        ("library", "0002_book_slug"),
    ]

    operations = [
        migrations.RunPython(code=fill, reverse_code=empty),
    ]
"""
''',
}
# Quiz: right letters, written with different spacing and case.
ALTERNATIVE.update(
    {f"answer_q{n:02d}": f"Q{n:02d} = ' {letter.upper()} '" for n, letter in enumerate("badcabcdbcabdab", 1)}
)


def build(answers: dict[str, str], out: Path) -> None:
    nb = nbformat.read(RELEASE, as_version=4)
    used = set()
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in answers:
            cell.source = answers[gid].strip("\n")
            used.add(gid)
    missing = set(answers) - used
    assert not missing, f"no such answer cells: {missing}"
    nbformat.write(nb, out)


if __name__ == "__main__":
    build(PARTIAL, HERE / "partial.ipynb")
    build(ALTERNATIVE, HERE / "alternative.ipynb")
    print("wrote partial.ipynb and alternative.ipynb")

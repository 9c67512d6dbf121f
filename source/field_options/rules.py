"""The field_options assignment's own rules: what its test cells name with ``rule="..."``.

Only the grader reads this file (it is never released, and no kernel can
import it). Real Django is the oracle for both rules, asked outside the
student's kernel with inputs taken from the instructor's notebook:

* :func:`sql_like_sqlmigrate`: a field changes from one definition to
  another; Django's own SQLite schema editor, in collect-SQL mode (what
  ``sqlmigrate`` does), says whether the ``AlterField`` runs any SQL or is
  ``-- (no-op)``;
* :func:`operation_like_makemigrations`: a model's class body changes from
  one text to another; Django's ``MigrationAutodetector`` (the heart of
  ``makemigrations``) says which operations the new migration holds.

A field definition is a ``(class name, keyword arguments)`` pair of plain
JSON, such as ``("CharField", {"max_length": 100, "db_default": "draft"})``,
so nothing of it is lost on the way from the notebook to this file.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import functools
import json

from miglab.evidence import BadAnswer, Call

APP = "library"


def _django():
    from miglab.evidence.django_setup import ensure_django

    ensure_django()


def _outside_event_loop(fn, *args):
    """Django's database layer refuses to run inside a running asyncio loop: use a thread there."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return fn(*args)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args).result()


# ----------------------------------------------------------------- field definitions


def _definition(data, what: str) -> tuple[str, dict]:
    """A ``[class name, {keyword: value}]`` pair from the notebook (trusted, but checked for its form)."""
    if not (isinstance(data, list) and len(data) == 2 and isinstance(data[0], str) and isinstance(data[1], dict)):
        raise ValueError(f"{what} should be a (field class name, keyword arguments) pair")
    return data[0], dict(data[1])


def build_field(cls_name: str, kwargs: dict):
    """A Django model field from its class name (a plain field of ``django.db.models``) and keyword arguments."""
    _django()
    from django.db import models
    from django.db.models.fields.related import RelatedField

    cls = getattr(models, cls_name, None)
    if not (isinstance(cls, type) and issubclass(cls, models.Field)) or issubclass(cls, RelatedField):
        raise ValueError(f"{cls_name!r} is not a plain Django model field")
    return cls(**copy.deepcopy(kwargs))


def _sqlmigrate_alter(name: str, before: tuple, after: tuple) -> list[str]:
    from django.db import migrations, models
    from django.db.migrations.migration import Migration
    from django.db.migrations.state import ProjectState
    from django.db.utils import ConnectionHandler

    # A private in-memory SQLite database, never the process's own connections.
    db = ConnectionHandler({"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}})["default"]
    try:
        initial = Migration("0001_initial", APP)
        initial.operations = [
            migrations.CreateModel(
                "Book", [("id", models.BigAutoField(primary_key=True)), (name, build_field(*before))]
            )
        ]
        with db.schema_editor(atomic=False) as editor:
            state = initial.apply(ProjectState(), editor)
        change = Migration("0002_alter_book", APP)
        change.operations = [migrations.AlterField("book", name, build_field(*after))]
        with db.schema_editor(collect_sql=True, atomic=False) as editor:
            change.apply(state, editor, collect_sql=True)
        return list(editor.collected_sql)
    finally:
        db.close()


@functools.lru_cache(maxsize=4096)
def _sql_cached(key: str) -> tuple[str, ...]:
    name, before, after = json.loads(key)
    return tuple(_outside_event_loop(_sqlmigrate_alter, name, tuple(before), tuple(after)))


def sqlmigrate_alter(name: str, before: tuple, after: tuple) -> list[str]:
    """What ``sqlmigrate`` prints, on SQLite, for ``AlterField("book", name, after)`` when the field was ``before``.

    Lines starting with ``--`` are comments (``-- (no-op)`` when Django runs nothing).
    """
    before, after = _definition(list(before), "before"), _definition(list(after), "after")
    key = json.dumps([name, list(before), list(after)], sort_keys=True)
    return list(_sql_cached(key))


def runs_sql(statements: list[str]) -> bool:
    """Does a migration's SQL do anything (anything but comments)?"""
    return any(not s.lstrip().startswith("--") for s in statements)


def sql_like_sqlmigrate(call: Call):
    """needs_sql(name, before, after): True exactly when sqlmigrate prints SQL for the AlterField on SQLite."""
    if not isinstance(call.args[0], str):
        raise ValueError("the first input should be the field's name")
    before = _definition(call.args[1], "the field before")
    after = _definition(call.args[2], "the field after")
    answer = call.output
    if not isinstance(answer, bool):
        raise BadAnswer("needs_sql should return True or False")
    sql = sqlmigrate_alter(call.args[0], before, after)
    needed = runs_sql(sql)
    if answer == needed:
        return True, "sqlmigrate agrees" + (" (it prints SQL)" if needed else " (it prints -- (no-op))")
    if needed:
        first = next(s for s in sql if not s.lstrip().startswith("--"))
        return False, f"sqlmigrate prints SQL for this change: {first[:120]}{'…' if len(first) > 120 else ''}"
    return False, "sqlmigrate prints -- (no-op) for this change: the database is left alone"


# ------------------------------------------------------------------ makemigrations


def model_state(body: str):
    """The ``ModelState`` of ``class Book(models.Model)`` with ``body`` as its class body (in app ``library``)."""
    _django()
    from django.apps.registry import Apps
    from django.core import validators
    from django.db import models
    from django.db.migrations.state import ModelState
    from django.db.models.base import ModelBase

    namespace: dict = {}
    exec(compile(body, "<Book>", "exec"), {"models": models, "validators": validators}, namespace)
    meta = namespace.pop("Meta", None)
    options = {k: v for k, v in vars(meta).items() if not k.startswith("__")} if meta is not None else {}
    Meta = type("Meta", (), {**options, "app_label": APP, "apps": Apps()})
    model = ModelBase("Book", (models.Model,), {"__module__": f"{APP}.models", "Meta": Meta, **namespace})
    return ModelState.from_model(model)


@functools.lru_cache(maxsize=256)
def makemigrations_operations(before: str, after: str) -> tuple[str, ...]:
    """The operation class names makemigrations writes when Book's class body goes from ``before`` to ``after``."""
    _django()
    from django.db.migrations.autodetector import MigrationAutodetector
    from django.db.migrations.graph import MigrationGraph
    from django.db.migrations.questioner import MigrationQuestioner
    from django.db.migrations.state import ProjectState

    old, new = ProjectState(), ProjectState()
    old.add_model(model_state(before))
    new.add_model(model_state(after))
    graph = MigrationGraph()
    graph.add_node((APP, "0001_initial"), None)  # the app has migrations already: changes go in a 0002
    changes = MigrationAutodetector(old, new, MigrationQuestioner()).changes(graph=graph)
    return tuple(type(op).__name__ for migration in changes.get(APP, []) for op in migration.operations)


def _names(value, change: str) -> list[str]:
    """An answer for one change as a list of operation names (None or an empty list: no migration)."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise BadAnswer(f"the answer for change {change!r} should be an operation name (a str) or None")
    return [v.strip().removeprefix("migrations.") for v in items]


def operation_like_makemigrations(call: Call):
    """WHICH_OPERATION[change]: the operation(s) makemigrations writes for that change (None: no migration)."""
    change = str(call.params["change"])
    answers = call.output
    if not isinstance(answers, dict) or any(k.startswith("$") for k in answers):
        raise BadAnswer("WHICH_OPERATION should be a dict: change letter -> operation name")
    if change not in answers:
        return False, f"WHICH_OPERATION has no answer for change {change!r}"
    got = _names(answers[change], change)
    want = list(makemigrations_operations(str(call.params["before"]), str(call.params["after"])))
    if got == want:
        return True, f"change {change}: " + (" + ".join(want) if want else "no migration at all")
    if not want:
        return False, f"change {change}: makemigrations finds nothing to write for this change"
    return False, f"change {change}: not the operation makemigrations writes"

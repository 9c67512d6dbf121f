"""The deep_dive assignment's own rules: what its test cells name with ``rule="..."``.

Only the grader reads this file (it is never released, and no kernel can
import it). Each rule gets a :class:`miglab.evidence.Call`: the inputs as
this assignment's notebook gives them (``call.arg(0)``), the student's answer
as plain JSON (``call.output``, checked before it is trusted) and the call's
keyword arguments (``call.param(...)``); it answers ``(passed, reason)``.
Real Django is the oracle: its ``MigrationGraph`` for leaves and merges, its
operations replayed on a ``ProjectState`` for columns.
"""

from __future__ import annotations

from miglab.evidence import BadAnswer, Call
from miglab.evidence.checkers import graph_of, pairs


def _django_graph(deps):
    from django.db.migrations.graph import MigrationGraph

    graph = MigrationGraph()
    for node in deps:
        graph.add_node(node, None)
    for node, parents in deps.items():
        for parent in parents:
            graph.add_dependency(node, node, parent)
    return graph


def _leaves(deps) -> dict[str, list[str]]:
    graph = _django_graph(deps)
    return {app: sorted(name for _, name in graph.leaf_nodes(app)) for app in sorted({a for a, _ in deps})}


def _app_map(output) -> dict[str, list[str]]:
    if not isinstance(output, dict) or any(k.startswith("$") for k in output):
        raise BadAnswer("the answer should be a dict of app label -> list of migration names")
    out = {}
    for app, names in output.items():
        items = names.get("$set") if isinstance(names, dict) else names
        if not isinstance(items, list) or not all(isinstance(n, str) for n in items):
            raise BadAnswer(f"the value for {app!r} should be a list of migration names")
        out[app] = sorted(items)
    return out


def leaves_like_django(call: Call):
    """find_leaves: every app -> its leaf migrations, as Django's MigrationGraph.leaf_nodes(app) has them."""
    right = _app_map(call.output) == _leaves(graph_of(call.args[0]))
    return right, "the leaf nodes Django finds" if right else "not the leaf nodes of every app"


def conflicts_like_django(call: Call):
    """find_conflicts: only the apps with more than one leaf."""
    want = {app: names for app, names in _leaves(graph_of(call.args[0])).items() if len(names) > 1}
    right = _app_map(call.output) == want
    return right, "the conflicts Django would report" if right else "not the apps with more than one leaf"


def joins_both_leaves(call: Call):
    """A merge migration's dependencies: after adding it, the app has one leaf again, and it depends on no more."""
    deps = graph_of(call.params["graph"])
    app, merge = str(call.params["app"]), tuple(call.param("merge"))
    answer = pairs(call.output, "the dependencies")
    unknown = [f"{a}.{n}" for a, n in answer if (a, n) not in deps]
    if unknown:
        return False, f"{unknown[0]} is not a migration of this project"
    graph = _django_graph({**deps, merge: answer})
    leaves = graph.leaf_nodes(app)
    if leaves != [merge]:
        return False, "after the merge migration the app still has more than one leaf node"
    before = set(_django_graph(deps).leaf_nodes(app))
    if set(answer) != before:
        return False, "the merge migration should depend on exactly the leaf migrations it joins"
    return True, "the merge migration joins both branches"


def reverse_does_nothing(call: Call):
    """FILL_OPERATION: RunPython with the given forwards function and Django's do-nothing reverse."""
    op = call.output
    if not isinstance(op, dict) or op.get("$op") != "RunPython":
        return False, "FILL_OPERATION should be a migrations.RunPython(...)"
    kwargs = op.get("kwargs") if isinstance(op.get("kwargs"), dict) else {}
    code = (kwargs.get("code") or {}).get("$function", "") if isinstance(kwargs.get("code"), dict) else ""
    if not code.endswith("." + str(call.params.get("forwards"))):
        return False, f"keep {call.params.get('forwards')} as the forwards function"
    reverse = kwargs.get("reverse_code")
    if reverse is None:
        return False, "without a reverse function the migration cannot be unapplied"
    noop = "django.db.migrations.operations.special.RunPython.noop"
    if isinstance(reverse, dict) and reverse.get("$function") == noop:
        return True, "reversible, and undoing does nothing"
    return False, "nothing needs undoing here: use Django's ready-made do-nothing function"


# ------------------------------------------------------------- replaying columns

_KINDS = ("integer", "text", "boolean", "date", "string")


def _field(kind: str):
    from django.db import models

    return {
        "integer": models.IntegerField,
        "text": models.TextField,
        "boolean": lambda: models.BooleanField(default=False),
        "date": lambda: models.DateField(null=True),
        "string": lambda: models.CharField(max_length=100),
    }[kind]()


def _kind(field) -> str:
    from django.db import models

    for kind, cls in (
        ("integer", models.IntegerField),
        ("text", models.TextField),
        ("boolean", models.BooleanField),
        ("date", models.DateField),
        ("string", models.CharField),
    ):
        if type(field) is cls:
            return kind
    raise ValueError(f"unexpected field {field!r}")


def _django_replay(columns: dict[str, str], operations: list) -> dict[str, str]:
    """Replay the column operations with real Django operations on a ProjectState."""
    from django.db import migrations, models
    from django.db.migrations.state import ProjectState

    from miglab.evidence.django_setup import ensure_django

    ensure_django()
    state = ProjectState()
    fields = [("id", models.BigAutoField(primary_key=True))] + [(n, _field(k)) for n, k in columns.items()]
    migrations.CreateModel("Book", fields).state_forwards("library", state)
    for kind, *rest in operations:
        _column_operation(kind, rest).state_forwards("library", state)
    model = state.models["library", "book"]
    return {name: _kind(f) for name, f in model.fields.items() if name != "id"}


def _column_operation(kind: str, rest: list):
    """One (kind, ...) column step of the replay exercise as the Django operation it stands for."""
    from django.db import migrations

    if kind == "add":
        return migrations.AddField("book", rest[0], _field(rest[1]))
    if kind == "remove":
        return migrations.RemoveField("book", rest[0])
    if kind == "rename":
        return migrations.RenameField("book", rest[0], rest[1])
    if kind == "alter":
        return migrations.AlterField("book", rest[0], _field(rest[1]))
    raise KeyError(kind)


def replays_like_django(call: Call):
    """replay_columns: the final {name: type}, as replaying the operations with Django leaves the model."""
    got = call.output
    if not isinstance(got, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in got.items()):
        raise BadAnswer("the answer should be a dict of column name -> type")
    want = _django_replay(call.arg(0), call.arg(1))
    if got == want:
        return True, "the final columns"
    if set(got) == set(want):
        return False, "the right column names, but a wrong type"
    return False, "not the final set of columns"

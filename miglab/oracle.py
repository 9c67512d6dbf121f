"""Django as the oracle: the inputs of every graded check and the real Django
computations that judge an answer.

Everything here is trusted and pure: it never calls learner code. The in-kernel
checks (``miglab.checks``) take their inputs from here, and the judge
(``miglab.judges``) recomputes every verdict from the same inputs with Django's
own ``MigrationGraph``, ``ProjectState`` and ``MigrationOptimizer``.

Answers travel as plain JSON. Nodes are ``[app, name]`` pairs, a column
operation is a list such as ``["rename", "old", "new"]``, and a Django schema
operation is a dict (see :func:`op_from_json`).
"""

from __future__ import annotations

import copy
import functools
import random
import shutil
import sqlite3
import tempfile
import textwrap
from pathlib import Path

APP = "library"

# --------------------------------------------------------------------- Django


def ensure_django() -> None:
    """Configure a settings-free Django (no apps, no database) once per process."""
    from django.conf import settings

    if not settings.configured:
        settings.configure(INSTALLED_APPS=[], DATABASES={}, USE_TZ=True)
    import django
    from django.apps import apps

    if not apps.ready:
        django.setup()


# ---------------------------------------------------------------- 1. pending

PENDING_EXAMPLE = {
    "plan": [["library", "0001_initial"], ["library", "0002_book_pages"], ["loans", "0001_initial"],
             ["library", "0003_book_isbn"]],
    "applied": [["library", "0001_initial"]],
}

PENDING_HIDDEN = [
    {"plan": [["library", "0001_initial"], ["loans", "0001_initial"], ["library", "0002_author"],
              ["loans", "0002_loan_due"], ["library", "0003_author_born"]],
     "applied": [["loans", "0001_initial"], ["library", "0001_initial"], ["library", "0002_author"]]},
    {"plan": [["loans", "0001_initial"], ["loans", "0002_loan_due"]], "applied": []},
    {"plan": [["library", "0001_initial"], ["library", "0002_book_pages"]],
     "applied": [["library", "0002_book_pages"], ["library", "0001_initial"]]},
]

PENDING_EDGE = [
    # Applied rows for migrations that are not in the plan (another app, a deleted file).
    {"plan": [["library", "0002_book_pages"], ["library", "0003_book_isbn"]],
     "applied": [["library", "0001_initial"], ["shop", "0001_initial"], ["library", "0003_book_isbn"]]},
    # Same migration name in two apps: only the app+name pair counts.
    {"plan": [["library", "0001_initial"], ["loans", "0001_initial"], ["loans", "0002_loan_due"]],
     "applied": [["library", "0001_initial"]]},
    # Nothing planned.
    {"plan": [], "applied": [["library", "0001_initial"]]},
    # The applied list is given unsorted and as a set on the learner's side.
    {"plan": [["loans", "0001_initial"], ["library", "0001_initial"], ["library", "0002_book_pages"],
              ["loans", "0002_loan_due"]],
     "applied": [["loans", "0002_loan_due"], ["loans", "0001_initial"]], "as_set": True},
]


def pending_expected(case: dict) -> list[list[str]]:
    applied = {tuple(n) for n in case["applied"]}
    return [list(n) for n in case["plan"] if tuple(n) not in applied]


# ----------------------------------------------------- 1. small blanks, keys

LOANS_DEPENDENCIES_KEY = [["library", "0002_book_pages"]]
MERGE_LEAVES = [["library", "0003_book_isbn"], ["library", "0003_book_subtitle"]]
MERGE_GRAPH = {
    ("library", "0001_initial"): [],
    ("library", "0002_book_pages"): [("library", "0001_initial")],
    ("library", "0003_book_isbn"): [("library", "0002_book_pages")],
    ("library", "0003_book_subtitle"): [("library", "0002_book_pages")],
}
MERGE_NODE = ("library", "0004_merge")


def merge_verdict(deps: list[list[str]]) -> tuple[bool, str]:
    """Add the learner's merge migration to a real MigrationGraph and ask Django for the leaves."""
    from django.db.migrations.graph import MigrationGraph

    graph = MigrationGraph()
    for node in MERGE_GRAPH:
        graph.add_node(node, None)
    graph.add_node(MERGE_NODE, None)
    for node, parents in MERGE_GRAPH.items():
        for p in parents:
            graph.add_dependency(node, node, p)
    for d in deps:
        if tuple(d) not in MERGE_GRAPH:
            return False, f"{d[0]}.{d[1]} is not a migration of this project"
        graph.add_dependency(MERGE_NODE, MERGE_NODE, tuple(d))
    leaves = graph.leaf_nodes(APP)
    if leaves != [MERGE_NODE]:
        names = ", ".join(n for _, n in leaves)
        return False, f"after your merge migration the app still has these leaf nodes: {names}"
    if sorted(map(list, deps)) != sorted(MERGE_LEAVES):
        return False, "the merge migration should depend on exactly the two leaf migrations it joins"
    return True, "the merge migration joins both branches"


# ------------------------------------------------------------------ 2. graph

def _n(s: str) -> tuple[str, str]:
    app, name = s.split(".")
    return app, name


def _graph(spec: dict[str, list[str]]) -> dict[tuple, list[tuple]]:
    return {_n(k): [_n(v) for v in vs] for k, vs in spec.items()}


GRAPH_EXAMPLE = _graph({
    "library.0001_initial": [],
    "library.0002_book_pages": ["library.0001_initial"],
    "loans.0001_initial": ["library.0002_book_pages"],
    "loans.0002_loan_due": ["loans.0001_initial"],
})

GRAPH_HIDDEN = [
    _graph({  # a diamond inside one app, listed leaf first
        "library.0004_merge": ["library.0003_book_isbn", "library.0003_book_subtitle"],
        "library.0003_book_subtitle": ["library.0002_book_pages"],
        "library.0003_book_isbn": ["library.0002_book_pages"],
        "library.0002_book_pages": ["library.0001_initial"],
        "library.0001_initial": [],
    }),
    _graph({"library.0001_initial": []}),
    _graph({  # two roots, a long chain and a shortcut edge
        "shop.0003_price": ["shop.0002_item", "shop.0001_initial"],
        "shop.0001_initial": [],
        "shop.0002_item": ["shop.0001_initial"],
        "shop.0004_sale": ["shop.0003_price"],
        "stock.0001_initial": [],
    }),
]


def random_dag(seed: int, apps=("library", "loans", "shop"), per_app=(2, 6)) -> dict[tuple, list[tuple]]:
    """A reproducible migration graph: a chain per app plus cross-app edges, shuffled."""
    rng = random.Random(seed)
    order: list[tuple] = []
    chains = {}
    for app in apps:
        k = rng.randint(*per_app)
        chains[app] = [(app, f"{i + 1:04d}_{app[:3]}{seed}x{i}") for i in range(k)]
    # Interleave the chains into one global creation order (a topological order by construction).
    pointers = {app: 0 for app in apps}
    while any(pointers[a] < len(chains[a]) for a in apps):
        app = rng.choice([a for a in apps if pointers[a] < len(chains[a])])
        order.append(chains[app][pointers[app]])
        pointers[app] += 1
    deps: dict[tuple, list[tuple]] = {}
    for i, node in enumerate(order):
        app, _ = node
        parents = []
        idx = chains[app].index(node)
        if idx:
            parents.append(chains[app][idx - 1])
        earlier_other = [n for n in order[:i] if n[0] != app]
        for _ in range(rng.randint(0, 2)):
            if earlier_other:
                p = rng.choice(earlier_other)
                if p not in parents:
                    parents.append(p)
        deps[node] = parents
    keys = list(deps)
    rng.shuffle(keys)
    return {k: deps[k] for k in keys}


GRAPH_CROSS = [random_dag(seed) for seed in (11, 23, 37, 41, 59, 73)] + [
    _graph({  # a dependency on another app's first migration from a late migration
        "loans.0003_fine": ["loans.0002_due", "library.0001_initial"],
        "loans.0002_due": ["loans.0001_initial"],
        "loans.0001_initial": ["library.0003_isbn"],
        "library.0003_isbn": ["library.0002_pages"],
        "library.0002_pages": ["library.0001_initial"],
        "library.0001_initial": [],
    }),
]

CYCLE_EXAMPLE = _graph({
    "library.0001_initial": [],
    "library.0002_book_pages": ["library.0001_initial", "loans.0002_loan_due"],
    "loans.0001_initial": ["library.0002_book_pages"],
    "loans.0002_loan_due": ["loans.0001_initial"],
})

CYCLE_HIDDEN = [
    _graph({  # a cycle inside one app, away from the root
        "shop.0001_initial": [],
        "shop.0002_item": ["shop.0001_initial", "shop.0004_sale"],
        "shop.0003_price": ["shop.0002_item"],
        "shop.0004_sale": ["shop.0003_price"],
        "shop.0005_refund": ["shop.0004_sale"],
        "stock.0001_initial": [],
    }),
    _graph({"library.0001_initial": ["library.0001_initial"], "loans.0001_initial": []}),  # depends on itself
    _graph({  # three apps in a ring, plus innocent bystanders
        "alpha.0001_initial": ["gamma.0002_ring"],
        "beta.0001_initial": [],
        "beta.0002_ring": ["beta.0001_initial", "alpha.0001_initial"],
        "gamma.0001_initial": [],
        "gamma.0002_ring": ["gamma.0001_initial", "beta.0002_ring"],
        "delta.0001_initial": ["beta.0001_initial"],
    }),
]


def order_verdict(deps: dict[tuple, list[tuple]], order: list[list[str]]) -> tuple[bool, str]:
    """Is ``order`` a valid plan: every migration exactly once, each after all it depends on?"""
    nodes = set(deps)
    seen = [tuple(n) for n in order]
    if len(seen) != len(set(seen)):
        return False, "a migration appears more than once in your order"
    if set(seen) != nodes:
        missing = len(nodes - set(seen))
        extra = len(set(seen) - nodes)
        return False, f"your order must list every migration exactly once ({missing} missing, {extra} unknown)"
    pos = {n: i for i, n in enumerate(seen)}
    for node, parents in deps.items():
        for p in parents:
            if pos[p] > pos[node]:
                return False, f"{node[0]}.{node[1]} comes before {p[0]}.{p[1]}, which it depends on"
    return True, "every migration comes after all it depends on"


def django_graph(deps: dict[tuple, list[tuple]]):
    from django.db.migrations.graph import MigrationGraph

    graph = MigrationGraph()
    for node in deps:
        graph.add_node(node, None)
    for node, parents in deps.items():
        for p in parents:
            graph.add_dependency(node, node, p)
    return graph


def cycle_members(deps: dict[tuple, list[tuple]]) -> set[tuple]:
    """Every migration that lies on some cycle (strongly connected components, self-loops)."""
    import networkx as nx

    g = nx.DiGraph()
    g.add_nodes_from(deps)
    g.add_edges_from((p, n) for n, ps in deps.items() for p in ps)
    members: set[tuple] = set()
    for comp in nx.strongly_connected_components(g):
        if len(comp) > 1 or any(g.has_edge(n, n) for n in comp):
            members |= set(comp)
    return members


def django_detects_cycle(deps) -> bool:
    from django.db.migrations.exceptions import CircularDependencyError

    try:
        django_graph(deps).ensure_not_cyclic()
    except CircularDependencyError:
        return True
    return False


def cycle_verdict(deps, answer: dict) -> tuple[bool, str]:
    if not answer.get("raised"):
        return False, "no error was raised for a graph with a cycle"
    if answer.get("type") != "ValueError":
        return False, f"the error should be a ValueError, not {answer.get('type')}"
    message = answer.get("message", "")
    on_cycle = cycle_members(deps)
    missing = [f"{a}.{n}" for a, n in sorted(on_cycle) if n not in message]
    if missing:
        return False, f"the error message does not name every migration on the cycle ({len(missing)} missing)"
    cycle_names = {n for _, n in on_cycle}
    off_cycle = [f"{a}.{n}" for a, n in sorted(set(deps) - on_cycle) if n in message and n not in cycle_names]
    if off_cycle:
        return False, "the error message names migrations that are not on the cycle"
    return True, "the cycle is reported by name"


LEAVES_EXAMPLE = _graph({
    "library.0001_initial": [],
    "library.0002_book_pages": ["library.0001_initial"],
    "library.0002_book_isbn": ["library.0001_initial"],
    "loans.0001_initial": ["library.0002_book_pages"],
})

LEAVES_HIDDEN = [
    GRAPH_EXAMPLE,
    _graph({  # a merged fork is one leaf again
        "shop.0001_initial": [], "shop.0002_a": ["shop.0001_initial"], "shop.0002_b": ["shop.0001_initial"],
        "shop.0003_merge": ["shop.0002_a", "shop.0002_b"],
        "stock.0001_initial": ["shop.0002_a"], "stock.0002_x": ["stock.0001_initial"],
        "stock.0002_y": ["stock.0001_initial"], "stock.0002_z": ["stock.0001_initial"],
    }),
    _graph({  # a child in another app does not stop a node being its own app's leaf
        "library.0001_initial": [], "loans.0001_initial": ["library.0001_initial"],
        "loans.0002_a": ["loans.0001_initial"], "loans.0002_b": ["loans.0001_initial"],
    }),
] + [random_dag(seed, per_app=(1, 4)) for seed in (5, 8)]


def django_leaves(deps) -> dict[str, list[str]]:
    graph = django_graph(deps)
    apps = sorted({a for a, _ in deps})
    return {app: sorted(n for _, n in graph.leaf_nodes(app)) for app in apps}


def django_conflicts(deps) -> dict[str, list[str]]:
    return {app: names for app, names in django_leaves(deps).items() if len(names) > 1}


# ------------------------------------------------------- 3a. column replay

COLUMN_TYPES = ("integer", "text", "boolean", "date", "string")


def _column_field(kind: str):
    from django.db import models

    return {
        "integer": lambda: models.IntegerField(),
        "text": lambda: models.TextField(),
        "boolean": lambda: models.BooleanField(default=False),
        "date": lambda: models.DateField(null=True),
        "string": lambda: models.CharField(max_length=100),
    }[kind]()


def _column_kind(field) -> str:
    from django.db import models

    for kind, cls in (("integer", models.IntegerField), ("text", models.TextField),
                      ("boolean", models.BooleanField), ("date", models.DateField),
                      ("string", models.CharField)):
        if type(field) is cls:
            return kind
    raise ValueError(f"unexpected field {field!r}")


def django_replay_columns(columns: dict[str, str], ops: list[list[str]]) -> dict[str, str]:
    """Replay simple column operations with real Django operations on a ProjectState."""
    ensure_django()
    from django.db import migrations, models
    from django.db.migrations.state import ProjectState

    state = ProjectState()
    fields = [("id", models.BigAutoField(primary_key=True))]
    fields += [(name, _column_field(kind)) for name, kind in columns.items()]
    migrations.CreateModel("Book", fields).state_forwards(APP, state)
    for op in ops:
        if op[0] == "add":
            django_op = migrations.AddField("book", op[1], _column_field(op[2]))
        elif op[0] == "remove":
            django_op = migrations.RemoveField("book", op[1])
        elif op[0] == "rename":
            django_op = migrations.RenameField("book", op[1], op[2])
        elif op[0] == "alter":
            django_op = migrations.AlterField("book", op[1], _column_field(op[2]))
        else:
            raise ValueError(f"unknown column operation {op[0]!r}")
        django_op.state_forwards(APP, state)
    model = state.models[APP, "book"]
    return {name: _column_kind(f) for name, f in model.fields.items() if name != "id"}


REPLAY_EXAMPLE = {
    "columns": {"title": "string", "pages": "integer"},
    "ops": [["add", "isbn", "string"], ["rename", "pages", "page_count"], ["remove", "isbn"],
            ["alter", "title", "text"]],
}

REPLAY_HIDDEN = [
    {"columns": {}, "ops": [["add", "a", "integer"], ["rename", "a", "b"], ["alter", "b", "text"]]},
    {"columns": {"title": "string"}, "ops": [["remove", "title"], ["add", "title", "boolean"]]},
    {"columns": {"x": "integer", "y": "text"},
     "ops": [["rename", "x", "tmp"], ["rename", "y", "x"], ["rename", "tmp", "y"]]},
    {"columns": {"title": "string", "pages": "integer"}, "ops": []},
    {"columns": {"a": "date"}, "ops": [["alter", "a", "integer"], ["alter", "a", "string"], ["remove", "a"]]},
]


def _column_sequences_strategy():
    _quiet_hypothesis_storage()
    from hypothesis import strategies as st

    @st.composite
    def seq(draw):
        start_n = draw(st.integers(0, 3))
        cols = {f"c{i}": draw(st.sampled_from(COLUMN_TYPES)) for i in range(start_n)}
        current = dict(cols)
        ops = []
        used = set(current)
        fresh = [start_n]

        def new_name():
            # Sometimes reuse a name that was removed or renamed away, to exercise churn.
            old = sorted(used - set(current))
            if old and draw(st.booleans()):
                return draw(st.sampled_from(old))
            name = f"c{fresh[0]}"
            fresh[0] += 1
            used.add(name)
            return name

        for _ in range(draw(st.integers(0, 10))):
            kind = draw(st.sampled_from(("add", "remove", "rename", "alter")))
            if kind == "add" or not current:
                name = new_name()
                t = draw(st.sampled_from(COLUMN_TYPES))
                ops.append(["add", name, t])
                current[name] = t
                continue
            name = draw(st.sampled_from(sorted(current)))
            if kind == "remove":
                ops.append(["remove", name])
                del current[name]
            elif kind == "rename":
                new = new_name()
                ops.append(["rename", name, new])
                current[new] = current.pop(name)
            else:
                t = draw(st.sampled_from(COLUMN_TYPES))
                ops.append(["alter", name, t])
                current[name] = t
        return {"columns": cols, "ops": ops}

    return seq()


def _quiet_hypothesis_storage() -> None:
    """Keep Hypothesis from creating ``.hypothesis/`` in the working folder (a submission, say)."""
    import os

    if "HYPOTHESIS_STORAGE_DIRECTORY" not in os.environ:
        os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] = os.path.join(tempfile.gettempdir(), "miglab-hypothesis")


def _collect(strategy, n: int) -> list:
    """Draw ``n`` examples from a Hypothesis strategy, the same ones in every process.

    ``derandomize=True`` seeds Hypothesis from this function's code, and without a
    database or shrinking nothing else feeds the choice: grading is reproducible.
    """
    _quiet_hypothesis_storage()
    from hypothesis import HealthCheck, Phase, given, settings

    out: list = []

    @settings(derandomize=True, database=None, max_examples=n, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), print_blob=False)
    @given(strategy)
    def draw(example):
        out.append(copy.deepcopy(example))

    draw()
    return out


@functools.lru_cache(maxsize=None)
def _replay_random_cached() -> str:
    import json

    return json.dumps(_collect(_column_sequences_strategy(), 40))


def replay_random_cases() -> list[dict]:
    import json

    return json.loads(_replay_random_cached())


# ---------------------------------------------------- 3b. Django operations

FIELD_CLASSES = ("BigAutoField", "CharField", "IntegerField", "TextField", "BooleanField", "DateField")
FIELD_KWARGS = {"max_length": int, "null": bool, "default": (bool, int, str), "primary_key": bool,
                "blank": bool}
OP_KEYS = {
    "CreateModel": ("name", "fields"),
    "DeleteModel": ("name",),
    "AddField": ("model_name", "name", "field"),
    "RemoveField": ("model_name", "name"),
    "AlterField": ("model_name", "name", "field"),
    "RenameField": ("model_name", "old_name", "new_name"),
}

BOOK_FIELDS = [["id", ["BigAutoField", {"primary_key": True}]], ["title", ["CharField", {"max_length": 200}]],
               ["pages", ["IntegerField", {}]]]
PREEXISTING = [{"op": "CreateModel", "name": "Book", "fields": BOOK_FIELDS}]


def field_from_json(spec):
    from django.db import models

    cls_name, kwargs = spec
    return getattr(models, cls_name)(**kwargs)


def op_from_json(spec: dict):
    """Build a Django operation from its JSON form (the inputs are trusted, validated data)."""
    from django.db import migrations

    kind = spec["op"]
    if kind == "CreateModel":
        return migrations.CreateModel(spec["name"], [(n, field_from_json(f)) for n, f in spec["fields"]])
    if kind == "DeleteModel":
        return migrations.DeleteModel(spec["name"])
    if kind in ("AddField", "AlterField"):
        return getattr(migrations, kind)(spec["model_name"], spec["name"], field_from_json(spec["field"]))
    if kind == "RemoveField":
        return migrations.RemoveField(spec["model_name"], spec["name"])
    if kind == "RenameField":
        return migrations.RenameField(spec["model_name"], spec["old_name"], spec["new_name"])
    raise ValueError(f"unknown operation {kind!r}")


def ops_from_json(specs: list[dict]) -> list:
    ensure_django()
    return [op_from_json(s) for s in specs]


def project_state(specs: list[dict]):
    """The ProjectState after the pre-existing Book model and then ``specs``."""
    ensure_django()
    from django.db.migrations.state import ProjectState

    state = ProjectState()
    for op in ops_from_json(PREEXISTING) + ops_from_json(specs):
        op.state_forwards(APP, state)
    return state


def django_optimized(specs: list[dict]) -> list:
    from django.db.migrations.optimizer import MigrationOptimizer

    return MigrationOptimizer().optimize(ops_from_json(specs), APP)


def lineage(specs: list[dict]) -> dict[str, dict[str, str]]:
    """Where each final column's data comes from: an existing column of Book, or new.

    Raises ValueError when an operation does not apply (unknown model or field,
    a name that is already taken). Two sequences that end in the same schema can
    still differ here: a rename keeps the column's rows, remove + add loses them.
    """
    models: dict[str, dict[str, str]] = {"book": {n: f"book.{n}" for n, _ in BOOK_FIELDS}}
    for s in specs:
        kind = s["op"]
        if kind == "CreateModel":
            name = s["name"].lower()
            if name in models:
                raise ValueError(f"CreateModel {s['name']}: the model already exists")
            models[name] = {n: "new" for n, _ in s["fields"]}
            continue
        if kind == "DeleteModel":
            if models.pop(s["name"].lower(), None) is None:
                raise ValueError(f"DeleteModel {s['name']}: there is no such model")
            continue
        model = models.get(s["model_name"].lower())
        if model is None:
            raise ValueError(f"{kind} on {s['model_name']}: there is no such model")
        if kind == "AddField":
            if s["name"] in model:
                raise ValueError(f"AddField {s['model_name']}.{s['name']}: the field already exists")
            model[s["name"]] = "new"
        elif kind == "RemoveField":
            if model.pop(s["name"], None) is None:
                raise ValueError(f"RemoveField {s['model_name']}.{s['name']}: there is no such field")
        elif kind == "AlterField":
            if s["name"] not in model:
                raise ValueError(f"AlterField {s['model_name']}.{s['name']}: there is no such field")
        elif kind == "RenameField":
            if s["old_name"] not in model or s["new_name"] in model:
                raise ValueError(f"RenameField {s['model_name']}.{s['old_name']}: cannot rename")
            model[s["new_name"]] = model.pop(s["old_name"])
    return models


def squash_verdict(original: list[dict], squashed: list[dict], *, shortest: bool, keep_data: bool) -> tuple[bool, str]:
    """Judge one squashed list against the original, with Django as the oracle."""
    try:
        mine = lineage(squashed)
    except ValueError as e:
        return False, f"your squashed operations do not apply in order: {e}"
    try:
        same = project_state(squashed) == project_state(original)
    except Exception as e:  # a state Django cannot build
        return False, f"Django could not replay your squashed operations ({type(e).__name__})"
    if not same:
        return False, "replaying your squashed operations does not give the same final schema"
    if shortest:
        limit = len(django_optimized(original))
        if len(squashed) > limit:
            return False, f"your squashed list has {len(squashed)} operations; Django's optimizer needs only {limit}"
    if keep_data and mine != lineage(original):
        return False, "a column that keeps its data in the original (a rename) is dropped and re-created"
    return True, "same final schema"


def _f(cls, **kw):
    return [cls, kw]


def _book_add(name, field):
    return {"op": "AddField", "model_name": "book", "name": name, "field": field}


def _book_rename(old, new):
    return {"op": "RenameField", "model_name": "book", "old_name": old, "new_name": new}


def _book_alter(name, field):
    return {"op": "AlterField", "model_name": "book", "name": name, "field": field}


def _book_remove(name):
    return {"op": "RemoveField", "model_name": "book", "name": name}


SQUASH_EXAMPLE = [
    _book_add("isbn", _f("CharField", max_length=13)),
    _book_alter("isbn", _f("CharField", max_length=20)),
    _book_add("draft", _f("BooleanField", default=False)),
    _book_remove("draft"),
]

SQUASH_HIDDEN = [
    [{"op": "CreateModel", "name": "Shelf", "fields": [["id", _f("BigAutoField", primary_key=True)]]},
     {"op": "AddField", "model_name": "shelf", "name": "label", "field": _f("CharField", max_length=50)},
     {"op": "RenameField", "model_name": "shelf", "old_name": "label", "new_name": "name"}],
    [{"op": "CreateModel", "name": "Tmp", "fields": [["id", _f("BigAutoField", primary_key=True)]]},
     {"op": "DeleteModel", "name": "Tmp"}],
    [_book_alter("pages", _f("IntegerField", null=True)), _book_alter("pages", _f("IntegerField", default=0)),
     _book_remove("pages")],
    [_book_add("note", _f("TextField")), _book_rename("note", "notes"), _book_alter("notes", _f("TextField", blank=True))],
    [_book_remove("title"), _book_add("title", _f("TextField"))],
    [],
]

SQUASH_RENAMES = [
    [_book_rename("title", "name")],
    [_book_rename("pages", "page_count"), _book_alter("page_count", _f("IntegerField", null=True))],
    [_book_rename("title", "heading"), _book_rename("heading", "name"), _book_add("title", _f("CharField", max_length=50))],
    [_book_rename("pages", "tmp"), _book_rename("title", "pages"), _book_rename("tmp", "title")],
    [_book_alter("title", _f("TextField")), _book_rename("title", "body"), _book_add("x", _f("IntegerField")),
     _book_remove("x")],
]

_RANDOM_FIELDS = [_f("CharField", max_length=50), _f("CharField", max_length=100), _f("IntegerField"),
                  _f("IntegerField", null=True), _f("TextField"), _f("BooleanField", default=False)]


def _django_sequences_strategy():
    _quiet_hypothesis_storage()
    from hypothesis import strategies as st

    @st.composite
    def seq(draw):
        models = {"book": [n for n, _ in BOOK_FIELDS if n != "id"]}
        created = []
        counter = [0]

        def fresh(prefix):
            counter[0] += 1
            return f"{prefix}{counter[0]}"

        ops = []
        for _ in range(draw(st.integers(1, 9))):
            kind = draw(st.sampled_from(("add", "add", "remove", "rename", "rename", "alter", "alter",
                                         "create", "delete")))
            if kind == "create":
                name = fresh("Model")
                fields = [["id", _f("BigAutoField", primary_key=True)]]
                for _ in range(draw(st.integers(0, 2))):
                    fields.append([fresh("f"), draw(st.sampled_from(_RANDOM_FIELDS))])
                ops.append({"op": "CreateModel", "name": name, "fields": fields})
                models[name.lower()] = [n for n, _ in fields if n != "id"]
                created.append(name)
                continue
            if kind == "delete":
                if created:
                    name = draw(st.sampled_from(created))
                    created.remove(name)
                    del models[name.lower()]
                    ops.append({"op": "DeleteModel", "name": name})
                continue
            model = draw(st.sampled_from(sorted(models)))
            cols = models[model]
            if kind == "add" or not cols:
                name = fresh("f")
                ops.append({"op": "AddField", "model_name": model, "name": name,
                            "field": draw(st.sampled_from(_RANDOM_FIELDS))})
                cols.append(name)
                continue
            col = draw(st.sampled_from(cols))
            if kind == "remove":
                ops.append({"op": "RemoveField", "model_name": model, "name": col})
                cols.remove(col)
            elif kind == "rename":
                new = fresh("f")
                ops.append({"op": "RenameField", "model_name": model, "old_name": col, "new_name": new})
                cols[cols.index(col)] = new
            else:
                ops.append({"op": "AlterField", "model_name": model, "name": col,
                            "field": draw(st.sampled_from(_RANDOM_FIELDS))})
        return ops

    return seq()


@functools.lru_cache(maxsize=None)
def _squash_random_cached() -> str:
    import json

    return json.dumps(_collect(_django_sequences_strategy(), 40))


def squash_random_cases() -> list[list[dict]]:
    import json

    return json.loads(_squash_random_cached())


# ------------------------------------------------- 4. live data migration

MODELS_PY = '''\
from django.db import models


class Book(models.Model):
    title = models.CharField(max_length=200)
    slug = models.CharField(max_length=200, default="", blank=True)
    isbn = models.CharField(max_length=13, default="")
'''

MIGRATION_0001 = '''\
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [
        migrations.CreateModel(
            name="Book",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("title", models.CharField(max_length=200)),
            ],
        ),
    ]
'''

MIGRATION_0002 = '''\
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("library", "0001_initial")]
    operations = [
        migrations.AddField("book", "slug", models.CharField(max_length=200, default="", blank=True)),
    ]
'''

MIGRATION_0004 = '''\
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("library", "0003_fill_slugs")]
    operations = [
        migrations.AddField("book", "isbn", models.CharField(max_length=13, default="")),
    ]
'''

DATAMIG_VISIBLE_ROWS = ["Dune", "The Left Hand of Darkness", "Kindred"]
DATAMIG_HIDDEN_ROWS = ["Beloved", "  A Wizard of Earthsea  ", "Ça, c'est la vie!", "1984", "Never Let Me Go",
                       "Dune"]


def slug_of(title: str) -> str:
    from django.utils.text import slugify

    return slugify(title)


def _trusted_manage(project: Path, args: list[str]):
    from . import runner

    return runner.run_manage(project, args, timeout=120)


def _untrusted_manage(project: Path, args: list[str], timeout: float = 60):
    """Run ``manage.py`` on a project that holds learner code. The isolation layer wraps this."""
    from . import runner

    return runner.run_subprocess(project, ["manage.py", *args], None, {"PYTHONHASHSEED": "0"}, timeout)


def _read_rows(db: Path) -> dict:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT id, title, slug FROM library_book ORDER BY id LIMIT 1000").fetchall()
        applied = [str(r[0]) for r in con.execute(
            "SELECT name FROM django_migrations WHERE app='library' ORDER BY id LIMIT 100")]
    finally:
        con.close()
    return {"rows": [[int(i), str(t), None if s is None else str(s)] for i, t, s in rows], "applied": applied}


def run_migration_scenario(source_text: str, titles: list[str], manage=None, root: Path | None = None) -> dict:
    """Apply the learner's ``0003_fill_slugs`` to a fresh lab database holding ``titles``.

    Steps: the course's own 0001/0002 are applied and the rows inserted (trusted
    side, before any learner file exists on disk); then the learner's file is
    written and ``migrate library 0003`` runs; the rows are read from SQLite;
    then ``migrate library 0002`` rolls it back and the rows are read again.
    Returns plain data: ``{"forward": {...}, "backward": {...}}`` where each side
    holds the command's exit status and output tail, the rows and the applied list.
    The lab is a new folder under ``root`` (default: the temp folder), removed at the end.
    """
    from .lab import Lab, LabError

    manage = manage or _untrusted_manage
    root = Path(tempfile.mkdtemp(prefix="miglab-datamig-", dir=root))
    try:
        lab = Lab("datamig", root=root)
        lab.write_file("library/models.py", MODELS_PY)
        lab.write_file("library/migrations/0001_initial.py", MIGRATION_0001)
        lab.write_file("library/migrations/0002_book_slug.py", MIGRATION_0002)
        done = _trusted_manage(lab.path, ["migrate", "library", "0002", "-v", "0"])
        if done.returncode != 0:
            raise RuntimeError(f"setting up the lab database failed: {done.stderr[-500:]}")
        con = sqlite3.connect(lab.db_path)
        with con:
            con.executemany("INSERT INTO library_book (title, slug) VALUES (?, '')", [(t,) for t in titles])
        con.close()
        result: dict = {}
        try:
            lab.write_file("library/migrations/0003_fill_slugs.py", source_text)
        except LabError as e:
            return {"error": str(e)}
        lab.write_file("library/migrations/0004_book_isbn.py", MIGRATION_0004)
        for side, target in (("forward", "0003"), ("backward", "0002")):
            done = manage(lab.path, ["migrate", "library", target, "--no-color"])
            out = (done.stdout + done.stderr).replace(str(lab.path), ".")
            side_result = {"returncode": int(done.returncode), "timed_out": bool(done.timed_out),
                           "output": out[-1500:]}
            try:
                side_result.update(_read_rows(lab.db_path))
            except (sqlite3.Error, OSError, ValueError, TypeError) as e:
                return {"error": f"the database could not be read after `migrate library {target}` "
                                 f"({type(e).__name__}: {e})"}
            result[side] = side_result
            if done.returncode != 0:
                break
        return result
    finally:
        shutil.rmtree(root, ignore_errors=True)


def datamig_verdict(result: dict, titles: list[str], side: str) -> tuple[bool, str]:
    if "error" in result:
        return False, result["error"]
    if "forward" not in result:
        return False, "the migration did not run"
    fwd = result["forward"]
    if fwd["timed_out"]:
        return False, "migrate forwards ran out of time"
    if fwd["returncode"] != 0:
        return False, "`migrate library 0003` failed:\n" + _tail(fwd["output"])
    if side == "forward":
        if "0003_fill_slugs" not in fwd["applied"]:
            return False, "after migrate, 0003_fill_slugs is not recorded as applied"
        got = [r[2] for r in fwd["rows"]]
        want = [slug_of(t) for t in titles]
        if [r[1] for r in fwd["rows"]] != titles:
            return False, "the titles changed: a data migration that fills slugs must leave titles alone"
        if got != want:
            bad = sum(1 for g, w in zip(got, want) if g != w) + abs(len(got) - len(want))
            return False, f"after migrating forwards, {bad} of {len(want)} books have the wrong slug"
        return True, "every book got its slug"
    back = result.get("backward")
    if back is None:
        return False, "the backwards migration did not run"
    if back["timed_out"]:
        return False, "migrate backwards ran out of time"
    if back["returncode"] != 0:
        return False, "`migrate library 0002` (backwards) failed:\n" + _tail(back["output"])
    if "0003_fill_slugs" in back["applied"]:
        return False, "after migrating backwards, 0003_fill_slugs is still recorded as applied"
    if [r[1] for r in back["rows"]] != titles:
        return False, "migrating backwards changed the titles or lost rows"
    if any(r[2] != "" for r in back["rows"]):
        return False, "after migrating backwards, some books still have a slug (it should be empty again)"
    return True, "migrating backwards emptied the slugs again"


def _tail(text: str, lines: int = 6) -> str:
    return textwrap.indent("\n".join(text.strip().splitlines()[-lines:]), "    ")

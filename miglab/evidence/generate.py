"""Random inputs for hidden tests, drawn from a ``random.Random`` the test cell seeds.

These generators hold no seed of their own: the seed is the secret, and it
lives in the instructor's notebook (a hidden test block) under
``source/<assignment>/``, which students never get. The same seed gives the
same inputs in the grader and in the student's kernel at grading time, so
the grader knows every input without trusting the kernel.

    rng = random.Random(0x5EED)          # in a hidden test block
    for graph in [random_graph(rng) for _ in range(6)]:
        check(order_migrations, graph, rule=valid_plan)
"""

from __future__ import annotations

import random
from typing import Any

COLUMN_TYPES = ("integer", "text", "boolean", "date", "string")


def random_graph(
    rng: random.Random, apps: tuple[str, ...] = ("library", "loans", "shop"), per_app: tuple[int, int] = (2, 6)
) -> dict[tuple[Any, ...], list[tuple[Any, ...]]]:
    """A migration graph without cycles: a chain per app plus edges across apps, keys shuffled."""
    tag = rng.randrange(10, 100)
    chains = {app: [(app, f"{i + 1:04d}_{app[:3]}{tag}x{i}") for i in range(rng.randint(*per_app))] for app in apps}
    order: list[tuple[Any, ...]] = []
    pointers = dict.fromkeys(apps, 0)
    while any(pointers[a] < len(chains[a]) for a in apps):  # one creation order: topological by construction
        app = rng.choice([a for a in apps if pointers[a] < len(chains[a])])
        order.append(chains[app][pointers[app]])
        pointers[app] += 1
    deps: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
    for i, node in enumerate(order):
        chain = chains[node[0]]
        parents = [chain[chain.index(node) - 1]] if chain.index(node) else []
        earlier_elsewhere = [n for n in order[:i] if n[0] != node[0]]
        for _ in range(rng.randint(0, 2)):
            if earlier_elsewhere:
                parent = rng.choice(earlier_elsewhere)
                if parent not in parents:
                    parents.append(parent)
        deps[node] = parents
    keys = list(deps)
    rng.shuffle(keys)
    return {k: deps[k] for k in keys}


def random_column_ops(rng: random.Random, max_ops: int = 10) -> tuple[dict[str, str], list[tuple[str, ...]]]:
    """Starting columns ``{name: type}`` and valid column operations (add, remove, rename, alter).

    Names that were removed or renamed away come back now and then, to make churn.
    """
    start = {f"c{i}": rng.choice(COLUMN_TYPES) for i in range(rng.randint(0, 3))}
    current, used = dict(start), set(start)
    ops: list[tuple[str, ...]] = []
    fresh = [len(start)]

    def new_name() -> str:
        gone = sorted(used - set(current))
        if gone and rng.random() < 0.5:
            return rng.choice(gone)
        name = f"c{fresh[0]}"
        fresh[0] += 1
        used.add(name)
        return name

    for _ in range(rng.randint(0, max_ops)):
        kind = rng.choice(("add", "remove", "rename", "alter"))
        if kind == "add" or not current:
            name, kind_of = new_name(), rng.choice(COLUMN_TYPES)
            ops.append(("add", name, kind_of))
            current[name] = kind_of
            continue
        name = rng.choice(sorted(current))
        if kind == "remove":
            ops.append(("remove", name))
            del current[name]
        elif kind == "rename":
            new = new_name()
            ops.append(("rename", name, new))
            current[new] = current.pop(name)
        else:
            kind_of = rng.choice(COLUMN_TYPES)
            ops.append(("alter", name, kind_of))
            current[name] = kind_of
    return start, ops


def random_schema_ops(rng: random.Random, existing: dict[str, list[str]], max_ops: int = 9) -> list[Any]:
    """Valid Django operations on models that already exist (``{"book": ["title", ...]}``).

    Adds, removes, renames and alters fields, and creates and deletes models
    of its own; every operation applies to the state the earlier ones left.
    """
    from django.db import migrations, models

    fields = (
        lambda: models.CharField(max_length=50),
        lambda: models.CharField(max_length=100),
        models.IntegerField,
        lambda: models.IntegerField(null=True),
        models.TextField,
        lambda: models.BooleanField(default=False),
    )
    state = {name: list(cols) for name, cols in existing.items()}
    created: list[str] = []
    counter = [0]

    def fresh(prefix: str) -> str:
        counter[0] += 1
        return f"{prefix}{counter[0]}"

    ops: list[Any] = []
    for _ in range(rng.randint(1, max_ops)):
        kind = rng.choice(("add", "add", "remove", "rename", "rename", "alter", "alter", "create", "delete"))
        if kind == "create":
            name = fresh("Model")
            new_fields = [("id", models.BigAutoField(primary_key=True))]
            new_fields += [(fresh("f"), rng.choice(fields)()) for _ in range(rng.randint(0, 2))]
            ops.append(migrations.CreateModel(name, new_fields))
            state[name.lower()] = [n for n, _ in new_fields if n != "id"]
            created.append(name)
            continue
        if kind == "delete":
            if created:
                name = created.pop(rng.randrange(len(created)))
                del state[name.lower()]
                ops.append(migrations.DeleteModel(name))
            continue
        model = rng.choice(sorted(state))
        columns = state[model]
        if kind == "add" or not columns:
            name = fresh("f")
            ops.append(migrations.AddField(model, name, rng.choice(fields)()))
            columns.append(name)
            continue
        column = rng.choice(columns)
        if kind == "remove":
            ops.append(migrations.RemoveField(model, column))
            columns.remove(column)
        elif kind == "rename":
            new = fresh("f")
            ops.append(migrations.RenameField(model, column, new))
            columns[columns.index(column)] = new
        else:
            ops.append(migrations.AlterField(model, column, rng.choice(fields)()))
    return ops

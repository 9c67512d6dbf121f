"""The migration graph of a lab project: what Django sees, as data and as a picture.

Django keeps migrations in a graph, not a list. Each migration is a node named
``(app, name)``; each entry of a migration's ``dependencies`` is an edge from
the migration that must run first to the migration that needs it. ``migrate``
orders the nodes with a depth-first topological sort of that graph.

::

    from miglab.graph import migration_graph, draw, show_graph
    g = migration_graph(lab)     # asks the lab's own Django (its own process)
    g.plan                       # the order `migrate` would run everything in
    g.leaves, g.roots            # latest / first migration(s) of each app
    show_graph(lab)              # picture + plan, for a notebook

The graph is read by a short script that runs inside the lab project
(``manage.py shell``), so the notebook kernel never loads the lab's settings
and always sees the files as they are on disk right now.
"""

from __future__ import annotations

import io
import itertools
import json
from dataclasses import dataclass, field

from .project import Lab, LabError

Node = tuple[str, str]  # (app label, migration name), as Django writes it

MARKER = "MIGLAB-GRAPH "

# Runs inside the lab project via `manage.py shell -c`: it prints one JSON line.
_PROBE = r"""
import json, os
from django.conf import settings
from django.db import connection
from django.db.migrations.exceptions import CircularDependencyError, NodeNotFoundError
from django.db.migrations.loader import MigrationLoader

db_exists = os.path.exists(str(settings.DATABASES["default"]["NAME"]))
# No database file yet: read the files only (connecting would create an empty file).
loader = MigrationLoader(connection if db_exists else None, load=False)
out = {"error": None, "cycle_error": None}
try:
    loader.build_graph()
except CircularDependencyError as e:
    out["cycle_error"] = str(e)
except NodeNotFoundError as e:
    out["error"] = "%s: %s" % (type(e).__name__, e)
graph = loader.graph if out["error"] is None else None
if graph is not None:
    nodes = sorted(graph.nodes)
    out["nodes"] = nodes
    out["edges"] = sorted(
        [parent.key, key] for key in nodes for parent in graph.node_map[key].parents
    )
    out["leaves"] = graph.leaf_nodes()
    out["roots"] = graph.root_nodes()
    out["applied"] = sorted(k for k in loader.applied_migrations if k in graph.nodes)
    plan = []
    if out["cycle_error"] is None:
        # What `migrate` (no arguments) computes: every leaf as a target, each
        # target's forwards plan in turn, skipping what is already planned.
        for target in graph.leaf_nodes():
            for key in graph.forwards_plan(target):
                if key not in plan:
                    plan.append(key)
    out["plan"] = plan
print("MIGLAB-GRAPH " + json.dumps(out))
"""


class GraphError(LabError):
    """Django could not build the migration graph (a missing dependency, a broken file)."""


@dataclass
class Graph:
    """The migration graph of a lab project, as Django built it.

    ``edges`` holds pairs ``(dependency, dependant)``: the first migration must
    run before the second, because the second lists it in ``dependencies``.
    ``roots`` and ``leaves`` use Django's own definitions, per app: a root has no
    dependency inside its app (the app's first migration), a leaf has no
    dependant inside its app (the app's latest migration). ``plan`` is the order
    ``migrate`` would apply every migration in, starting from an empty database;
    it is empty when the graph has a ``cycle`` (Django refuses to order it).
    """

    nodes: list[Node]
    edges: list[tuple[Node, Node]]
    plan: list[Node]
    applied: set[Node] = field(default_factory=set)
    leaves: dict[str, list[str]] = field(default_factory=dict)
    roots: dict[str, list[str]] = field(default_factory=dict)
    cycle: list[Node] | None = None
    django_error: str | None = None  # Django's own cycle message (its order varies between runs)

    # ---- questions about the graph

    @property
    def apps(self) -> list[str]:
        return sorted({app for app, _ in self.nodes})

    def dependencies(self, node: Node) -> list[Node]:
        """The migrations ``node`` lists in its ``dependencies`` (they run first)."""
        return sorted(a for a, b in self.edges if b == tuple(node))

    def dependants(self, node: Node) -> list[Node]:
        """The migrations that list ``node`` in their ``dependencies``."""
        return sorted(b for a, b in self.edges if a == tuple(node))

    @property
    def pending(self) -> list[Node]:
        """What ``migrate`` would run now: the plan without the applied migrations."""
        return [n for n in self.plan if n not in self.applied]

    @property
    def conflicts(self) -> dict[str, list[str]]:
        """Apps with more than one leaf: the graph forked and needs a merge migration."""
        return {app: names for app, names in self.leaves.items() if len(names) > 1}

    def respects(self, order: list[Node]) -> bool:
        """True if ``order`` lists every node once and each dependency before its dependant."""
        order = [tuple(n) for n in order]
        if sorted(order) != sorted(self.nodes) or len(set(order)) != len(order):
            return False
        at = {n: i for i, n in enumerate(order)}
        return all(at[a] < at[b] for a, b in self.edges)

    # ---- text

    def describe(self) -> str:
        """A plain-text summary: the plan in order, roots, leaves, conflicts, cycle."""
        if not self.nodes:
            return "No migrations yet: the graph is empty."
        lines = []
        if self.cycle:
            lines.append("Django refuses to order these migrations: their dependencies form a cycle.")
            lines.append("  " + " -> ".join(label(n) for n in self.cycle + self.cycle[:1]))
            lines.append("  (each one must run before the next, so none of them can run first)")
        else:
            lines.append("Django's plan (the order `migrate` runs them in):")
            width = max(len(label(n)) for n in self.plan)
            for i, node in enumerate(self.plan, 1):
                state = "applied" if node in self.applied else "not applied"
                lines.append(f"  {i:>2}. {label(node).ljust(width)}  [{state}]")
        for title, per_app in (
            ("Roots (first in their app)", self.roots),
            ("Leaves (latest in their app)", self.leaves),
        ):
            names = [f"{app}.{name}" for app in sorted(per_app) for name in per_app[app]]
            lines.append(f"{title}: {', '.join(names)}")
        for app, names in sorted(self.conflicts.items()):
            lines.append(
                f"Conflict in {app!r}: {len(names)} leaves ({', '.join(names)}); `makemigrations --merge` joins them."
            )
        return "\n".join(lines)

    __str__ = describe

    def __repr__(self) -> str:
        return self.describe()


def label(node: Node) -> str:
    return f"{node[0]}.{node[1]}"


def _as_node(pair) -> Node:
    return (str(pair[0]), str(pair[1]))


def _closing_edges(children: dict[Node, list[Node]]):
    """Yield ``(path, node)`` for each edge ``path[-1] -> node`` that closes a cycle.

    A deterministic depth-first search: start nodes and children are visited in sorted order.
    """
    state: dict[Node, int] = {}  # 1 = on the current path, 2 = finished
    for start in sorted(children):
        if start in state:
            continue
        path, iters = [start], [iter(sorted(children[start]))]
        state[start] = 1
        while path:
            nxt = next(iters[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                iters.pop()
            elif state.get(nxt) == 1:
                yield path, nxt
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                iters.append(iter(sorted(children.get(nxt, []))))


def find_cycle(nodes: list[Node], edges: list[tuple[Node, Node]]) -> list[Node] | None:
    """One cycle of the graph, or None. Deterministic: it starts at its smallest node."""
    children: dict[Node, list[Node]] = {n: [] for n in nodes}
    for a, b in edges:
        children.setdefault(a, []).append(b)
    for path, nxt in _closing_edges(children):
        cycle = path[path.index(nxt) :]
        k = cycle.index(min(cycle))
        return cycle[k:] + cycle[:k]
    return None


def migration_graph(lab: Lab) -> Graph:
    """Ask the lab project's Django for its migration graph (files on disk + applied rows).

    Raises GraphError with Django's message when the graph cannot be built
    (a dependency on a migration that does not exist, a broken models.py or
    migration file). A cycle is not raised: it is reported in ``Graph.cycle``.
    """
    result = lab.shell(_PROBE)
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith(MARKER)), None)
    if not result.ok or line is None:
        tail = result.output.strip().splitlines()[-1:] or ["(no output)"]
        raise GraphError(f"Django could not load the lab's migrations:\n{tail[0]}")
    data = json.loads(line[len(MARKER) :])
    if data["error"]:
        raise GraphError(f"Django could not build the migration graph:\n{data['error']}")
    nodes = [_as_node(n) for n in data["nodes"]]
    edges = [(_as_node(a), _as_node(b)) for a, b in data["edges"]]
    per_app = lambda pairs: {
        app: sorted(n for a, n in map(_as_node, pairs) if a == app) for app in sorted({p[0] for p in pairs})
    }
    cycle = find_cycle(nodes, edges) if data["cycle_error"] else None
    return Graph(
        nodes=nodes,
        edges=edges,
        plan=[_as_node(n) for n in data["plan"]],
        applied={_as_node(n) for n in data["applied"]},
        leaves=per_app(data["leaves"]),
        roots=per_app(data["roots"]),
        cycle=cycle,
        django_error=data["cycle_error"],
    )


# ------------------------------------------------------------------ picture


def layers(nodes: list[Node], edges: list[tuple[Node, Node]]) -> dict[Node, int]:
    """Column of each node: the length of the longest chain of dependencies below it.

    Edges that close a cycle are ignored, so a cyclic graph still gets a layout.
    """
    parents: dict[Node, list[Node]] = {n: [] for n in nodes}
    children: dict[Node, list[Node]] = {n: [] for n in nodes}
    for a, b in edges:
        children[a].append(b)
        parents[b].append(a)
    # Drop the edges that close a cycle.
    back = {(path[-1], nxt) for path, nxt in _closing_edges(children)}
    depth: dict[Node, int] = {}

    def depth_of(n: Node) -> int:
        stack = [n]
        while stack:
            top = stack[-1]
            todo = [p for p in parents[top] if (p, top) not in back and p not in depth]
            if todo:
                stack.extend(sorted(todo))
                continue
            stack.pop()
            ps = [depth[p] for p in parents[top] if (p, top) not in back]
            depth[top] = 1 + max(ps) if ps else 0
        return depth[n]

    for n in sorted(nodes):
        depth_of(n)
    return depth


def _positions(graph: Graph) -> tuple[dict[Node, tuple[float, float]], int, int]:
    """x = dependency depth; y = one horizontal band per app, stacked where a layer has several."""
    col = layers(graph.nodes, graph.edges)
    y: dict[Node, float] = {}
    row = 0
    for app in graph.apps:
        mine = [n for n in graph.nodes if n[0] == app]
        slots: dict[int, int] = {}
        for n in sorted(mine, key=lambda n: (col[n], n[1])):
            y[n] = row + slots.get(col[n], 0)
            slots[col[n]] = slots.get(col[n], 0) + 1
        row += max(slots.values())
    pos = {n: (col[n] * X_STEP, -y[n] * Y_STEP) for n in graph.nodes}
    return pos, (max(col.values()) + 1 if col else 1), max(row, 1)


X_STEP, Y_STEP = 3.2, 1.35
BOX_W, BOX_H = 2.5, 0.78
PALETTE = ["#1f77b4", "#e6750e", "#2ca02c", "#9467bd", "#8c564b", "#d62728"]


def _short(name: str, limit: int = 22) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def draw(graph: Graph, title: str | None = None):
    """The graph as a matplotlib Figure, left to right by dependency depth.

    One colour per app; applied migrations are filled, unapplied ones outlined;
    each arrow goes from a dependency to the migration that depends on it; the
    small number on a box is its position in Django's plan. Edges of a cycle
    are drawn in red. The figure is not registered with pyplot (no double display).
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch

    pos, ncols, nrows = _positions(graph)
    fig = Figure(figsize=(max(5.0, 1.0 + ncols * 2.3), 1.5 + nrows * 1.0), dpi=100)
    ax = fig.add_axes((0.02, 0.02, 0.96, 0.82 if nrows > 1 else 0.75))
    ax.set_axis_off()
    ax.set_xlim(-BOX_W / 2 - 0.3, (ncols - 1) * X_STEP + BOX_W / 2 + 0.3)
    ax.set_ylim(-(nrows - 1) * Y_STEP - BOX_H / 2 - 0.35, BOX_H / 2 + 0.35)
    colour = {app: PALETTE[i % len(PALETTE)] for i, app in enumerate(graph.apps)}
    step = {n: i for i, n in enumerate(graph.plan, 1)}
    in_cycle = set()
    if graph.cycle:
        ring = graph.cycle + graph.cycle[:1]
        in_cycle = set(itertools.pairwise(ring))

    if not graph.nodes:
        ax.text(0, 0, "no migrations yet", ha="center", va="center", fontsize=11, color="#666")

    for a, b in graph.edges:
        (xa, ya), (xb, yb) = pos[a], pos[b]
        red = (a, b) in in_cycle
        style = dict(
            arrowstyle="-|>", mutation_scale=14, lw=2.0 if red else 1.3, color="#d62728" if red else "#444444", zorder=1
        )
        if a == b:  # a migration that depends on itself
            arrow = FancyArrowPatch(
                (xa + 0.4, ya + BOX_H / 2), (xa - 0.4, ya + BOX_H / 2), connectionstyle="arc3,rad=1.2", **style
            )
        elif xb > xa:
            bend = 0.0 if ya == yb and xb - xa <= X_STEP + 0.01 else 0.12
            arrow = FancyArrowPatch(
                (xa + BOX_W / 2, ya), (xb - BOX_W / 2, yb), connectionstyle=f"arc3,rad={bend}", **style
            )
        elif ya == yb or xb == xa:  # backwards along a row (it closes a cycle): arc over the boxes
            top = BOX_H / 2
            dist = max(abs(xa - xb), 0.5)
            arrow = FancyArrowPatch(
                (xa, ya + top),
                (xb, yb + top),
                connectionstyle=f"arc3,rad={min(0.45, 0.9 / dist) * (1 if xb < xa else -1)}",
                **style,
            )
        else:  # backwards across rows: the mirror of the forward arrow, bulging the other way
            arrow = FancyArrowPatch((xa - BOX_W / 2, ya), (xb + BOX_W / 2, yb), connectionstyle="arc3,rad=0.3", **style)
        ax.add_patch(arrow)

    for node in graph.nodes:
        x, y = pos[node]
        c = colour[node[0]]
        done = node in graph.applied
        ax.add_patch(
            FancyBboxPatch(
                (x - BOX_W / 2, y - BOX_H / 2),
                BOX_W,
                BOX_H,
                boxstyle="round,pad=0.02,rounding_size=0.12",
                facecolor=c if done else "white",
                edgecolor=c,
                lw=2.0,
                linestyle="-" if done else (0, (4, 2)),
                zorder=2,
            )
        )
        ink = "white" if done else "#222222"
        ax.text(
            x,
            y + 0.15,
            node[0],
            ha="center",
            va="center",
            fontsize=8,
            color=ink if done else c,
            fontweight="bold",
            zorder=3,
        )
        ax.text(x, y - 0.13, _short(node[1]), ha="center", va="center", fontsize=9, color=ink, zorder=3)
        if node in step:
            ax.text(
                x - BOX_W / 2,
                y + BOX_H / 2,
                str(step[node]),
                ha="center",
                va="center",
                fontsize=8,
                color="white",
                fontweight="bold",
                zorder=4,
                bbox=dict(boxstyle="circle,pad=0.25", facecolor="#333333", edgecolor="none"),
            )

    handles = [Patch(facecolor="white", edgecolor=colour[a], lw=2, label=f"app {a}") for a in graph.apps]
    handles += [
        Patch(facecolor="#999999", edgecolor="#999999", label="applied (filled)"),
        Patch(facecolor="white", edgecolor="#999999", linestyle=(0, (4, 2)), label="not applied"),
    ]
    if graph.plan:
        handles.append(
            Line2D([], [], marker="o", ls="", color="#333333", markersize=8, label="n = step in Django's plan")
        )
    if in_cycle:
        handles.append(Line2D([], [], color="#d62728", lw=2, label="cycle"))
    fig.legend(
        handles=handles,
        loc="upper center",
        ncol=min(len(handles), 3),
        fontsize=8,
        frameon=False,
        bbox_to_anchor=(0.5, 1.0),
    )
    if title:
        fig.suptitle(title, y=0.02, va="bottom", fontsize=10)
    return fig


def png_bytes(fig) -> bytes:
    """The figure as PNG, without metadata that changes between matplotlib versions."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None}, facecolor="white")
    return buf.getvalue()


def show_graph(lab_or_graph: Lab | Graph, title: str | None = None) -> None:
    """Display the picture of the graph, then Django's plan and the roots/leaves as text."""
    from IPython.display import Image, display

    graph = lab_or_graph if isinstance(lab_or_graph, Graph) else migration_graph(lab_or_graph)
    display(Image(data=png_bytes(draw(graph, title)), format="png"))
    print(graph.describe())

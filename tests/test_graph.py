"""miglab.lab.graph reads the real migration graph of a lab project and draws it.

Every test builds real migration files in a real lab and compares the graph
with what Django itself then does (`migrate`, `showmigrations --plan`).
"""

import re
from pathlib import Path

import nbformat
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nbclient import NotebookClient

from miglab import Lab
from miglab.lab.graph import Graph, GraphError, draw, find_cycle, layers, migration_graph, png_bytes, show_graph

LIBRARY = """
class Author(models.Model):
    name = models.CharField(max_length=100)

class Book(models.Model):
    title = models.CharField(max_length=200)
    author = models.ForeignKey(Author, on_delete=models.CASCADE)
"""

LOANS = """
from library.models import Book

class Loan(models.Model):
    book = models.ForeignKey(Book, on_delete=models.CASCADE)
    borrower = models.CharField(max_length=100)
"""

L1, N1 = ("library", "0001_initial"), ("loans", "0001_initial")


def hand_written(deps, ops="") -> str:
    """A migration file as a developer would write it: given dependencies, optional operations."""
    return (
        "from django.db import migrations, models\n\n\n"
        "class Migration(migrations.Migration):\n"
        f"    dependencies = {deps!r}\n"
        f"    operations = [{ops}]\n"
    )


@pytest.fixture
def two_apps(lab):
    lab.write_models("library", LIBRARY)
    lab.write_models("loans", LOANS)
    lab.manage("makemigrations").check()
    return lab


def django_plan(lab) -> list[tuple[str, str]]:
    """`showmigrations --plan`, parsed: Django's own order."""
    out = lab.manage("showmigrations --plan").check().stdout
    return [tuple(m.split(".", 1)) for m in re.findall(r"^\[[ X]\]\s+(\S+)$", out, re.MULTILINE)]


def test_a_foreign_key_across_apps_is_an_edge_between_the_apps(two_apps):
    g = migration_graph(two_apps)
    assert g.nodes == [L1, N1]
    assert g.edges == [(L1, N1)], "loans.0001 lists library.0001 in its dependencies"
    assert g.dependencies(N1) == [L1] and g.dependants(L1) == [N1]
    assert g.plan == [L1, N1] == django_plan(two_apps)
    assert g.roots == {"library": ["0001_initial"], "loans": ["0001_initial"]}
    assert g.leaves == {"library": ["0001_initial"], "loans": ["0001_initial"]}
    assert g.applied == set() and g.pending == [L1, N1]
    assert g.cycle is None and g.conflicts == {}
    assert two_apps.tables() == [], "reading the graph changes nothing in the database"


def test_applied_migrations_and_a_growing_app(two_apps):
    lab = two_apps
    lab.manage("migrate library").check()
    lab.write_models("library", LIBRARY + "    year = models.IntegerField(null=True)\n")
    lab.manage("makemigrations library").check()
    L2 = ("library", "0002_book_year")
    g = migration_graph(lab)
    assert g.applied == {L1}
    assert g.edges == [(L1, L2), (L1, N1)]
    assert g.roots == {"library": ["0001_initial"], "loans": ["0001_initial"]}
    assert g.leaves == {"library": ["0002_book_year"], "loans": ["0001_initial"]}
    assert g.plan == django_plan(lab)
    assert g.pending == [n for n in g.plan if n != L1]
    lab.manage("migrate").check()
    assert list(lab.applied()) == g.plan, "migrate applied exactly the plan, in order"
    assert migration_graph(lab).applied == set(g.plan)
    text = g.describe()
    assert "1. library.0001_initial    [applied]" in text
    assert "Leaves (latest in their app): library.0002_book_year, loans.0001_initial" in text


def test_file_names_do_not_decide_the_order(lab):
    lab.write_models("library", "class Book(models.Model):\n    title = models.CharField(max_length=200)\n")
    lab.manage("makemigrations library").check()
    lab.write_file("library/migrations/0002_late.py", hand_written([("library", "0003_early")]))
    lab.write_file("library/migrations/0003_early.py", hand_written([("library", "0001_initial")]))
    g = migration_graph(lab)
    order = [L1, ("library", "0003_early"), ("library", "0002_late")]
    assert g.plan == order == django_plan(lab)
    assert g.leaves == {"library": ["0002_late"]}
    lab.manage("migrate").check()
    assert list(lab.applied()) == order


def test_a_cycle_is_reported_not_ordered(two_apps):
    lab = two_apps
    path = "library/migrations/0001_initial.py"
    text = lab.read_file(path)
    assert "dependencies = [\n    ]" in text
    lab.write_file(path, text.replace("dependencies = [\n    ]", "dependencies = [('loans', '0001_initial')]"))
    g = migration_graph(lab)
    assert g.cycle == [L1, N1]
    assert g.plan == [] and g.pending == []
    assert sorted(g.edges) == [(L1, N1), (N1, L1)]
    assert "CircularDependencyError" not in g.describe()
    assert "form a cycle" in g.describe()
    assert "library.0001_initial -> loans.0001_initial -> library.0001_initial" in g.describe()
    assert set(g.django_error.split(", ")) == {"library.0001_initial", "loans.0001_initial"}
    # Django itself refuses to migrate the same files.
    refused = lab.manage("migrate")
    assert refused.returncode == 1
    assert "CircularDependencyError" in refused.output
    assert lab.tables() == [] or lab.applied().rows == []


def test_the_reported_cycle_does_not_depend_on_the_hash_seed(two_apps, monkeypatch):
    lab = two_apps
    lab.write_models("loans", LOANS + "    due = models.DateField(null=True)\n")
    lab.manage("makemigrations loans").check()
    # library.0001 -> loans.0001 -> loans.0002 -> library.0001
    path = "library/migrations/0001_initial.py"
    lab.write_file(
        path, lab.read_file(path).replace("dependencies = [\n    ]", "dependencies = [('loans', '0002_loan_due')]")
    )
    monkeypatch.setenv("MIGLAB_FORK", "0")  # plain subprocesses inherit the seed below
    seen = set()
    for seed in ("1", "2", "3"):
        monkeypatch.setenv("PYTHONHASHSEED", seed)
        g = migration_graph(lab)
        seen.add((tuple(g.cycle), g.describe()))
    assert len(seen) == 1
    assert next(iter(seen))[0] == (L1, N1, ("loans", "0002_loan_due"))


def test_two_leaves_in_one_app_are_a_conflict_like_django_says(two_apps):
    lab = two_apps
    lab.write_file("library/migrations/0002_branch_a.py", hand_written([("library", "0001_initial")]))
    lab.write_file("library/migrations/0002_branch_b.py", hand_written([("library", "0001_initial")]))
    g = migration_graph(lab)
    assert g.leaves["library"] == ["0002_branch_a", "0002_branch_b"]
    assert g.conflicts == {"library": ["0002_branch_a", "0002_branch_b"]}
    assert "Conflict in 'library': 2 leaves (0002_branch_a, 0002_branch_b)" in g.describe()
    refused = lab.manage("migrate")
    assert refused.returncode == 1
    assert "Conflicting migrations detected; multiple leaf nodes" in refused.output
    merged = lab.manage("makemigrations --merge --noinput")
    assert merged.ok, merged
    g = migration_graph(lab)
    assert g.conflicts == {}
    (leaf,) = g.leaves["library"]
    assert g.dependencies(("library", leaf)) == [("library", "0002_branch_a"), ("library", "0002_branch_b")]


def test_a_dependency_on_a_missing_migration_is_a_clear_error(two_apps):
    two_apps.write_file("loans/migrations/0002_oops.py", hand_written([("library", "0009_missing")]))
    with pytest.raises(GraphError, match=r"nonexistent parent node \('library', '0009_missing'\)"):
        migration_graph(two_apps)
    two_apps.remove_file("loans/migrations/0002_oops.py")
    assert migration_graph(two_apps).nodes == [L1, N1]


def test_a_broken_models_file_is_a_clear_error(lab):
    lab.write_models("library", "class Book(models.Model):\n    title = models.CharFeld(max_length=5)\n")
    with pytest.raises(GraphError, match="CharFeld"):
        migration_graph(lab)


def test_an_empty_project_has_an_empty_graph(lab):
    g = migration_graph(lab)
    assert (g.nodes, g.edges, g.plan, g.leaves, g.roots) == ([], [], [], {}, {})
    assert g.describe() == "No migrations yet: the graph is empty."
    assert not lab.db_path.exists(), "reading the graph does not create a database file"
    assert png_bytes(draw(g)).startswith(b"\x89PNG")


# ---- the plan respects every edge, for any graph of hand-written files


@st.composite
def migration_dags(draw_):
    """Up to 7 migrations over both apps; each depends on some that come earlier in a hidden order."""
    n = draw_(st.integers(1, 7))
    apps = draw_(st.lists(st.sampled_from(["library", "loans"]), min_size=n, max_size=n))
    # Names are shuffled against the hidden order, so file names say nothing about it.
    numbers = draw_(st.permutations(range(1, n + 1)))
    nodes = [(app, f"{numbers[i]:04d}_m{i}") for i, app in enumerate(apps)]
    deps = {
        node: sorted(draw_(st.sets(st.sampled_from(nodes[:i]), max_size=3))) if i else []
        for i, node in enumerate(nodes)
    }
    return deps


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(deps=migration_dags())
def test_the_plan_respects_every_edge(lab_root, deps):
    lab = Lab("dag", root=lab_root)
    for (app, name), parents in deps.items():
        lab.write_file(f"{app}/migrations/{name}.py", hand_written([tuple(p) for p in parents]))
    g = migration_graph(lab)
    assert g.nodes == sorted(deps)
    assert g.edges == sorted((p, node) for node, ps in deps.items() for p in ps)
    assert g.respects(g.plan), "every dependency comes before its dependant"
    for app in {a for a, _ in deps}:
        mine = [n for n in deps if n[0] == app]
        expect_leaves = sorted(n for n in mine if not any(n in deps[m] for m in mine))
        expect_roots = sorted(n for n in mine if not any(p[0] == app for p in deps[n]))
        assert g.leaves[app] == [n for _, n in expect_leaves]
        assert g.roots[app] == [n for _, n in expect_roots]
    if not g.conflicts:
        lab.manage("migrate").check()
        assert list(lab.applied()) == g.plan, "Django applies exactly the plan"


def test_respects_rejects_orders_that_break_an_edge():
    a, b, c = ("x", "1"), ("x", "2"), ("y", "1")
    g = Graph(nodes=[a, b, c], edges=[(a, b), (a, c)], plan=[a, b, c])
    assert g.respects([a, c, b])
    assert not g.respects([b, a, c])
    assert not g.respects([a, b]), "every node must appear"
    assert not g.respects([a, b, b, c]), "each node once"


# ---- layout and picture


def test_layers_follow_the_longest_chain_and_survive_cycles():
    a, b, c, d = ("p", "1"), ("p", "2"), ("p", "3"), ("q", "1")
    assert layers([a, b, c, d], [(a, b), (b, c), (a, c), (a, d)]) == {a: 0, b: 1, c: 2, d: 1}
    looped = layers([a, b, c], [(a, b), (b, c), (c, a)])
    assert sorted(looped.values()) == [0, 1, 2]
    assert find_cycle([a, b, c], [(a, b), (b, c), (c, a)]) == [a, b, c]
    assert find_cycle([a, b, c], [(a, b), (b, c)]) is None


def test_the_picture_has_a_box_per_migration_and_an_arrow_per_dependency(two_apps):
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    g = migration_graph(two_apps)
    fig = draw(g)
    ax = fig.axes[0]
    boxes = [p for p in ax.patches if isinstance(p, FancyBboxPatch)]
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    assert len(boxes) == len(g.nodes) and len(arrows) == len(g.edges)
    texts = [t.get_text() for t in ax.texts]
    assert texts.count("0001_initial") == 2 and {"library", "loans", "1", "2"} <= set(texts)
    # The dependant sits to the right of its dependency: arrows point left to right.
    (start, end) = arrows[0]._posA_posB
    assert end[0] > start[0]
    png = png_bytes(fig)
    assert png.startswith(b"\x89PNG") and png == png_bytes(draw(migration_graph(two_apps)))


def test_applied_boxes_are_filled_and_cycle_edges_are_red(two_apps):
    from matplotlib.colors import to_hex
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    two_apps.manage("migrate library").check()
    boxes = [p for p in draw(migration_graph(two_apps)).axes[0].patches if isinstance(p, FancyBboxPatch)]
    fills = [to_hex(b.get_facecolor()) for b in boxes]
    assert fills[0] != "#ffffff" and fills[1] == "#ffffff", "library.0001 applied, loans.0001 not"
    path = "library/migrations/0001_initial.py"
    two_apps.write_file(
        path, two_apps.read_file(path).replace("dependencies = [\n    ]", "dependencies = [('loans', '0001_initial')]")
    )
    arrows = [p for p in draw(migration_graph(two_apps)).axes[0].patches if isinstance(p, FancyArrowPatch)]
    assert len(arrows) == 2 and all(to_hex(a.get_edgecolor()) == "#d62728" for a in arrows)


def test_show_graph_displays_the_picture_then_the_plan(two_apps, capsys):
    show_graph(two_apps)
    out = capsys.readouterr().out
    assert "Image" in out.splitlines()[0], "the picture comes first"
    assert "Django's plan (the order `migrate` runs them in):" in out
    assert "1. library.0001_initial  [not applied]" in out
    assert "2. loans.0001_initial    [not applied]" in out


# ---- lessons 02 and 03: their practice cells, answered right and wrong

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"

# lesson stem: (the blank line, [(an answer, whether it earns the tick), ...])
PRACTICE = {  # lesson: (a line that finds the practice cell, the blank the learner replaces, answers)
    "02_plan_then_apply": (
        "if command:\n    print(lab.manage(command))",
        "command = None",
        [
            ('command = "sqlmigrate library 0003"', False),  # prints SQL, applies nothing
            ('command = "showmigrations"', False),
            ('command = "migrate"', True),
        ],
    ),
    "03_the_migration_graph": (
        "my_order = []",
        "my_order = []",
        [
            ("my_order = g.plan", False),  # Django's own order does not count
            ("my_order = list(reversed(g.plan))", False),  # breaks every edge
            ("my_order = [list(n) for n in g.plan]", False),  # Django's order, as lists
            (
                "import itertools\nmy_order = next(list(o) for o in itertools.permutations(g.plan)\n"
                "                if g.respects(list(o)) and list(o) != g.plan)",
                True,
            ),
        ],
    ),
}


@pytest.mark.slow  # several seconds: left out of make test-fast's quick loop
@pytest.mark.parametrize("stem", list(PRACTICE))
def test_practice_cells_tick_only_for_a_right_answer(stem, tmp_path, monkeypatch):
    monkeypatch.setenv("MIGLAB_WORKDIR", str(tmp_path / "labs"))
    nb = nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4)
    where, blank, answers = PRACTICE[stem]
    (i,) = [k for k, c in enumerate(nb.cells) if c.cell_type == "code" and where in c.source and blank in c.source]
    practice = nb.cells[i]
    assert not practice.outputs, "a practice cell is stored without outputs (they would give the answer away)"
    # Run the lesson up to the practice cell, then the cell once per answer (wrong ones first).
    tries = [nbformat.v4.new_code_cell(practice.source.replace(blank, answer)) for answer, _ in answers]
    nb.cells = nb.cells[:i] + tries
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    for cell, (answer, right) in zip(tries, answers):
        out = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
        assert ("✓ " in out) is right and ("✗ Not yet" in out) is (not right), (answer, out)

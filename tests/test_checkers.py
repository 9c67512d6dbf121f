"""The rules that decide judged cells, on plain evidence, with real Django as the oracle.

Public checkers (miglab.evidence.checkers, which a learner's kernel may run
too) and deep_dive's own rules (source/deep_dive/rules.py, loaded the way the
grader loads them). No kernel and no nbgrader here.
"""

from __future__ import annotations

import random
import re
import sys
from pathlib import Path

import nbformat
import networkx as nx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from miglab.evidence import (
    Call,
    choice,
    migration_pairs,
    names_cycle,
    probes,
    random_graph,
    random_schema_ops,
    returns_historical_model,
    squashes,
    valid_plan,
)
from miglab.evidence.convert import to_json
from miglab.evidence.django_setup import ensure_django
from miglab.grading.context import JudgeContext, local_runner
from miglab.grading.rulebook import RuleBook

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "source" / "deep_dive"
sys.path.insert(0, str(ROOT / "tests" / "assignment_fixtures"))

from data_migration import GOOD
from slug import VISIBLE, judged

RULES = RuleBook((SOURCE / "rules.py").read_text(), assignment="deep_dive")
ensure_django()
from django.db import migrations, models

BOOK = [
    migrations.CreateModel(
        "Book",
        [
            ("id", models.BigAutoField(primary_key=True)),
            ("title", models.CharField(max_length=200)),
            ("pages", models.IntegerField()),
        ],
    )
]


def call(*args, output, rule=None, **params):
    """A Call as the judge builds it: inputs and parameters as JSON, the answer as evidence."""
    expect = params.pop("expect", None)
    kw = {"expect": to_json(expect)} if expect is not None else {}
    return Call(args=[to_json(a) for a in args], output=to_json(output), params=to_json(params), **kw)


def nodes(seq):
    return [list(n) for n in seq]


# ------------------------------------------------------------------ graphs


def test_any_valid_topological_order_passes_and_an_invalid_one_fails():
    rng = random.Random(7)
    differing = 0
    for _ in range(8):
        g = random_graph(rng)
        dag = nx.DiGraph([(p, n) for n, ps in g.items() for p in ps])
        dag.add_nodes_from(g)
        a = list(nx.lexicographical_topological_sort(dag))
        b = list(nx.lexicographical_topological_sort(dag, key=lambda n: tuple(-ord(ch) for ch in n[1])))
        differing += a != b
        assert valid_plan(call(g, output=a)).ok and valid_plan(call(g, output=b)).ok
        node = next(n for n in a if g[n])
        parent = g[node][0]
        broken = list(a)
        i, j = broken.index(node), broken.index(parent)
        broken[i], broken[j] = broken[j], broken[i]
        verdict = valid_plan(call(g, output=broken))
        assert not verdict.ok and "which it depends on" in verdict.reason
    assert differing >= 5  # the inputs really admit several orders


def test_an_order_lists_every_migration_once():
    g = random_graph(random.Random(3))
    order = list(nx.topological_sort(nx.DiGraph([(p, n) for n, ps in g.items() for p in ps])))
    order += [n for n in g if n not in order]
    assert valid_plan(call(g, output=order)).ok
    assert "1 missing" in valid_plan(call(g, output=order[:-1])).reason
    assert "more than once" in valid_plan(call(g, output=order + order[-1:])).reason


def test_cycle_reports_are_judged_on_the_names_on_the_cycle():
    g = {
        ("library", "0001_initial"): [],
        ("library", "0002_book_pages"): [("library", "0001_initial"), ("loans", "0002_loan_due")],
        ("loans", "0001_initial"): [("library", "0002_book_pages")],
        ("loans", "0002_loan_due"): [("loans", "0001_initial")],
    }
    good = {
        "raised": True,
        "type": "ValueError",
        "value_error": True,
        "message": "cycle: library.0002_book_pages -> loans.0001_initial -> loans.0002_loan_due",
    }
    assert names_cycle(call(g, output=good)).ok
    assert "does not name every" in names_cycle(call(g, output={**good, "message": "at loans.0001_initial"})).reason
    assert "no error" in names_cycle(call(g, output={"raised": False})).reason
    assert not names_cycle(call(g, output={**good, "value_error": False, "type": "RuntimeError"})).ok
    away = {
        ("shop", "0001_initial"): [],
        ("shop", "0002_item"): [("shop", "0001_initial"), ("shop", "0004_sale")],
        ("shop", "0003_price"): [("shop", "0002_item")],
        ("shop", "0004_sale"): [("shop", "0003_price")],
        ("shop", "0005_refund"): [("shop", "0004_sale")],
        ("stock", "0001_initial"): [],
    }
    everything = {**good, "message": " ".join(n for _, n in away)}
    assert "not on the cycle" in names_cycle(call(away, output=everything)).reason
    just = {**good, "message": "0002_item -> 0003_price -> 0004_sale"}
    assert names_cycle(call(away, output=just)).ok


def test_the_raises_probe_describes_what_an_answer_raised():
    def order(graph):
        raise ValueError("loop at", ["0002_a", "0003_b"])

    assert probes.collect("raises", order, ({},), {}) == {
        "raised": True,
        "type": "ValueError",
        "value_error": True,
        "message": "loop at 0002_a 0003_b",
    }
    assert probes.collect("raises", lambda g: [], ({},), {}) == {"raised": False}


def test_leaves_and_conflicts_come_from_djangos_graph():
    g = {
        ("library", "0001_initial"): [],
        ("library", "0002_book_pages"): [("library", "0001_initial")],
        ("library", "0002_book_isbn"): [("library", "0001_initial")],
        ("loans", "0001_initial"): [("library", "0002_book_pages")],
    }
    leaves = RULES.resolve({"name": "leaves_like_django"})
    conflicts = RULES.resolve({"name": "conflicts_like_django"})
    right = {"loans": ["0001_initial"], "library": ["0002_book_pages", "0002_book_isbn"]}
    assert leaves(call(g, output=right))[0]
    assert leaves(call(g, output={"loans": {"0001_initial"}, "library": {"0002_book_pages", "0002_book_isbn"}}))[0]
    assert not leaves(call(g, output={"library": ["0002_book_pages"], "loans": ["0001_initial"]}))[0]
    assert conflicts(call(g, output={"library": ["0002_book_isbn", "0002_book_pages"]}))[0]
    assert not conflicts(call(g, output=right))[0]


def test_a_merge_migration_must_join_exactly_the_two_leaves():
    rule = RULES.resolve({"name": "joins_both_leaves"})
    graph = {
        ("library", "0001_initial"): [],
        ("library", "0002_book_pages"): [("library", "0001_initial")],
        ("library", "0003_book_isbn"): [("library", "0002_book_pages")],
        ("library", "0003_book_subtitle"): [("library", "0002_book_pages")],
    }
    both = [("library", "0003_book_subtitle"), ("library", "0003_book_isbn")]
    assert rule(call(output=both, graph=graph, app="library", merge=("library", "0004_merge")))[0]
    one = rule(call(output=both[:1], graph=graph, app="library", merge=("library", "0004_merge")))
    assert not one[0] and "more than one leaf" in one[1]
    extra = rule(
        call(
            output=[*both, ("library", "0002_book_pages")], graph=graph, app="library", merge=("library", "0004_merge")
        )
    )
    assert not extra[0] and "exactly" in extra[1]
    assert (
        "not a migration"
        in rule(call(output=[("library", "0009_x")], graph=graph, app="library", merge=("library", "0004_merge")))[1]
    )


# ---------------------------------------------------------------- blanks


def test_a_data_migration_function_must_fetch_and_return_the_historical_model():
    registry = {"library.Book": ["title"]}

    def verdict(fn):
        facts = probes.collect("apps", fn, (), {"models": registry})
        return returns_historical_model(Call(args=[], output=facts, params={"model": "library.Book"}))

    assert verdict(lambda apps, se: apps.get_model("library", "Book")).ok
    assert verdict(lambda apps, se: apps.get_model(app_label="library", model_name="Book")).ok
    assert verdict(lambda apps, se: apps.get_model("library.book")).ok
    assert "never called" in verdict(lambda apps, se: None).reason
    assert "does not return" in verdict(lambda apps, se: (apps.get_model("library", "Book"), 1)[1]).reason
    # a forged fact sheet only passes if it describes the right answer: the right answer itself
    forged = {"calls": [], "returned": {"$object": "bool"}, "registry_model": "library.Book"}
    assert not returns_historical_model(Call(args=[], output=forged, params={"model": "library.Book"})).ok


def test_the_reverse_of_a_runpython_must_be_djangos_noop():
    rule = RULES.resolve({"name": "reverse_does_nothing"})

    def set_default_loan_days(apps, schema_editor):
        pass

    def verdict(op):
        return rule(Call(args=[], output=to_json(op), params={"forwards": "set_default_loan_days"}))

    assert verdict(migrations.RunPython(set_default_loan_days, migrations.RunPython.noop))[0]
    assert verdict(migrations.RunPython(code=set_default_loan_days, reverse_code=migrations.RunPython.noop))[0]
    assert "cannot be unapplied" in verdict(migrations.RunPython(set_default_loan_days))[1]
    assert "ready-made" in verdict(migrations.RunPython(set_default_loan_days, lambda a, s: None))[1]
    assert "forwards" in verdict(migrations.RunPython(lambda a, s: None, migrations.RunPython.noop))[1]


def test_blanks_and_quiz_letters():
    assert migration_pairs(call(output=[("library", "0002_book_pages")])).ok
    assert choice(Call(args=[], output=" B ", expect="b")).ok
    assert choice(Call(args=[], output="c", expect="b")).reason == "not the right choice"
    assert "one of the letters" in choice(Call(args=[], output="z", params={"choices": "abcd"})).reason
    assert choice(Call(args=[], output="a", params={"choices": "abcd"})).ok  # the form only


# ------------------------------------------------------------------ columns


def test_replay_is_judged_against_djangos_replay():
    rule = RULES.resolve({"name": "replays_like_django"})
    columns = {"title": "string", "pages": "integer"}
    ops = [("add", "isbn", "string"), ("rename", "pages", "page_count"), ("remove", "isbn"), ("alter", "title", "text")]
    assert rule(call(columns, ops, output={"title": "text", "page_count": "integer"}))[0]
    assert "wrong type" in rule(call(columns, ops, output={"title": "string", "page_count": "integer"}))[1]
    assert not rule(call(columns, ops, output={"title": "text"}))[0]


# ---------------------------------------------------------------- squashing


def test_a_rename_turned_into_remove_plus_add_fails_when_data_must_be_kept():
    original = [
        migrations.RenameField("book", "title", "name"),
        migrations.AlterField("book", "name", models.TextField()),
    ]
    lossy = [migrations.RemoveField("book", "title"), migrations.AddField("book", "name", models.TextField())]
    assert squashes(call(original, output=lossy, existing=BOOK, shortest=True)).ok  # the same schema, as short
    verdict = squashes(call(original, output=lossy, existing=BOOK, keep_data=True))
    assert not verdict.ok and "dropped and created again" in verdict.reason
    assert squashes(call(original, output=original, existing=BOOK, keep_data=True)).ok


def test_longer_than_djangos_optimizer_fails_when_shortest_is_asked():
    example = [
        migrations.AddField("book", "isbn", models.CharField(max_length=13)),
        migrations.AlterField("book", "isbn", models.CharField(max_length=20)),
        migrations.AddField("book", "draft", models.BooleanField(default=False)),
        migrations.RemoveField("book", "draft"),
    ]
    assert squashes(call(example, output=example, existing=BOOK)).ok
    verdict = squashes(call(example, output=example, existing=BOOK, shortest=True))
    assert not verdict.ok and "1 are enough" in verdict.reason
    best = [migrations.AddField("book", "isbn", models.CharField(max_length=20))]
    assert squashes(call(example, output=best, existing=BOOK, shortest=True)).ok


def test_wrong_schemas_and_operations_that_do_not_apply_fail():
    example = [migrations.AddField("book", "isbn", models.CharField(max_length=13))]
    assert "same final schema" in squashes(call(example, output=[], existing=BOOK)).reason
    assert (
        "do not apply" in squashes(call(example, output=[migrations.RemoveField("book", "nope")], existing=BOOK)).reason
    )
    assert "not a list of Django operations" in squashes(call(example, output=[1, 2], existing=BOOK)).reason


def _instructor_squash():
    """The instructor's squash from source/ (trusted code), without the solution markers."""
    nb = nbformat.read(SOURCE / "deep_dive.ipynb", as_version=4)
    src = next(c.source for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "answer_squash")
    namespace = {"migrations": migrations, "models": models}
    exec(re.sub(r"^\s*### (BEGIN|END) SOLUTION\n", "", src, flags=re.M), namespace)
    return namespace["squash"]


@settings(max_examples=150, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.integers(0, 2**32))
def test_the_instructor_squash_meets_all_three_rules_beyond_the_graded_inputs(seed):
    ops = random_schema_ops(random.Random(seed), {"book": ["title", "pages"]})
    out = _instructor_squash()(ops)
    assert squashes(call(ops, output=out, existing=BOOK, shortest=True, keep_data=True)).ok


# ------------------------------------------------------------ a real migrate


def test_a_real_data_migration_runs_forwards_and_backwards_on_rows():
    context = JudgeContext(local_runner)
    titles = ["Dune", "Ça, c'est la vie!"]
    assert judged(context, GOOD, titles, 0).ok and judged(context, GOOD, titles, 1).ok


def test_importing_todays_model_fails_for_real():
    imported = GOOD.replace('Book = apps.get_model("library", "Book")', "from library.models import Book")
    verdict = judged(JudgeContext(local_runner), imported, ["Dune"], 0)
    assert not verdict.ok and "no such column" in verdict.reason and "isbn" in verdict.reason


def test_broken_migrations_fail_with_djangos_message():
    context = JudgeContext(local_runner)
    no_reverse = GOOD.replace("RunPython(forwards, backwards)", "RunPython(forwards)")
    assert judged(context, no_reverse, VISIBLE, 0).ok
    backwards = judged(context, no_reverse, VISIBLE, 1)
    assert not backwards.ok and "IrreversibleError" in backwards.reason
    syntax = judged(context, GOOD.replace("def forwards", "def forwards("), VISIBLE, 0)
    assert not syntax.ok and "syntax error" in syntax.reason
    lazy = judged(context, GOOD.replace("book.save()", "pass"), VISIBLE, 0)
    assert not lazy.ok and "books is not what it should be" in lazy.reason


def test_a_migration_that_wrecks_its_database_fails_without_crashing_the_judge():
    wreck = GOOD.replace(
        '    Book = apps.get_model("library", "Book")\n    for book',
        '    import pathlib\n    pathlib.Path("db.sqlite3").write_bytes(b"junk" * 100)\n'
        '    Book = apps.get_model("library", "Book")\n    for book',
    )
    verdict = judged(JudgeContext(local_runner), wreck, VISIBLE, 0)
    assert not verdict.ok and verdict.reason


@pytest.mark.parametrize("name", ["leaves_like_django", "conflicts_like_django", "replays_like_django"])
def test_malformed_answers_fail_with_a_reason_and_never_raise_out_of_the_judge(name):
    from miglab.evidence import BadAnswer

    rule = RULES.resolve({"name": name})
    for junk in (None, 3, "x", [1, 2], {"$map": []}, {"a": 1}):
        try:
            ok, _ = rule(call({}, [], output=junk))
        except BadAnswer:
            ok = False
        assert not ok

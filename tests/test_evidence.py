"""Evidence: answers as plain JSON, the same fingerprint in the kernel and in the grader, check() itself.

No kernel here: ``check`` runs in plain Python, where it appends its evidence
to ``miglab.evidence.record.EMITTED``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import OrderedDict, defaultdict

import pytest

from miglab.evidence import check, record, valid_plan
from miglab.evidence.convert import (
    ConversionError,
    Placeholder,
    PlaceholderInput,
    digest,
    equal_json,
    from_json,
    to_json,
)
from miglab.evidence.django_setup import ensure_django

GRAPH = {("library", "0001_initial"): [], ("loans", "0001_initial"): [("library", "0001_initial")]}


@pytest.fixture(autouse=True)
def fresh_emitted():
    record.EMITTED.clear()
    yield
    record.EMITTED.clear()


def test_any_mapping_reads_as_a_dict_and_any_iterable_as_a_list():
    assert to_json(defaultdict(list, {"a": [1]})) == to_json(OrderedDict(a=[1])) == {"a": [1]}
    assert to_json((1, 2)) == to_json([1, 2]) == to_json(iter([1, 2])) == [1, 2]
    assert to_json({2, 1}) == {"$set": [1, 2]}
    graph = to_json(GRAPH)
    assert graph["$map"][0][0] == ["library", "0001_initial"]
    # keys come back hashable (tuples); values stay JSON lists
    assert from_json(graph) == {
        ("library", "0001_initial"): [],
        ("loans", "0001_initial"): [["library", "0001_initial"]],
    }


def test_django_operations_travel_as_data_and_come_back_as_django_objects():
    ensure_django()
    from django.db import migrations, models

    op = migrations.CreateModel(
        "Shelf", [("id", models.BigAutoField(primary_key=True)), ("label", models.CharField(max_length=50))]
    )
    data = to_json([op, migrations.RenameField("shelf", "label", "name")])
    back = from_json(data)
    assert isinstance(back[0], migrations.CreateModel) and back[0].fields[1][1].max_length == 50
    assert to_json(back) == data
    with pytest.raises(ValueError):  # evidence is data, never a recipe: only Django's own classes
        from_json({"$op": "os.system", "args": ["rm -rf /"], "kwargs": {}})


def test_django_values_inside_fields_and_operations_keep_what_they_say():
    ensure_django()
    from django.core.validators import MinValueValidator
    from django.db import migrations, models
    from django.db.models.functions import Now

    zero = models.IntegerField(db_default=models.Value(0), validators=[MinValueValidator(3)])
    one = models.IntegerField(db_default=models.Value(1), validators=[MinValueValidator(3)])
    assert digest(to_json(zero)) != digest(to_json(one))  # once, both read as {"$object": "Value"}
    assert from_json(to_json(zero)).db_default == models.Value(0)
    stamped = to_json(models.DateTimeField(db_default=Now()))
    assert stamped["kwargs"]["db_default"]["path"] == "django.db.models.functions.datetime.Now"
    ops = [
        migrations.AddIndex("book", models.Index(fields=["title"], name="book_title")),
        migrations.AddConstraint("book", models.CheckConstraint(condition=models.Q(pages__gt=0), name="pages")),
    ]
    back = from_json(to_json(ops))
    assert back[0].index == ops[0].index and back[1].constraint == ops[1].constraint
    assert to_json(back) == to_json(ops)
    with pytest.raises(ValueError):  # rebuilt from Django's own value modules only
        from_json({"$object": "system", "path": "os.system", "args": ["ls"], "kwargs": {}})


def test_values_that_cannot_be_evidence_are_refused_with_a_reason():
    deep: list = []
    for _ in range(100):
        deep = [deep]
    with pytest.raises(ConversionError, match="nested"):
        to_json(deep)

    def forever():
        while True:
            yield 1

    with pytest.raises(ConversionError, match="items"):
        to_json(forever())
    with pytest.raises(PlaceholderInput):
        to_json([Placeholder("find_leaves")])


def test_a_set_input_has_the_same_fingerprint_in_every_process():
    here = digest(to_json({("library", "0001_initial"), ("loans", "0001_initial"), ("shop", "0002_x")}))
    code = (
        "from miglab.evidence.convert import digest, to_json; "
        "print(digest(to_json({('library', '0001_initial'), ('loans', '0001_initial'), ('shop', '0002_x')})))"
    )
    for seed in ("1", "2", "99"):
        there = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
        ).stdout.strip()
        assert there == here


def test_lists_may_be_compared_in_any_order_only_when_asked():
    assert equal_json({"a": ["x", "y"]}, {"a": ["y", "x"]}, ignore_order=True)
    assert not equal_json({"a": ["x", "y"]}, {"a": ["y", "x"]})
    assert equal_json({"$set": ["a", "b"]}, ["b", "a"], ignore_order=True)


# ------------------------------------------------------------------ check() itself


def test_check_calls_on_a_copy_and_records_the_answer_with_the_calls_key(capsys):
    def pending(plan, applied):
        applied.add(("x", "y"))  # a student's function that changes its argument
        return [n for n in plan if n not in applied]

    applied = {("library", "0001_initial")}
    check(
        pending, [("library", "0001_initial"), ("loans", "0001_initial")], applied, expect=[("loans", "0001_initial")]
    )
    assert applied == {("library", "0001_initial")}  # the test cell's input is untouched
    [evidence] = record.EMITTED
    spec = record.describe_call(
        ([("library", "0001_initial"), ("loans", "0001_initial")], applied),
        expect=[("loans", "0001_initial")],
        rule=None,
        probe=None,
        ignore_order=False,
        forbid=(),
        params={},
    )
    assert evidence == {"key": spec["key"], "output": [["loans", "0001_initial"]]}
    assert capsys.readouterr().out.startswith("✔ pending:")


def test_a_failed_check_says_why_on_stderr_and_never_raises(capsys):
    check(lambda graph: list(reversed(list(graph))), GRAPH, rule=valid_plan)
    check(lambda graph: 1 / 0, GRAPH, expect=[])
    out = capsys.readouterr()
    assert out.out == ""
    assert "✘ <lambda>: loans.0001_initial comes before library.0001_initial, which it depends on" in out.err
    assert "raised ZeroDivisionError" in out.err
    assert record.EMITTED[1] == {
        "key": record.EMITTED[1]["key"],
        "error": {"raised": "ZeroDivisionError", "builtin": True},
    }


def test_a_public_checker_gives_instant_feedback_in_the_kernel(capsys):
    good = lambda g: [("library", "0001_initial"), ("loans", "0001_initial")]
    bad = lambda g: [("loans", "0001_initial"), ("library", "0001_initial")]
    check(good, GRAPH, rule=valid_plan)
    check(bad, GRAPH, rule=valid_plan)
    check(good, GRAPH, rule="a_rule_only_the_grader_has")
    out = capsys.readouterr()
    assert "✔ <lambda>: every migration comes after all it depends on" in out.out
    assert "comes before library.0001_initial, which it depends on" in out.err
    assert "judged when your notebook is graded" in out.out


def test_reading_test_cells_records_calls_without_touching_the_answer():
    touched = []
    with record.reading_test_cells() as calls:
        record.set_segment("hidden")
        check(touched.append, GRAPH, rule=valid_plan, forbid=["miglab"])
        record.set_segment("visible")
    assert touched == [] and record.EMITTED == []
    [call] = calls
    assert call["segment"] == "hidden" and call["rule"] == {"ref": "miglab.evidence.checkers:valid_plan"}
    assert call["forbid"] == ["miglab"] and json.dumps(call)  # plain JSON all through

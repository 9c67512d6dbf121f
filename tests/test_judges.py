"""The trusted judge on handcrafted evidence: right, wrong, malformed, missing, forged.

No kernel and no nbgrader here: notebooks are built in memory with evidence
outputs exactly as miglab.checks emits them, and judged with real Django.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import networkx as nx
import pytest
from hypothesis import HealthCheck, given, settings

from miglab import checks, judges, oracle

sys.path.insert(0, str(Path(__file__).resolve().parent / "assignment_fixtures"))
from data_migration import GOOD  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "source" / "deep_dive" / "deep_dive.ipynb"
KEY = json.loads((ROOT / "source" / "deep_dive" / "answer_key.json").read_text())


def ok(check_id, answer, **kw):
    return judges.judge_check(check_id, answer, key=KEY, **kw)


def nodes(seq):
    return [list(n) for n in seq]


def graded_cell(grade_id, *evidence, points=None):
    cell = nbformat.v4.new_code_cell("check(...)")
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True, "grade_id": grade_id,
                                 "points": points or judges.GRADED[grade_id][0], "schema_version": 3}
    cell.outputs = [nbformat.v4.new_output("display_data", data={judges.EVIDENCE_MIME: {"check": c, "answer": a}})
                    for c, a in evidence]
    return cell


def notebook(*cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = list(cells)
    return nb


# ------------------------------------------------------------------ graph


def test_any_valid_topological_order_passes_and_an_invalid_one_fails():
    graphs = oracle.GRAPH_CROSS
    differing = 0
    for g in graphs:
        dag = nx.DiGraph([(p, n) for n, ps in g.items() for p in ps])
        dag.add_nodes_from(g)
        a = list(nx.lexicographical_topological_sort(dag))
        b = list(nx.lexicographical_topological_sort(dag, key=lambda n: tuple(-ord(ch) for ch in n[1])))
        differing += a != b
        assert oracle.order_verdict(g, nodes(a))[0] and oracle.order_verdict(g, nodes(b))[0]
    assert differing >= 5  # the inputs really admit several orders
    answer = [nodes(nx.topological_sort(nx.DiGraph([(p, n) for n, ps in g.items() for p in ps]))) for g in graphs]
    assert ok("order.cross", answer).ok
    # Swap one dependency pair: now a migration runs before one it depends on.
    broken = [list(o) for o in answer]
    first = broken[0]
    node = next(n for n in first if graphs[0][tuple(n)])
    parent = list(graphs[0][tuple(node)][0])
    i, j = first.index(node), first.index(parent)
    first[i], first[j] = first[j], first[i]
    verdict = ok("order.cross", broken)
    assert not verdict.ok and "depends on" in verdict.reason


def test_order_must_list_every_migration_once():
    order = nodes(oracle.GRAPH_EXAMPLE)
    assert ok("order.example", [order]).ok
    assert not ok("order.example", [order[:-1]]).ok
    assert not ok("order.example", [order + order[-1:]]).ok


def test_cycle_reports_are_judged_on_the_names_on_the_cycle():
    g = oracle.CYCLE_EXAMPLE
    good = {"raised": True, "type": "ValueError",
            "message": "cycle: library.0002_book_pages -> loans.0001_initial -> loans.0002_loan_due"}
    assert ok("cycle.example", [good]).ok
    assert oracle.django_detects_cycle(g)
    missing = dict(good, message="cycle at loans.0001_initial")
    assert "does not name every" in ok("cycle.example", [missing]).reason
    silent = {"raised": False, "type": "", "message": ""}
    assert "no error" in ok("cycle.example", [silent]).reason
    wrong_type = dict(good, type="RuntimeError")
    assert not ok("cycle.example", [wrong_type]).ok
    bystander = oracle.CYCLE_HIDDEN[0]
    everything = {"raised": True, "type": "ValueError", "message": " ".join(n for _, n in bystander)}
    assert "not on the cycle" in oracle.cycle_verdict(bystander, everything)[1]


def test_leaves_and_conflicts_come_from_django():
    g = oracle.LEAVES_EXAMPLE
    assert oracle.django_leaves(g) == {"library": ["0002_book_isbn", "0002_book_pages"], "loans": ["0001_initial"]}
    assert ok("leaves.example", [{"loans": ["0001_initial"], "library": ["0002_book_pages", "0002_book_isbn"]}]).ok
    assert ok("conflicts.example", [{"library": ["0002_book_isbn", "0002_book_pages"]}]).ok
    assert not ok("conflicts.example", [oracle.django_leaves(g)]).ok


# ---------------------------------------------------------------- optimizer


def _add(name, field):
    return {"op": "AddField", "model_name": "book", "name": name, "field": field}


def test_a_rename_turned_into_remove_plus_add_scores_zero():
    original = [{"op": "RenameField", "model_name": "book", "old_name": "title", "new_name": "name"},
                {"op": "AlterField", "model_name": "book", "name": "name", "field": ["TextField", {}]}]
    lossy = [{"op": "RemoveField", "model_name": "book", "name": "title"}, _add("name", ["TextField", {}])]
    # Django sees the same final schema, and the lossy list is not longer than its optimizer's...
    assert oracle.project_state(lossy) == oracle.project_state(original)
    assert len(lossy) <= len(oracle.django_optimized(original))
    # ...but the rows of `title` would be lost.
    ok_, reason = oracle.squash_verdict(original, lossy, shortest=True, keep_data=True)
    assert not ok_ and "dropped and re-created" in reason
    assert oracle.squash_verdict(original, original, shortest=True, keep_data=True)[0]
    # Through the judge, on the rename check (first rename case is a bare rename):
    bare = oracle.SQUASH_RENAMES[0]
    assert ok("squash.rename_example", [bare]).ok
    lossy_bare = [{"op": "RemoveField", "model_name": "book", "name": "title"},
                  _add("name", ["CharField", {"max_length": 200}])]
    assert not ok("squash.rename_example", [lossy_bare]).ok


def test_longer_than_djangos_optimizer_scores_zero():
    example = oracle.SQUASH_EXAMPLE
    assert len(oracle.django_optimized(example)) == 1
    assert ok("squash.example", [example]).ok                 # same schema: the state check passes
    verdict = ok("squash.example_short", [example])            # but 4 > 1 operations
    assert not verdict.ok and "needs only 1" in verdict.reason
    best = [_add("isbn", ["CharField", {"max_length": 20}])]
    assert ok("squash.example_short", [best]).ok


def test_wrong_schema_and_inapplicable_operations_fail():
    assert "same final schema" in ok("squash.example", [[]]).reason
    bad_order = [{"op": "RemoveField", "model_name": "book", "name": "nope"}]
    assert "do not apply" in ok("squash.example", [bad_order]).reason
    twice = [_add("title", ["TextField", {}])]
    assert "do not apply" in ok("squash.example", [twice]).reason


def test_replay_is_judged_against_djangos_replay():
    case = oracle.REPLAY_EXAMPLE
    want = {"title": "text", "page_count": "integer"}
    assert oracle.django_replay_columns(case["columns"], case["ops"]) == want
    assert ok("replay.example", [want]).ok
    assert "wrong type" in ok("replay.example", [{"title": "string", "page_count": "integer"}]).reason
    assert not ok("replay.example", [{"title": "text"}]).ok


def _solution_squash():
    """The instructor's squash from source/ (trusted code), without the solution markers."""
    nb = nbformat.read(SOURCE, as_version=4)
    src = next(c.source for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "answer_squash")
    src = re.sub(r"^\s*### (BEGIN|END) SOLUTION\n", "", src, flags=re.M)
    oracle.ensure_django()
    from django.db import migrations, models

    ns = {"migrations": migrations, "models": models}
    exec(src, ns)
    return ns["squash"]


@settings(max_examples=150, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck))
@given(oracle._django_sequences_strategy())
def test_the_instructor_squash_meets_all_three_rules_beyond_the_graded_inputs(ops):
    squash = _solution_squash()
    out = checks._ops(squash(oracle.ops_from_json(ops)))
    assert oracle.squash_verdict(ops, out, shortest=True, keep_data=True) == (True, "same final schema")


def test_random_inputs_are_the_same_in_every_process():
    here = hashlib.sha256(json.dumps([oracle.replay_random_cases(), oracle.squash_random_cases()]).encode()).hexdigest()
    code = ("import hashlib, json; from miglab import oracle; print(hashlib.sha256(json.dumps("
            "[oracle.replay_random_cases(), oracle.squash_random_cases()]).encode()).hexdigest())")
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "123", "PATH": ""}).stdout.strip()
    assert here == there
    assert len(oracle.replay_random_cases()) == 40 and len(oracle.squash_random_cases()) == 40
    assert sum(len(oracle.django_optimized(c)) < len(c) for c in oracle.squash_random_cases()) >= 10


# ---------------------------------------------------------------- blanks


def test_blanks():
    assert ok("deps.loans", [["library", "0002_book_pages"]]).ok
    assert "empty" in ok("deps.loans", []).reason
    assert not ok("deps.loans", [["loans", "0001_initial"]]).ok
    assert ok("merge", [["library", "0003_book_subtitle"], ["library", "0003_book_isbn"]]).ok
    assert "leaf nodes" in ok("merge", [["library", "0003_book_isbn"]]).reason
    assert "not a migration" in ok("merge", [["library", "0003_nope"], ["library", "0003_book_isbn"]]).reason
    assert ok("get_model", {"calls": [["library", "Book"]], "historical": True}).ok
    assert ok("get_model", {"calls": [["library.Book"]], "historical": True}).ok
    assert not ok("get_model", {"calls": [], "historical": False}).ok
    assert not ok("get_model", {"calls": [["loans", "Loan"]], "historical": True}).ok
    assert ok("reverse", {"reverse": "noop", "forward": "given"}).ok
    assert "cannot be unapplied" in ok("reverse", {"reverse": "none", "forward": "given"}).reason
    assert ok("pending.example", [[["library", "0002_book_pages"], ["loans", "0001_initial"],
                                   ["library", "0003_book_isbn"]]]).ok
    assert "plan order" in ok("pending.example", [[["loans", "0001_initial"], ["library", "0002_book_pages"],
                                                   ["library", "0003_book_isbn"]]]).reason


# ---------------------------------------------------------------- malformed


@pytest.mark.parametrize("check_id, answer", [
    ("order.example", "library.0001_initial"),
    ("order.example", [[["library", 1]]]),
    ("order.example", [[["library", "0001_initial", "x"]]]),
    ("order.example", [[[True, "0001_initial"]]]),
    ("order.example", [[]] * 5),
    ("pending.example", None),
    ("pending.example", [[["library"] * 2] * 10_000]),
    ("leaves.example", [{"library": "0002_book_isbn"}]),
    ("leaves.example", [[["library", ["0001_initial"]]]]),
    ("cycle.example", [{"raised": 1, "type": "ValueError", "message": "x"}]),
    ("cycle.example", [{"raised": True, "type": "ValueError"}]),
    ("replay.example", [{"title": 3}]),
    ("squash.example", [[{"op": "RunSQL", "sql": "DROP TABLE x"}]]),
    ("squash.example", [[{"op": "AddField", "model_name": "book", "name": "x",
                          "field": ["ForeignKey", {"to": "auth.User"}]}]]),
    ("squash.example", [[{"op": "AddField", "model_name": "book", "name": "x",
                          "field": ["IntegerField", {"default": 1.5}]}]]),
    ("squash.example", [[{"op": "AddField", "model_name": "book", "name": "x; DROP",
                          "field": ["IntegerField", {}]}]]),
    ("squash.example", [[{"op": "AddField", "model_name": "book", "name": "x", "extra": 1,
                          "field": ["IntegerField", {}]}]]),
    ("squash.example", [[{"op": "AddField", "model_name": "book", "name": "x",
                          "field": ["CharField", {"max_length": True}]}]]),
    ("get_model", {"calls": "library.Book", "historical": True}),
    ("get_model", {"calls": [["library", "Book"]], "historical": "yes"}),
    ("reverse", "noop"),
    ("datamig.forward.visible", "from django.db import migrations"),
    ("datamig.forward.visible", {"source": 42}),
    ("quiz.q01", "bb"),
    ("quiz.q01", ["b"]),
    ("no.such.check", []),
])
def test_malformed_evidence_fails_with_a_reason_and_never_raises(check_id, answer):
    verdict = ok(check_id, answer)
    assert verdict.ok is False and verdict.reason


def test_quiz_needs_the_key_and_the_key_is_not_in_the_package():
    assert ok("quiz.q01", KEY["q01"]).ok
    wrong = next(letter for letter in "abcd" if letter != KEY["q01"])
    assert ok("quiz.q01", wrong).reason == "not the right choice"
    with pytest.raises(judges.KeyUnavailable):
        judges.judge_check("quiz.q01", KEY["q01"])
    assert len(KEY) == 15
    package = "".join(p.read_text() for p in (ROOT / "miglab").rglob("*.py"))
    assert "answer_key.json" in package  # only its path
    assert not re.search(r'["\']q01["\']\s*:\s*["\'][a-d]["\']', package)


# ---------------------------------------------------------------- notebook


def test_judge_notebook_reads_only_each_cells_own_evidence():
    right = [[["library", "0002_book_pages"], ["loans", "0001_initial"], ["library", "0003_book_isbn"]]]
    hidden = [oracle.pending_expected(c) for c in oracle.PENDING_HIDDEN]
    merge = [["library", "0003_book_isbn"], ["library", "0003_book_subtitle"]]
    nb = notebook(
        graded_cell("pending_basic", ("pending.example", right), ("pending.hidden", hidden)),
        # Evidence for pending_edge placed in another cell does not count for it.
        graded_cell("deps_loans", ("deps.loans", [["library", "0002_book_pages"]]),
                  ("pending.edge", [oracle.pending_expected(c) for c in oracle.PENDING_EDGE])),
        graded_cell("pending_edge"),
        graded_cell("quiz_q01", ("quiz.q01", KEY["q01"])),
        graded_cell("merge_deps", ("merge", merge), ("merge", merge)),
    )
    v = judges.judge_notebook(nb, key=KEY)
    assert v["pending_basic"].score == 2.0
    assert v["deps_loans"].score == 1.0
    assert v["pending_edge"].score == 0.0 and "no result was produced" in v["pending_edge"].reason
    assert v["quiz_q01"].score == 1.0
    assert v["merge_deps"].score == 0.0 and "more than one" in v["merge_deps"].reason
    assert v["order_cross"].score == 0.0 and "missing" in v["order_cross"].reason
    assert judges.total(v) == (4.0, 47.0)
    # Without the key file the quiz cannot score.
    assert judges.judge_notebook(nb, key_path=ROOT / "no-such-key.json")["quiz_q01"].score == 0.0


def test_judge_notebook_survives_garbage():
    nb = notebook(graded_cell("pending_basic", ("pending.example", {"a": [1, {"b": float("nan")}]})))
    nb.cells[0].outputs.append({"output_type": "display_data", "data": {judges.EVIDENCE_MIME: "not json {"}})
    nb.cells[0].outputs.append({"output_type": "display_data", "data": {judges.EVIDENCE_MIME: [1, 2]}})
    nb.cells[0].outputs.append({"output_type": "stream", "name": "stdout", "text": "✔ all right"})
    v = judges.judge_notebook(nb, key=KEY)
    assert v["pending_basic"].score == 0.0 and "malformed" in v["pending_basic"].reason
    assert judges.total(judges.judge_notebook({"cells": "nope"}, key=KEY)) == (0.0, 47.0)


def test_points_in_the_source_notebook_match_the_judge():
    nb = nbformat.read(SOURCE, as_version=4)
    meta = [c.metadata["nbgrader"] for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert {m["grade_id"]: m["points"] for m in meta} == {g: p for g, (p, _) in judges.GRADED.items()}
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in judges.GRADED:
            for cid in judges.GRADED[gid][1]:
                assert f'check("{cid}"' in cell.source


# ---------------------------------------------------------------- data migration



def test_a_real_data_migration_runs_forwards_and_backwards_on_rows():
    titles = ["Dune", "Ça, c'est la vie!"]
    result = judges.run_untrusted_migration(GOOD, titles)
    assert [r[1:] for r in result["forward"]["rows"]] == [["Dune", "dune"], ["Ça, c'est la vie!", "ca-cest-la-vie"]]
    assert result["forward"]["applied"] == ["0001_initial", "0002_book_slug", "0003_fill_slugs"]
    assert [r[2] for r in result["backward"]["rows"]] == ["", ""]
    assert result["backward"]["applied"] == ["0001_initial", "0002_book_slug"]
    assert oracle.datamig_verdict(result, titles, "forward")[0]
    assert oracle.datamig_verdict(result, titles, "backward")[0]


def test_importing_todays_model_fails_for_real():
    imported = GOOD.replace('Book = apps.get_model("library", "Book")', "from library.models import Book")
    result = judges.run_untrusted_migration(imported, ["Dune"])
    ok_, reason = oracle.datamig_verdict(result, ["Dune"], "forward")
    assert not ok_ and "no such column" in reason and "isbn" in reason


def test_broken_migrations_fail_with_django_s_message():
    no_reverse = GOOD.replace("RunPython(forwards, backwards)", "RunPython(forwards)")
    result = judges.run_untrusted_migration(no_reverse, ["Dune"])
    assert oracle.datamig_verdict(result, ["Dune"], "forward")[0]
    ok_, reason = oracle.datamig_verdict(result, ["Dune"], "backward")
    assert not ok_ and "IrreversibleError" in reason
    syntax = judges.run_untrusted_migration(GOOD.replace("def forwards", "def forwards("), ["Dune"])
    assert "syntax error" in oracle.datamig_verdict(syntax, ["Dune"], "forward")[1]
    # A forged evidence payload is only text: the judge runs it and sees nothing was filled.
    lazy = GOOD.replace("book.save()", "pass")
    verdict = ok("datamig.forward.visible", {"source": lazy})
    assert not verdict.ok and "wrong slug" in verdict.reason


def test_a_migration_that_wrecks_its_database_fails_without_crashing_the_judge():
    wreck = GOOD.replace(
        '    Book = apps.get_model("library", "Book")\n    for book',
        '    import pathlib\n    pathlib.Path("db.sqlite3").write_bytes(b"junk" * 100)\n'
        '    Book = apps.get_model("library", "Book")\n    for book')
    verdict = ok("datamig.forward.hidden", {"source": wreck})
    assert not verdict.ok and verdict.reason
    nb = notebook(graded_cell("datamig_forward", ("datamig.forward.visible", {"source": wreck}),
                              ("datamig.forward.hidden", {"source": wreck})))
    assert judges.judge_notebook(nb, key=KEY)["datamig_forward"].score == 0.0


def test_an_error_instead_of_an_answer_scores_zero_with_its_message():
    cell = graded_cell("pending_edge")
    cell.outputs = [nbformat.v4.new_output("display_data", data={judges.EVIDENCE_MIME: {
        "check": "pending.edge", "answer": None, "error": "pending_migrations raised ValueError on one of the inputs:"}})]
    v = judges.judge_notebook(notebook(cell), key=KEY)["pending_edge"]
    assert v.score == 0.0 and "raised ValueError" in v.reason
    # An "error" next to a real answer is ignored: the answer is judged.
    cell.outputs[0]["data"][judges.EVIDENCE_MIME] = {
        "check": "pending.edge", "answer": [oracle.pending_expected(c) for c in oracle.PENDING_EDGE], "error": "x"}
    assert judges.judge_notebook(notebook(cell), key=KEY)["pending_edge"].score == 1.0


def test_the_command_line_prints_each_cells_verdict(tmp_path, capsys):
    path = tmp_path / "nb.ipynb"
    nbformat.write(notebook(graded_cell("deps_loans", ("deps.loans", [["library", "0002_book_pages"]]))), path)
    assert judges.main([str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)[str(path)]
    assert report["score"] == 1.0 and report["max_score"] == 47.0
    assert report["cells"]["deps_loans"]["score"] == 1.0

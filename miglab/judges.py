"""The trusted judge of the deep_dive assignment.

The learner's kernel only produces evidence (see ``miglab.checks``); the grade
is decided here, in a process that never imports or runs learner code:

* :func:`judge_notebook` reads an autograded notebook, takes the evidence found
  in each graded test cell's own outputs (matched by the cell's nbgrader
  ``grade_id``) and recomputes that cell's score from scratch.
* Every rule works on plain JSON validated strictly here (anything unexpected
  scores 0 for that check, with a reason), against inputs this side knows
  itself, with Django as the oracle (``miglab.oracle``).
* Quiz keys live in ``source/deep_dive/answer_key.json`` only (never in
  ``release/`` nor in this package); without the key a quiz check cannot pass.
* The live data migration is not taken on trust: the migration's text is run
  again with real ``migrate`` in a fresh lab, in a subprocess
  (:func:`run_untrusted_migration`), and the rows are read from SQLite here.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from . import oracle

EVIDENCE_MIME = "application/vnd.miglab.evidence+json"
ASSIGNMENT = "deep_dive"
DEFAULT_KEY = Path(__file__).resolve().parent.parent / "source" / ASSIGNMENT / "answer_key.json"

# Quiz question id -> the letters a learner may answer.
QUIZ_CHOICES = {f"q{i:02d}": "abcd" for i in range(1, 16)}

# grade_id -> (points, checks that must all pass). Cells split where checks are independent.
GRADED: dict[str, tuple[int, list[str]]] = {
    "pending_basic": (2, ["pending.example", "pending.hidden"]),
    "pending_edge": (1, ["pending.edge"]),
    "deps_loans": (1, ["deps.loans"]),
    "get_model": (1, ["get_model"]),
    "reverse_arg": (1, ["reverse"]),
    "merge_deps": (1, ["merge"]),
    "order_basic": (2, ["order.example", "order.hidden"]),
    "order_cross": (2, ["order.cross"]),
    "order_cycle": (2, ["cycle.example", "cycle.hidden"]),
    "leaves": (2, ["leaves.example", "leaves.hidden"]),
    "conflicts": (1, ["conflicts.example", "conflicts.hidden"]),
    "replay_basic": (2, ["replay.example", "replay.hidden"]),
    "replay_random": (2, ["replay.random"]),
    "squash_state": (2, ["squash.example", "squash.hidden"]),
    "squash_short": (2, ["squash.example_short", "squash.short"]),
    "squash_rename": (2, ["squash.rename_example", "squash.rename"]),
    "squash_random": (2, ["squash.random"]),
    "datamig_forward": (2, ["datamig.forward.visible", "datamig.forward.hidden"]),
    "datamig_backward": (2, ["datamig.backward.visible", "datamig.backward.hidden"]),
}
GRADED.update({f"quiz_{q}": (1, [f"quiz.{q}"]) for q in QUIZ_CHOICES})
TOTAL_POINTS = sum(p for p, _ in GRADED.values())

MAX_ITEMS = 500  # no answer list in this assignment is longer; longer evidence is refused
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")


class KeyUnavailable(Exception):
    """The quiz key is not available in this process (always so in a learner's kernel)."""


class BadEvidence(ValueError):
    """Evidence whose structure is not what this check produces."""


@dataclass(frozen=True)
class NoAnswer:
    """Evidence that the learner's code gave no usable answer (it raised, say): always a failure."""

    message: str


@dataclass(frozen=True)
class CheckVerdict:
    ok: bool
    reason: str


@dataclass(frozen=True)
class Verdict:
    score: float
    max_score: float
    reason: str


# ------------------------------------------------------------ validation


def _list(x, what, max_len=MAX_ITEMS) -> list:
    if type(x) is not list:
        raise BadEvidence(f"{what} should be a list")
    if len(x) > max_len:
        raise BadEvidence(f"{what} is too long")
    return x


def _s(x, what, max_len=300) -> str:
    if type(x) is not str or len(x) > max_len:
        raise BadEvidence(f"{what} should be a short string")
    return x


def _nodes(x, what="the answer") -> list[tuple[str, str]]:
    out = []
    for n in _list(x, what):
        pair = _list(n, "each migration", 2)
        if len(pair) != 2:
            raise BadEvidence("each migration should be an [app, name] pair")
        out.append((_s(pair[0], "an app label"), _s(pair[1], "a migration name")))
    return out


def _app_map(x) -> dict[str, list[str]]:
    if type(x) is not dict or len(x) > MAX_ITEMS:
        raise BadEvidence("the answer should map app labels to lists of names")
    return {_s(k, "an app label"): sorted(_s(n, "a migration name") for n in _list(v, "leaf names"))
            for k, v in x.items()}


def _columns(x) -> dict[str, str]:
    if type(x) is not dict or len(x) > MAX_ITEMS:
        raise BadEvidence("the answer should map column names to types")
    return {_s(k, "a column name"): _s(v, "a column type") for k, v in x.items()}


def _field(x) -> list:
    pair = _list(x, "a field", 2)
    if len(pair) != 2 or pair[0] not in oracle.FIELD_CLASSES or type(pair[1]) is not dict:
        raise BadEvidence("a field should be [class name, options]")
    kwargs = {}
    for k, v in pair[1].items():
        allowed = oracle.FIELD_KWARGS.get(k)
        allowed = allowed if isinstance(allowed, tuple) else (allowed,)
        if type(v) not in allowed or (type(v) is str and len(v) > 100) or (type(v) is int and abs(v) > 10**6):
            raise BadEvidence(f"unexpected field option {k!r}")
        kwargs[k] = v
    return [pair[0], kwargs]


def _name(x, what) -> str:
    s = _s(x, what, 100)
    if not NAME.fullmatch(s):
        raise BadEvidence(f"{what} should be a Python identifier")
    return s


def _ops(x) -> list[dict]:
    out = []
    for op in _list(x, "the squashed operations", 200):
        if type(op) is not dict or op.get("op") not in oracle.OP_KEYS:
            raise BadEvidence("each operation should be one of the six allowed kinds")
        kind = op["op"]
        keys = oracle.OP_KEYS[kind]
        if set(op) != {"op", *keys}:
            raise BadEvidence(f"{kind} has unexpected or missing parts")
        clean: dict = {"op": kind}
        for key in keys:
            if key == "field":
                clean[key] = _field(op[key])
            elif key == "fields":
                fields = []
                for pair in _list(op[key], "CreateModel fields", 50):
                    pair = _list(pair, "a (name, field) pair", 2)
                    if len(pair) != 2:
                        raise BadEvidence("CreateModel fields should be [name, field] pairs")
                    fields.append([_name(pair[0], "a field name"), _field(pair[1])])
                clean[key] = fields
            else:
                clean[key] = _name(op[key], f"{kind}.{key}")
        out.append(clean)
    return out


def _per_case(answer, n: int, convert) -> list:
    items = _list(answer, "the answer")
    if len(items) != n:
        raise BadEvidence(f"expected results for {n} inputs, found {len(items)}")
    return [convert(a) for a in items]


# ----------------------------------------------------------------- rules


def _all(results, label) -> CheckVerdict:
    for i, (ok, reason) in enumerate(results, 1):
        if not ok:
            return CheckVerdict(False, f"{label} {i}: {reason}" if len(results) > 1 else reason)
    return CheckVerdict(True, f"{len(results)} input(s) right" if len(results) > 1 else "right")


def _pending_rule(cases):
    def rule(answer):
        got = _per_case(answer, len(cases), _nodes)
        results = []
        for case, g in zip(cases, got):
            want = [tuple(n) for n in oracle.pending_expected(case)]
            if g == want:
                results.append((True, ""))
            elif sorted(g) == sorted(want):
                results.append((False, "the right migrations, but not in plan order"))
            else:
                results.append((False, "not the migrations that still need applying"))
        return _all(results, "plan")
    return rule


def _order_rule(graphs):
    def rule(answer):
        got = _per_case(answer, len(graphs), _nodes)
        return _all([oracle.order_verdict(g, o) for g, o in zip(graphs, got)], "graph")
    return rule


def _cycle_answer(x) -> dict:
    if type(x) is not dict or set(x) != {"raised", "type", "message"} or type(x["raised"]) is not bool:
        raise BadEvidence("a cycle result should say whether an error was raised")
    return {"raised": x["raised"], "type": _s(x["type"], "the error type", 100),
            "message": _s(x["message"], "the error message", 2000)}


def _cycle_rule(graphs):
    def rule(answer):
        got = _per_case(answer, len(graphs), _cycle_answer)
        return _all([oracle.cycle_verdict(g, a) for g, a in zip(graphs, got)], "graph")
    return rule


def _map_rule(graphs, oracle_fn, what):
    def rule(answer):
        got = _per_case(answer, len(graphs), _app_map)
        results = []
        for g, a in zip(graphs, got):
            want = oracle_fn(g)
            results.append((a == want, "" if a == want else f"not the {what} Django finds"))
        return _all(results, "graph")
    return rule


def _replay_rule(cases_fn):
    def rule(answer):
        cases = cases_fn()
        got = _per_case(answer, len(cases), _columns)
        results = []
        for case, a in zip(cases, got):
            want = oracle.django_replay_columns(case["columns"], case["ops"])
            if a == want:
                results.append((True, ""))
            elif set(a) == set(want):
                results.append((False, "the right column names, but a wrong type"))
            else:
                results.append((False, "not the final set of columns"))
        return _all(results, "sequence")
    return rule


def _squash_rule(cases_fn, *, shortest, keep_data):
    def rule(answer):
        cases = cases_fn()
        got = _per_case(answer, len(cases), _ops)
        return _all([oracle.squash_verdict(c, g, shortest=shortest, keep_data=keep_data)
                     for c, g in zip(cases, got)], "sequence")
    return rule


def _deps_rule(answer):
    got = _nodes(answer, "the dependencies")
    want = [tuple(n) for n in oracle.LOANS_DEPENDENCIES_KEY]
    if got == want:
        return CheckVerdict(True, "loans waits for the migration that made Book")
    if not got:
        return CheckVerdict(False, "the list is empty: nothing makes Book's table exist first")
    if any(a != "library" for a, _ in got):
        return CheckVerdict(False, "the Loan model points at library.Book: depend on a library migration")
    return CheckVerdict(False, "not the dependency makemigrations writes (the app's latest migration)")


def _merge_rule(answer):
    got = _nodes(answer, "the dependencies")
    ok, reason = oracle.merge_verdict([list(n) for n in got])
    return CheckVerdict(ok, reason)


def _get_model_rule(answer):
    if type(answer) is not dict or set(answer) != {"calls", "historical"} or type(answer["historical"]) is not bool:
        raise BadEvidence("unexpected get_model evidence")
    calls = [[_s(a, "an argument") for a in _list(c, "a call", 4)] for c in _list(answer["calls"], "calls", 20)]
    if not calls:
        return CheckVerdict(False, "the function never called apps.get_model")
    for c in calls:
        normal = [a.lower() for a in c]
        if normal not in (["library", "book"], ["library.book"]):
            return CheckVerdict(False, "apps.get_model was asked for something other than library's Book")
    if not answer["historical"]:
        return CheckVerdict(False, "the function does not return the model that apps.get_model gave")
    return CheckVerdict(True, "the historical Book model, fetched from apps")


def _reverse_rule(answer):
    if type(answer) is not dict or set(answer) != {"reverse", "forward"}:
        raise BadEvidence("unexpected RunPython evidence")
    if answer["forward"] != "given":
        return CheckVerdict(False, "keep set_default_loan_days as the forwards function")
    r = answer["reverse"]
    if r == "noop":
        return CheckVerdict(True, "reversible, and undoing does nothing")
    if r == "none":
        return CheckVerdict(False, "without a reverse function the migration cannot be unapplied")
    return CheckVerdict(False, "nothing needs undoing here: use Django's ready-made do-nothing function")


def _datamig_rule(titles, side):
    def rule(answer, runner=None):
        if type(answer) is not dict or set(answer) != {"source"}:
            raise BadEvidence("unexpected data migration evidence")
        source = _s(answer["source"], "the migration text", 50_000)
        result = (runner or run_untrusted_migration)(source, titles)
        ok, reason = oracle.datamig_verdict(result, titles, side)
        return CheckVerdict(ok, reason)
    return rule


VISIBLE_TITLES = oracle.DATAMIG_VISIBLE_ROWS
HIDDEN_TITLES = oracle.DATAMIG_HIDDEN_ROWS

RULES = {
    "pending.example": _pending_rule([oracle.PENDING_EXAMPLE]),
    "pending.hidden": _pending_rule(oracle.PENDING_HIDDEN),
    "pending.edge": _pending_rule(oracle.PENDING_EDGE),
    "deps.loans": _deps_rule,
    "get_model": _get_model_rule,
    "reverse": _reverse_rule,
    "merge": _merge_rule,
    "order.example": _order_rule([oracle.GRAPH_EXAMPLE]),
    "order.hidden": _order_rule(oracle.GRAPH_HIDDEN),
    "order.cross": _order_rule(oracle.GRAPH_CROSS),
    "cycle.example": _cycle_rule([oracle.CYCLE_EXAMPLE]),
    "cycle.hidden": _cycle_rule(oracle.CYCLE_HIDDEN),
    "leaves.example": _map_rule([oracle.LEAVES_EXAMPLE], oracle.django_leaves, "leaf nodes"),
    "leaves.hidden": _map_rule(oracle.LEAVES_HIDDEN, oracle.django_leaves, "leaf nodes"),
    "conflicts.example": _map_rule([oracle.LEAVES_EXAMPLE], oracle.django_conflicts, "conflicts"),
    "conflicts.hidden": _map_rule(oracle.LEAVES_HIDDEN, oracle.django_conflicts, "conflicts"),
    "replay.example": _replay_rule(lambda: [oracle.REPLAY_EXAMPLE]),
    "replay.hidden": _replay_rule(lambda: oracle.REPLAY_HIDDEN),
    "replay.random": _replay_rule(oracle.replay_random_cases),
    "squash.example": _squash_rule(lambda: [oracle.SQUASH_EXAMPLE], shortest=False, keep_data=False),
    "squash.hidden": _squash_rule(lambda: oracle.SQUASH_HIDDEN, shortest=False, keep_data=False),
    "squash.example_short": _squash_rule(lambda: [oracle.SQUASH_EXAMPLE], shortest=True, keep_data=False),
    "squash.short": _squash_rule(lambda: oracle.SQUASH_HIDDEN + oracle.SQUASH_RENAMES, shortest=True,
                                 keep_data=False),
    "squash.rename_example": _squash_rule(lambda: oracle.SQUASH_RENAMES[:1], shortest=False, keep_data=True),
    "squash.rename": _squash_rule(lambda: oracle.SQUASH_RENAMES, shortest=False, keep_data=True),
    "squash.random": _squash_rule(oracle.squash_random_cases, shortest=True, keep_data=True),
    "datamig.forward.visible": _datamig_rule(VISIBLE_TITLES, "forward"),
    "datamig.forward.hidden": _datamig_rule(HIDDEN_TITLES, "forward"),
    "datamig.backward.visible": _datamig_rule(VISIBLE_TITLES, "backward"),
    "datamig.backward.hidden": _datamig_rule(HIDDEN_TITLES, "backward"),
}


def judge_check(check_id: str, answer, *, key: dict | None = None, migration_runner=None) -> CheckVerdict:
    """Judge one check's evidence. Never raises for bad evidence: that is a failed check."""
    if check_id.startswith("quiz."):
        qid = check_id[5:]
        if key is None:
            raise KeyUnavailable(check_id)
        fmt = format_verdict(check_id, answer)
        if not fmt.ok:
            return fmt
        right = key.get(qid)
        if type(right) is not str:
            return CheckVerdict(False, "this question has no answer key")
        return CheckVerdict(answer == right, "right" if answer == right else "not the right choice")
    rule = RULES.get(check_id)
    if rule is None:
        return CheckVerdict(False, f"unknown check {check_id!r}")
    try:
        if check_id.startswith("datamig."):
            return rule(answer, migration_runner)
        return rule(answer)
    except BadEvidence as e:
        return CheckVerdict(False, f"the recorded result is malformed: {e}")
    except RecursionError:
        return CheckVerdict(False, "the recorded result is malformed: nested too deeply")
    except Exception as e:  # never let one odd result crash the judging of a whole notebook
        return CheckVerdict(False, f"the recorded result could not be judged ({type(e).__name__})")


def format_verdict(check_id: str, answer) -> CheckVerdict:
    """Only what can be known without the key: is the quiz answer one of the letters?"""
    qid = check_id.removeprefix("quiz.")
    letters = QUIZ_CHOICES.get(qid, "")
    if type(answer) is not str or len(answer) != 1 or answer not in letters:
        return CheckVerdict(False, f"answer with one of the letters {', '.join(letters)}")
    return CheckVerdict(True, "answer recorded; it is marked when your notebook is graded")


# ------------------------------------------------------------- data migration

_migration_cache: dict[tuple[str, tuple[str, ...]], dict] = {}


def run_untrusted_migration(source_text: str, titles: list[str] | None = None) -> dict:
    """Run a learner's ``0003_fill_slugs`` migration text forwards and backwards in a fresh lab.

    Learner code only ever runs inside ``oracle._untrusted_manage`` (a ``manage.py``
    subprocess; the isolation layer hardens that one function). This process
    reads the resulting rows from SQLite itself. Returns plain data
    (see :func:`miglab.oracle.run_migration_scenario`).
    """
    titles = list(HIDDEN_TITLES if titles is None else titles)
    cache_key = (source_text, tuple(titles))
    if cache_key not in _migration_cache:
        _migration_cache[cache_key] = oracle.run_migration_scenario(source_text, titles)
    return _migration_cache[cache_key]


# ------------------------------------------------------------------ notebook


def load_key(path: str | Path | None = None) -> dict:
    path = Path(path or os.environ.get("MIGLAB_ANSWER_KEY") or DEFAULT_KEY)
    data = json.loads(path.read_text())
    if type(data) is not dict or not all(type(k) is str and type(v) is str for k, v in data.items()):
        raise ValueError(f"{path}: the answer key should map question ids to letters")
    return data


def evidence_of(cell) -> tuple[dict[str, object], set[str]]:
    """The evidence in one cell's outputs: {check id: answer}, and ids seen more than once."""
    found: dict[str, object] = {}
    dup: set[str] = set()
    outputs = cell.get("outputs") if isinstance(cell, dict) else None
    if type(outputs) is not list:
        return found, dup
    for out in outputs:
        if not isinstance(out, dict) or out.get("output_type") != "display_data":
            continue
        data = out.get("data")
        if not isinstance(data, dict) or EVIDENCE_MIME not in data:
            continue
        payload = data[EVIDENCE_MIME]
        if isinstance(payload, str):  # some writers store JSON mime data as text
            try:
                payload = json.loads(payload)
            except ValueError:
                continue
        if not isinstance(payload, dict) or type(payload.get("check")) is not str or "answer" not in payload:
            continue
        cid = payload["check"]
        if cid in found:
            dup.add(cid)
        if type(payload.get("error")) is str and payload["answer"] is None:
            found[cid] = NoAnswer(payload["error"][:300])
        else:
            found[cid] = _plain(payload["answer"])
    return found, dup


def _plain(x, depth=0):
    """A deep copy made only of JSON types (nbformat's NotebookNode becomes dict)."""
    if depth > 20:
        raise RecursionError
    if isinstance(x, dict):
        return {str(k): _plain(v, depth + 1) for k, v in x.items()}
    if isinstance(x, list):
        return [_plain(v, depth + 1) for v in x]
    if type(x) in (str, int, bool) or x is None:
        return x
    if type(x) is float:
        return x if math.isfinite(x) else None
    return repr(type(x))


def judge_notebook(nb, *, key: dict | None = None, key_path=None, migration_runner=None) -> dict[str, Verdict]:
    """Recompute the score of every graded test cell from its evidence alone."""
    if key is None:
        try:
            key = load_key(key_path)
        except (OSError, ValueError):
            key = {}
    verdicts: dict[str, Verdict] = {}
    cells = nb.get("cells", []) if isinstance(nb, dict) else []
    seen: set[str] = set()
    for cell in cells if type(cells) is list else []:
        meta = cell.get("metadata", {}).get("nbgrader", {}) if isinstance(cell, dict) else {}
        if not isinstance(meta, dict) or not meta.get("grade") or meta.get("solution"):
            continue
        gid = meta.get("grade_id")
        if type(gid) is not str or gid not in GRADED or gid in seen:
            continue
        seen.add(gid)
        points, checks = GRADED[gid]
        try:
            found, dup = evidence_of(cell)
        except RecursionError:
            found, dup = {}, set(checks)
        verdicts[gid] = _judge_cell(points, checks, found, dup, key, migration_runner)
    for gid, (points, _) in GRADED.items():
        if gid not in verdicts:
            verdicts[gid] = Verdict(0.0, float(points), "the test cell is missing from the notebook")
    return verdicts


def _judge_cell(points, checks, found, dup, key, runner) -> Verdict:
    for cid in checks:
        if cid in dup:
            return Verdict(0.0, float(points), f"{cid}: more than one result was recorded")
        if cid not in found:
            return Verdict(0.0, float(points), f"{cid}: no result was produced")
        if isinstance(found[cid], NoAnswer):
            return Verdict(0.0, float(points), f"{cid}: no answer ({found[cid].message})")
        try:
            v = judge_check(cid, found[cid], key=key, migration_runner=runner)
        except KeyUnavailable:
            v = CheckVerdict(False, "no answer key")
        if not v.ok:
            return Verdict(0.0, float(points), f"{cid}: {v.reason}")
    return Verdict(float(points), float(points), "all checks passed")


def total(verdicts: dict[str, Verdict]) -> tuple[float, float]:
    return sum(v.score for v in verdicts.values()), sum(v.max_score for v in verdicts.values())


def main(argv: list[str] | None = None) -> int:
    """``python -m miglab.judges NOTEBOOK...``: the judged score of autograded notebooks."""
    import argparse

    import nbformat

    parser = argparse.ArgumentParser(prog="python -m miglab.judges", description=main.__doc__)
    parser.add_argument("notebooks", nargs="+", help="autograded notebooks (autograded/<student>/deep_dive/...)")
    parser.add_argument("--key", help=f"quiz answer key (default: {DEFAULT_KEY})")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    key = load_key(args.key)
    report = {}
    for path in args.notebooks:
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception as e:  # a broken file is reported, the others are still judged
            report[path] = {"error": f"{type(e).__name__}: {e}"}
            continue
        verdicts = judge_notebook(nb, key=key)
        score, out_of = total(verdicts)
        report[path] = {"score": score, "max_score": out_of,
                        "cells": {gid: {"score": v.score, "max_score": v.max_score, "reason": v.reason}
                                  for gid, v in verdicts.items()}}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for path, r in report.items():
        if "error" in r:
            print(f"{path}: cannot be read ({r['error']})")
            continue
        print(f"{path}: {r['score']:g} / {r['max_score']:g}")
        for gid, c in r["cells"].items():
            mark = "ok " if c["score"] == c["max_score"] else "   "
            print(f"  {mark}{gid:<18} {c['score']:g}/{c['max_score']:g}  {'' if mark == 'ok ' else c['reason']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The trusted judge: a judged test cell's score, from its evidence, by its calls' rules.

For every graded cell that the plan (:mod:`miglab.grading.plan`) found
``check(...)`` calls in, the judge

1. takes the evidence records in that cell's own outputs of the autograded
   notebook, and matches each planned call to the record with the same key
   (a fingerprint of the call's inputs and judgement, computed alike here and
   in the kernel): a missing record fails the call, a second record for the
   same call fails the cell;
2. decides each call with its rule (``expect=`` equality, a public checker
   or a rule of ``rules.py``), from plain JSON, with the inputs as the
   instructor's notebook gives them, never as the kernel claims them;
3. fails the whole cell when the student's code uses what one of its calls
   forbids (``forbid=``), saying so.

A cell scores its points when every call passes, else 0. Its messages are
made of trusted text only: a visible call says what went wrong; hidden calls
with inputs are counted, never described, so feedback never reveals a hidden
input (a hidden call on a value answer, a quiz letter, says right or wrong).
Graded cells without ``check(...)`` calls are not judged here: nbgrader's
own in-kernel result scores them, and they are labelled so.
"""

from __future__ import annotations

import json
import traceback
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from ..evidence.convert import equal_json, shown
from ..evidence.record import EVIDENCE_MIME
from ..evidence.verdict import NOTHING, BadAnswer, Call, Verdict, as_verdict
from .plan import CellPlan, Plan, PlannedCall
from .rulebook import RuleBook, RuleError
from .scan import CodeScan

MAX_RECORDS = 10_000  # evidence records read from one cell


@dataclass
class CellJudgement:
    """The judge's score of one judged cell, and what the student is told."""

    grade_id: str
    score: float
    max_score: float
    messages: list[Any] = field(default_factory=list)  # lines for feedback (✔/✘ ...)
    reason: str = ""  # why points were lost, one line (CSV, summary)
    log: list[Any] = field(default_factory=list)  # for the instructor's log only


def evidence_records(cell: Any) -> list[dict[str, Any]]:
    """The evidence payloads in one cell's outputs (``{"key": ..., "output"|"error": ...}``)."""
    found: list[dict[str, Any]] = []
    outputs = cell.get("outputs") if isinstance(cell, dict) else None
    for out in outputs if isinstance(outputs, list) else []:
        if len(found) >= MAX_RECORDS:
            break
        data = out.get("data") if isinstance(out, dict) and out.get("output_type") == "display_data" else None
        payload = data.get(EVIDENCE_MIME) if isinstance(data, dict) else None
        if isinstance(payload, str):  # some writers store JSON data as text
            try:
                payload = json.loads(payload)
            except ValueError:
                continue
        if isinstance(payload, dict) and isinstance(payload.get("key"), str):
            found.append(_plain(payload))
    return found


def _plain(x: Any, depth: int = 0) -> Any:
    """A copy made of JSON types only (nbformat's NotebookNode becomes dict); too deep becomes None."""
    if depth > 60:
        return None
    if isinstance(x, dict):
        return {str(k): _plain(v, depth + 1) for k, v in x.items()}
    if isinstance(x, list):
        return [_plain(v, depth + 1) for v in x]
    return x if x is None or type(x) in (str, int, float, bool) else None


def judge_notebook(
    nb: Any, notebook_id: str, plan: Plan, rules: RuleBook, context: Any, scan: CodeScan
) -> dict[str, CellJudgement]:
    """Every judged cell of one autograded notebook, by grade_id."""
    cells = {}
    for cell in nb.get("cells", []) if isinstance(nb, dict) else []:
        meta = cell.get("metadata", {}).get("nbgrader", {}) if isinstance(cell, dict) else {}
        gid = meta.get("grade_id") if isinstance(meta, dict) and meta.get("grade") else None
        if isinstance(gid, str) and gid not in cells:
            cells[gid] = cell
    out = {}
    for cp in plan.cells:
        if cp.notebook == notebook_id and cp.judged:
            out[cp.grade_id] = judge_cell(cp, cells.get(cp.grade_id), rules, context, scan)
    return out


def judge_cell(cp: CellPlan, cell: Any, rules: RuleBook, context: Any, scan: CodeScan) -> CellJudgement:
    """One judged cell (see the module docstring)."""
    if cell is None:
        return CellJudgement(cp.grade_id, 0.0, cp.points, ["✘ the test cell is missing"], "the test cell is missing")
    forbidden = sorted({p.lstrip(".") for c in cp.calls for p in c.forbid if scan.uses(p)})
    if forbidden:
        why = f"the answer uses {', '.join(forbidden)}, which this question does not allow"
        return CellJudgement(cp.grade_id, 0.0, cp.points, [f"✘ {why}"], why)
    queues: dict[str, deque[Any]] = defaultdict(deque)
    for record in evidence_records(cell):
        queues[record["key"]].append(record)
    log: list[str] = []
    outcomes = [
        (call, _judge_call(call, queues[call.key].popleft() if queues[call.key] else None, rules, context, log))
        for call in cp.calls
    ]
    planned = {c.key for c in cp.calls}
    extra = sum(len(q) for k, q in queues.items() if k in planned)
    messages = _messages(outcomes, rules)
    ok = all(v.ok for _, v in outcomes) and not extra
    if extra:
        messages.append("✘ more than one result was recorded for the same check, so none of them counts")
    reason = "" if ok else _first_reason(outcomes, extra)
    return CellJudgement(cp.grade_id, cp.points if ok else 0.0, cp.points, messages, reason, log)


def _judge_call(
    call: PlannedCall, record: dict[str, Any] | None, rules: RuleBook, context: Any, log: list[str]
) -> Verdict:
    where = "a hidden input" if call.hidden else "the example"
    if record is None:
        return Verdict(False, "no result was recorded for this check (the cell stopped before it, or never ran)")
    if "error" in record:
        error = record["error"]
        name = error.get("raised") if isinstance(error, dict) else None
        if isinstance(name, str) and name.isidentifier() and len(name) <= 40:
            return Verdict(False, f"the answer raised {name} on {where}")
        return Verdict(False, f"the answer could not be read on {where}")
    if "output" not in record:
        return Verdict(False, "no answer was recorded")
    try:
        rule = rules.resolve(call.rule)
    except RuleError as exc:
        log.append(f"rule not found: {exc}")
        return Verdict(False, "this check could not be judged (the assignment's rule is missing)")
    if rule is None:
        return _by_expect(call, record["output"])
    expect = call.expect if call.has_expect else NOTHING
    try:
        return as_verdict(
            rule(
                Call(
                    args=call.args,
                    output=record["output"],
                    expect=expect,
                    params=call.params,
                    context=context,
                    hidden=call.hidden,
                )
            )
        )
    except BadAnswer as exc:
        return Verdict(False, str(exc) if not call.hidden else "the answer does not have the expected form")
    except Exception as exc:  # noqa: BLE001 - a rule that cannot read this answer: the call fails, the class goes on
        log.append(f"rule {call.rule} raised on {where}:\n{traceback.format_exc(limit=8)}")
        return Verdict(False, f"this answer could not be judged ({type(exc).__name__})")


def _by_expect(call: PlannedCall, output: Any) -> Verdict:
    if not call.has_expect:
        return Verdict(True, "answer recorded")
    if equal_json(output, call.expect, call.ignore_order):
        return Verdict(True, "right" if call.hidden else "as expected")
    if call.hidden:
        return Verdict(False, "not the expected answer" if _told(call) else "wrong on a hidden input")
    return Verdict(False, f"not the expected result, {shown(call.expect)}")


def _told(call: PlannedCall) -> bool:
    """Is this call's reason shown to the student? Visible calls, and hidden ones without inputs or
    parameters (a value answer, such as a quiz letter, whose question the student has seen): a
    hidden call's inputs are never described."""
    return not call.hidden or (not call.args and not call.params)


def _messages(outcomes: list[tuple[PlannedCall, Verdict]], rules: RuleBook) -> list[str]:
    deciding = any(c.has_expect or _decides(c, rules) for c, _ in outcomes)
    lines = []
    for call, v in outcomes:
        if not _told(call):
            continue
        if v.ok and deciding and not call.has_expect and not _decides(call, rules):
            lines.append("✔ answered in the expected form")  # a form check; the deciding one follows
        else:
            lines.append(f"{'✔' if v.ok else '✘'} {v.reason}")
    hidden = [v for c, v in outcomes if not _told(c)]
    if hidden:
        passed = sum(v.ok for v in hidden)
        if passed == len(hidden):
            lines.append(f"✔ all {len(hidden)} hidden check{'s' if len(hidden) != 1 else ''} passed")
        else:
            lines.append(f"✘ hidden checks: {passed} of {len(hidden)} passed")
    return lines


def _decides(call: PlannedCall, rules: RuleBook) -> bool:
    try:
        rule = rules.resolve(call.rule)
    except RuleError:
        return False
    return rule is not None and getattr(rule, "decides_without_expect", True)


def _first_reason(outcomes: list[tuple[PlannedCall, Verdict]], extra: int) -> str:
    for call, verdict in outcomes:
        if not verdict.ok:
            if not _told(call):
                passed = sum(v.ok for c, v in outcomes if not _told(c))
                total = sum(1 for c, _ in outcomes if not _told(c))
                return f"hidden checks: {passed} of {total} passed"
            return verdict.reason
    return "more than one result was recorded for the same check" if extra else ""

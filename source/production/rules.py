"""The production assignment's own rules: what its test cells name with ``rule="..."``.

Only the grader reads this file (it is never released, and no kernel can
import it). Both rules judge the student's three migrations from a real run
on PostgreSQL (:mod:`miglab.lab.scenario`: a database and a role of the run's
own, thousands of rows, each migration applied one at a time and then undone
one at a time), from what the trusted side read, as the run's role, after
each step. Nothing here runs or imports the student's code.

* :func:`back_as_it_was`: undoing every migration works, and leaves the
  table's columns, its rows and ``django_migrations`` exactly as they were
  before the student's files were on disk (read then, with ``read_start``).
* :func:`filled_in_batches`: the backfill wrote the rows itself, in
  transactions of at most ``max_rows`` rows, each committed before Django
  recorded the migration. PostgreSQL says which transaction wrote each row
  version (``xmin``), and gives transaction ids in order: the reads after the
  previous step and after the backfill bound the ids the backfill used. A
  migration that runs as one transaction (``atomic = True``) records itself
  in that same transaction, so its rows are not older than its record, even
  when batches are savepoints (a savepoint's id comes after its
  transaction's). Left undetected: a non-atomic migration whose
  ``RunPython(..., atomic=True)`` batches are savepoints of one transaction.
"""

from __future__ import annotations

from miglab.evidence import BadAnswer, Call

FILES = 3


def _run(call: Call) -> dict:
    """The run of the call's scenario with the student's three files (cached per student)."""
    answer = call.output
    if not (isinstance(answer, list) and len(answer) == FILES and all(isinstance(t, str) for t in answer)):
        raise BadAnswer(f"the answer should be a list of {FILES} migration file texts")
    result = call.context.run_scenario(call.params["scenario"], answer)
    if call.hidden:
        call.context.saw_hidden()
    return result


def _failed_step(result: dict, upto: int) -> str | None:
    """Why the run did not get through step ``upto`` (trusted words only), or None."""
    if "error" in result:
        return "the migrations could not be run"
    steps = result.get("steps", [])
    for ran in steps[: upto + 1]:
        if ran.get("timed_out") or ran.get("returncode") != 0:
            what = "ran out of time" if ran.get("timed_out") else f"failed (exit status {ran.get('returncode')})"
            return f"`python manage.py {' '.join(map(str, ran.get('command', [])))}` {what}"
    if len(steps) <= upto:
        return "an earlier step stopped the run"
    return None


def _value(reads: dict, name: str):
    """The single value of a one-row, one-column read, or None."""
    rows = reads.get(name)
    if isinstance(rows, list) and len(rows) == 1 and isinstance(rows[0], list) and len(rows[0]) == 1:
        return rows[0][0]
    return None


def back_as_it_was(call: Call):
    """Every step runs (the last ones migrate back), and then the reads named in ``compare=`` are
    what they were before the student's migrations were on disk."""
    result = _run(call)
    steps = call.params["scenario"]["steps"]
    failed = _failed_step(result, len(steps) - 1)
    if failed:
        return False, f"migrating forwards and back again does not work: {failed}"
    start, end = result.get("start") or {}, result["steps"][-1]["reads"]
    target = " ".join(map(str, steps[-1]))
    for name, what in (
        ("columns", "the table's columns"),
        ("table", "the table's rows"),
        ("applied", "the applied migrations"),
    ):
        if name in call.params.get("compare", ["columns", "table", "applied"]) and start.get(name) != end.get(name):
            return False, f"after `{target}`, {what} are not what they were before your migrations ran"
    return True, f"after `{target}` the table is exactly as it was: columns, rows and applied migrations"


def filled_in_batches(call: Call):
    """The backfill (step ``step=``, recorded as ``migration=``) wrote the rows itself, at most
    ``max_rows=`` per transaction, and committed them before its migration was recorded."""
    result = _run(call)
    step = int(call.params.get("step", 1))
    limit = int(call.params.get("max_rows", 1000))
    name = str(call.params["migration"])
    failed = _failed_step(result, step)
    if failed:
        return False, failed
    before = result["steps"][step - 1]["reads"] if step > 0 else result.get("start") or {}
    after = result["steps"][step]["reads"]
    first, end = _value(before, "next_xid"), _value(after, "next_xid")
    writes = after.get("writes")
    recorded = after.get("recorded")
    last = _value(after, "last_write")
    if not (
        isinstance(first, int) and isinstance(end, int) and isinstance(writes, list) and isinstance(recorded, list)
    ):
        return False, "the table could not be read after the backfill"
    mine = [
        n
        for xid, n in (w for w in writes if isinstance(w, list) and len(w) == 2)
        if isinstance(xid, int) and isinstance(n, int) and first <= xid < end
    ]
    if not mine:
        return False, f"{name} wrote no rows: the rows must be filled by the backfill migration itself"
    if max(mine) > limit:
        return False, (
            f"one transaction of {name} wrote {max(mine)} rows: fill in batches of at most "
            f"{limit:,} rows, each in a transaction of its own"
        )
    record = [xid for n, xid in (r for r in recorded if isinstance(r, list) and len(r) == 2) if n == name]
    if len(record) != 1 or not isinstance(record[0], int) or not isinstance(last, int):
        return False, f"{name} is not recorded as applied"
    if last >= record[0]:
        return False, (
            f"{name} ran as one transaction (its rows were committed with its own record in "
            f"django_migrations): set atomic = False so that each batch commits on its own"
        )
    return True, f"filled in batches of at most {max(mine):,} rows, each committed on its own"

"""The checks that the assignment's test cells call, inside the learner's kernel.

``check(check_id, answer)`` does three things:

1. collects the learner's result: calls their function on the check's inputs
   (from ``miglab.oracle``), or reads the value they assigned, and converts it to
   plain JSON with strict type checks (a ``str`` subclass or an object with a
   clever ``__eq__`` is refused, never trusted);
2. emits that JSON as evidence (a display output of MIME type
   ``application/vnd.miglab.evidence+json``) for the trusted judge, which
   recomputes the grade outside the kernel (``miglab.judges``);
3. judges it here too, with the same rules, for instant feedback: it prints a
   short line when right and raises :class:`CheckFailed` with a plain message
   when wrong. The message says what failed, never the hidden expected output,
   and the traceback shows no test code.

Nothing here writes to stderr when the answer is right.
"""

from __future__ import annotations

import copy
import os
import traceback

from . import judges, oracle

EVIDENCE_MIME = judges.EVIDENCE_MIME
EMITTED: list[dict] = []  # evidence emitted outside a kernel (plain Python, tests)


class CheckFailed(AssertionError):
    """A check that did not pass. Shown as its message alone: no test code in the traceback."""

    def _render_traceback_(self):
        return [f"CheckFailed: {self}"]


class _AnswerError(Exception):
    """The learner's answer has the wrong shape or their function raised."""


# ------------------------------------------------------------------- entry


def setup_kernel() -> None:
    """Run by the assignment's locked first cell.

    During nbgrader's autograde, tracebacks are kept to their last line so that
    feedback never quotes the (hidden) test cell that failed. While the learner
    works, tracebacks stay normal.
    """
    oracle.ensure_django()
    if os.environ.get("NBGRADER_EXECUTION"):
        from IPython import get_ipython

        ip = get_ipython()
        if ip is not None:
            ip.InteractiveTB.set_mode(mode="Minimal")


def check(check_id: str, answer, *, quiet: bool = False) -> None:
    """Collect, emit and judge one check (see the module docstring)."""
    spec = _COLLECTORS.get(check_id)
    if spec is None:
        raise CheckFailed(f"unknown check {check_id!r}")
    collect, what = spec
    try:
        evidence = collect(answer)
    except _AnswerError as e:
        _emit(check_id, None, error=str(e).splitlines()[0][:300])
        raise CheckFailed(f"{what}: {e}") from None
    _emit(check_id, evidence)
    try:
        verdict = judges.judge_check(check_id, evidence, migration_runner=_kernel_migration_runner)
    except judges.KeyUnavailable:
        verdict = judges.format_verdict(check_id, evidence)
    if not verdict.ok:
        raise CheckFailed(f"{what}: {verdict.reason}")
    if not quiet:
        print(f"✔ {what}: {verdict.reason}")


_kernel_runs: dict = {}


def _kernel_migration_runner(source_text: str, titles: list[str]) -> dict:
    """In the kernel: run the learner's migration with the lab's fast runner (once per text)."""
    key = (source_text, tuple(titles))
    if key not in _kernel_runs:
        _kernel_runs[key] = oracle.run_migration_scenario(source_text, list(titles), manage=oracle._trusted_manage)
    return _kernel_runs[key]


def _emit(check_id: str, evidence, error: str | None = None) -> None:
    payload = {"check": check_id, "answer": evidence}
    if error is not None:  # no answer: the learner's code raised or returned the wrong kind of thing
        payload["error"] = error
    try:
        from IPython.core.interactiveshell import InteractiveShell

        in_kernel = InteractiveShell.initialized()
    except ImportError:  # pragma: no cover
        in_kernel = False
    if in_kernel:
        from IPython.display import publish_display_data

        # The empty text stands in for the evidence wherever it is shown (notebook, feedback):
        # the learner reads the ✔ line or the failure message instead.
        publish_display_data({EVIDENCE_MIME: payload, "text/plain": ""})
    else:
        EMITTED.append(copy.deepcopy(payload))


# -------------------------------------------------------------- conversion


def _call(fn, label: str, *args):
    if not callable(fn):
        raise _AnswerError(f"{label} should be a function, got {type(fn).__name__}")
    try:
        return fn(*args)
    except Exception as e:  # the learner's bug: show their frames, not ours
        tb = e.__traceback__.tb_next if e.__traceback__ else None
        lines = traceback.format_exception(type(e), e, tb)
        shown = "".join(lines[-8:]).rstrip()
        raise _AnswerError(f"{label} raised {type(e).__name__} on one of the inputs:\n{shown}") from None


def _str(x, label) -> str:
    if type(x) is not str:
        raise _AnswerError(f"{label} should be a str, got {type(x).__name__}")
    return str.__str__(x)


def _node(x, label="each migration") -> list[str]:
    if type(x) not in (tuple, list) or len(x) != 2:
        raise _AnswerError(f"{label} should be an (app, name) pair, got {type(x).__name__}")
    return [_str(x[0], "an app label"), _str(x[1], "a migration name")]


def _nodes(x, label="the result") -> list[list[str]]:
    if type(x) not in (list, tuple):
        raise _AnswerError(f"{label} should be a list of (app, name) pairs, got {type(x).__name__}")
    return [_node(n) for n in list(x)]


def _app_map(x, label="the result") -> dict[str, list[str]]:
    if type(x) is not dict:
        raise _AnswerError(f"{label} should be a dict mapping app labels to lists of names, got {type(x).__name__}")
    out = {}
    for k, v in dict.items(x):
        key = _str(k, "each app label")
        if type(v) not in (list, tuple, set):
            raise _AnswerError(f"the value for {key!r} should be a list of migration names, got {type(v).__name__}")
        out[key] = sorted(_str(n, "each migration name") for n in list(v))
    return out


def _columns(x) -> dict[str, str]:
    if type(x) is not dict:
        raise _AnswerError(f"the result should be a dict of column name -> type, got {type(x).__name__}")
    return {_str(k, "each column name"): _str(v, "each column type") for k, v in dict.items(x)}


def _field_json(field) -> list:
    from django.db import models

    name = type(field).__name__
    if name not in oracle.FIELD_CLASSES or type(field) is not getattr(models, name):
        raise _AnswerError(f"unexpected field type {name} (use the field classes of the input)")
    _, _, args, kwargs = field.deconstruct()  # Django's own method: the class was checked above
    if args:
        raise _AnswerError("fields must be built with keyword arguments only")
    out = {}
    for k, v in kwargs.items():
        if k not in oracle.FIELD_KWARGS or type(v) not in (bool, int, str):
            raise _AnswerError(f"unexpected field option {k}={type(v).__name__}")
        out[k] = v
    return [name, out]


def _op_json(op) -> dict:
    from django.db import migrations

    name = type(op).__name__
    if name not in oracle.OP_KEYS or type(op) is not getattr(migrations, name):
        raise _AnswerError(f"unexpected operation {name}: use CreateModel, DeleteModel, AddField, "
                           "RemoveField, AlterField or RenameField")
    out: dict = {"op": name}
    for key in oracle.OP_KEYS[name]:
        value = op.__dict__.get(key)
        if key == "field":
            out[key] = _field_json(value)
        elif key == "fields":
            if type(value) not in (list, tuple):
                raise _AnswerError("CreateModel fields should be a list of (name, field) pairs")
            pairs = []
            for pair in list(value):
                if type(pair) not in (list, tuple) or len(pair) != 2:
                    raise _AnswerError("CreateModel fields should be a list of (name, field) pairs")
                pairs.append([_str(pair[0], "a field name"), _field_json(pair[1])])
            out[key] = pairs
        else:
            out[key] = _str(value, f"{name}.{key}")
    if name == "CreateModel":
        from django.db import models

        if op.options or op.managers or tuple(op.bases) != (models.Model,):
            raise _AnswerError("CreateModel should have no options, managers or bases here")
    return out


def _ops(x) -> list[dict]:
    if type(x) not in (list, tuple):
        raise _AnswerError(f"squash should return a list of operations, got {type(x).__name__}")
    return [_op_json(op) for op in list(x)]


# -------------------------------------------------------------- collectors


def _tuples(nodes):
    return [tuple(n) for n in nodes]


def _graph_arg(deps):
    return {k: list(v) for k, v in copy.deepcopy(deps).items()}


def _pending(cases):
    def collect(fn):
        out = []
        for case in cases:
            applied = set(_tuples(case["applied"])) if case.get("as_set") else _tuples(case["applied"])
            out.append(_nodes(_call(fn, "pending_migrations", _tuples(case["plan"]), applied)))
        return out
    return collect


def _order(graphs):
    def collect(fn):
        return [_nodes(_call(fn, "order_migrations", _graph_arg(g))) for g in graphs]
    return collect


def _cycle(graphs):
    def collect(fn):
        if not callable(fn):
            raise _AnswerError("order_migrations should be a function")
        out = []
        for g in graphs:
            try:
                fn(_graph_arg(g))
            except Exception as e:
                msg = " ".join(_plain_text(a) for a in e.args)
                out.append({"raised": True, "type": "ValueError" if isinstance(e, ValueError) else type(e).__name__,
                            "message": msg[:2000]})
            else:
                out.append({"raised": False, "type": "", "message": ""})
        return out
    return collect


def _plain_text(a) -> str:
    if type(a) is str:
        return str.__str__(a)
    if type(a) in (list, tuple, set, frozenset):
        return " ".join(_plain_text(x) for x in list(a))
    if type(a) is int:
        return int.__repr__(a)
    return ""


def _app_maps(fn_name, graphs):
    def collect(fn):
        return [_app_map(_call(fn, fn_name, _graph_arg(g))) for g in graphs]
    return collect


def _replay(cases_fn):
    def collect(fn):
        out = []
        for case in cases_fn():
            ops = [tuple(op) for op in case["ops"]]
            out.append(_columns(_call(fn, "replay_columns", dict(case["columns"]), ops)))
        return out
    return collect


def _squash(cases_fn):
    def collect(fn):
        oracle.ensure_django()
        return [_ops(_call(fn, "squash", oracle.ops_from_json(case))) for case in cases_fn()]
    return collect


def _value_nodes(x):
    return _nodes(x, "the dependencies")


def _get_model(fn):
    oracle.ensure_django()
    from django.db import migrations, models
    from django.db.migrations.state import ProjectState

    state = ProjectState()
    migrations.CreateModel("Book", [("id", models.BigAutoField(primary_key=True)),
                                    ("title", models.CharField(max_length=200))]).state_forwards("library", state)
    real = state.apps
    calls: list[list[str]] = []

    class RecordingApps:
        def get_model(self, *args, **kwargs):
            calls.append([a if type(a) is str else f"<{type(a).__name__}>" for a in args]
                         + [f"{k}=<{type(v).__name__}>" for k, v in kwargs.items()])
            return real.get_model(*args, **kwargs)

        def __getattr__(self, name):
            raise AttributeError(f"the apps registry of a migration has no {name!r} in this exercise")

    got = _call(fn, "get_book_model", RecordingApps(), None)
    historical = real.get_model("library", "Book")
    return {"calls": calls, "historical": got is historical}


def _reverse(op):
    from django.db import migrations

    if type(op) is not migrations.RunPython:
        raise _AnswerError(f"FILL_OPERATION should be a migrations.RunPython(...), got {type(op).__name__}")
    rev = op.reverse_code
    if rev is None:
        kind = "none"
    elif rev is migrations.RunPython.noop:
        kind = "noop"
    elif callable(rev):
        kind = "function"
    else:
        kind = "other"
    forward_ok = getattr(op.code, "__name__", None) == "set_default_loan_days"
    return {"reverse": kind, "forward": "given" if forward_ok else "changed"}


def _quiz(qid):
    def collect(x):
        if type(x) is not str:
            raise _AnswerError(f"set {qid.upper()} to one letter in quotes, like \"a\"")
        return str.__str__(x).strip().lower()
    return collect


def _datamig(x):
    if type(x) is not str:
        raise _AnswerError(f"FILL_SLUGS_MIGRATION should be the text of a migration file (a str), got {type(x).__name__}")
    return {"source": str.__str__(x)}


_COLLECTORS = {
    "pending.example": (_pending([oracle.PENDING_EXAMPLE]), "pending_migrations on the example"),
    "pending.hidden": (_pending(oracle.PENDING_HIDDEN), "pending_migrations on more plans"),
    "pending.edge": (_pending(oracle.PENDING_EDGE), "pending_migrations on edge cases"),
    "deps.loans": (_value_nodes, "LOANS_0001_DEPENDENCIES"),
    "get_model": (_get_model, "get_book_model"),
    "reverse": (_reverse, "FILL_OPERATION"),
    "merge": (_value_nodes, "MERGE_DEPENDENCIES"),
    "order.example": (_order([oracle.GRAPH_EXAMPLE]), "order_migrations on the example graph"),
    "order.hidden": (_order(oracle.GRAPH_HIDDEN), "order_migrations on more one-app graphs"),
    "order.cross": (_order(oracle.GRAPH_CROSS), "order_migrations on graphs with edges between apps"),
    "cycle.example": (_cycle([oracle.CYCLE_EXAMPLE]), "order_migrations on the example cycle"),
    "cycle.hidden": (_cycle(oracle.CYCLE_HIDDEN), "order_migrations on more cycles"),
    "leaves.example": (_app_maps("find_leaves", [oracle.LEAVES_EXAMPLE]), "find_leaves on the example"),
    "leaves.hidden": (_app_maps("find_leaves", oracle.LEAVES_HIDDEN), "find_leaves on more graphs"),
    "conflicts.example": (_app_maps("find_conflicts", [oracle.LEAVES_EXAMPLE]), "find_conflicts on the example"),
    "conflicts.hidden": (_app_maps("find_conflicts", oracle.LEAVES_HIDDEN), "find_conflicts on more graphs"),
    "replay.example": (_replay(lambda: [oracle.REPLAY_EXAMPLE]), "replay_columns on the example"),
    "replay.hidden": (_replay(lambda: oracle.REPLAY_HIDDEN), "replay_columns on more sequences"),
    "replay.random": (_replay(oracle.replay_random_cases), "replay_columns on random sequences"),
    "squash.example": (_squash(lambda: [oracle.SQUASH_EXAMPLE]), "squash on the example"),
    "squash.hidden": (_squash(lambda: oracle.SQUASH_HIDDEN), "squash on more sequences"),
    "squash.example_short": (_squash(lambda: [oracle.SQUASH_EXAMPLE]), "squash on the example, length"),
    "squash.short": (_squash(lambda: oracle.SQUASH_HIDDEN + oracle.SQUASH_RENAMES), "squash, length"),
    "squash.rename_example": (_squash(lambda: oracle.SQUASH_RENAMES[:1]), "squash on a rename"),
    "squash.rename": (_squash(lambda: oracle.SQUASH_RENAMES), "squash on renames"),
    "squash.random": (_squash(oracle.squash_random_cases), "squash on random sequences"),
    "datamig.forward.visible": (_datamig, "0003_fill_slugs forwards (example rows)"),
    "datamig.forward.hidden": (_datamig, "0003_fill_slugs forwards (more rows)"),
    "datamig.backward.visible": (_datamig, "0003_fill_slugs backwards (example rows)"),
    "datamig.backward.hidden": (_datamig, "0003_fill_slugs backwards (more rows)"),
}
_COLLECTORS.update({f"quiz.{q}": (_quiz(q), f"answer {q.upper()}") for q in judges.QUIZ_CHOICES})

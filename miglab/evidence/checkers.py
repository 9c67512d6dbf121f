"""Public checkers: rules that may run in a learner's kernel as well as in the grader.

Pass one as ``check(..., rule=valid_plan)``. Each decides from plain JSON
evidence (:class:`~miglab.evidence.verdict.Call`) and says why in words, and
none of them computes an answer for the student: they check one.

* :func:`migration_pairs`: the answer has the form of a list of ``(app, name)``
  pairs (it decides the form only; a hidden ``expect=`` decides the rest);
* :func:`returns_historical_model`: with ``probe="apps"``, a data-migration
  function that asks ``apps.get_model`` for ``model=`` and returns what it got;
* :func:`valid_plan`: an order of migrations that puts every dependency first;
* :func:`names_cycle`: a ``ValueError`` that names every migration on a cycle and no other;
* :func:`choice`: a quiz letter (``choices="abcd"``; with ``expect=``, the right one);
* :func:`squashes`: Django operations that squash the input's (same final schema
  by Django's own ``ProjectState``; optionally no longer than Django's optimizer
  makes them, and renames kept as renames);
* :func:`runs_migration`: a migration file's text, run for real in a fresh lab
  project (:class:`miglab.lab.scenario.Scenario`), judged by what the database holds.
"""

from __future__ import annotations

from typing import Any

from .convert import equal_json, from_json, hashable, shown
from .verdict import BadAnswer, Call, Verdict

# ------------------------------------------------------------------ shapes


def pairs(data: Any, what: str = "the answer") -> list[tuple[str, str]]:
    """A list of ``[app, name]`` pairs, or :class:`BadAnswer`."""
    if not isinstance(data, list):
        raise BadAnswer(f"{what} should be a list of (app, name) pairs")
    out = []
    for item in data:
        if not (isinstance(item, list) and len(item) == 2 and all(isinstance(s, str) for s in item)):
            raise BadAnswer(f"each item of {what} should be an (app, name) pair")
        out.append((item[0], item[1]))
    return out


Node = tuple[Any, ...]  # a migration (app, name), decoded from evidence


def graph_of(data: Any) -> dict[Node, list[Node]]:
    """A migration graph input (``{(app, name): [(app, name), ...]}``) decoded."""
    graph = from_json(data)
    if not isinstance(graph, dict):
        raise ValueError("a migration graph is a dict of (app, name) -> dependencies")
    return {hashable(k): [hashable(p) for p in v] for k, v in graph.items()}


def _node(n: Node) -> str:
    return f"{n[0]}.{n[1]}"


def migration_pairs(call: Call) -> Verdict:
    """The answer is a list of ``(app, name)`` pairs (its form only)."""
    found = pairs(call.output, "the answer")
    return Verdict(
        True,
        f"a list of {len(found)} migration{'s' if len(found) != 1 else ''}; "
        "whether it is right is marked when your notebook is graded",
    )


migration_pairs.decides_without_expect = False  # type: ignore[attr-defined]


def returns_historical_model(call: Call) -> Verdict:
    """With ``probe="apps"``: the function asked ``apps.get_model`` for ``model=`` and returned its answer."""
    facts = call.output
    if not isinstance(facts, dict) or not isinstance(facts.get("calls"), list):
        raise BadAnswer('use probe="apps" with returns_historical_model')
    app, model = str(call.params.get("model", "")).split(".", 1)
    if not facts["calls"]:
        return Verdict(False, "the function never called apps.get_model")
    for asked in facts["calls"]:
        if _model_asked(asked) != (app.lower(), model.lower()):
            return Verdict(False, f"apps.get_model was asked for something other than {app}'s {model}")
    if facts.get("registry_model") != f"{app}.{model}":
        return Verdict(False, "the function does not return the model that apps.get_model gave it")
    return Verdict(True, f"the historical {model} model, fetched from apps")


def _model_asked(asked: Any) -> tuple[str, str] | None:
    """``get_model("app", "Model")``, ``get_model("app.Model")`` or keywords, as (app, model) lower-cased."""
    if not isinstance(asked, dict):
        return None
    args = [a for a in asked.get("args", []) if isinstance(a, str)]
    kwargs = {k: v for k, v in dict(asked.get("kwargs", {})).items() if isinstance(v, str)}
    if len(args) == 1 and "." in args[0] and not kwargs:
        args = args[0].split(".", 1)
    values = args + [kwargs[k] for k in ("app_label", "model_name") if k in kwargs]
    if len(values) != 2 or len(args) + len(kwargs) != 2:
        return None
    return values[0].lower(), values[1].lower()


# ------------------------------------------------------------------- graphs


def valid_plan(call: Call) -> Verdict:
    """Every migration exactly once, each after every migration it depends on."""
    deps = graph_of(call.args[0])
    order = pairs(call.output, "the order")
    if len(order) != len(set(order)):
        return Verdict(False, "a migration appears more than once in the order")
    if set(order) != set(deps):
        missing, extra = len(set(deps) - set(order)), len(set(order) - set(deps))
        return Verdict(False, f"the order must list every migration exactly once ({missing} missing, {extra} unknown)")
    position = {n: i for i, n in enumerate(order)}
    for node, parents in deps.items():
        for parent in parents:
            if position[parent] > position[node]:
                return Verdict(False, f"{_node(node)} comes before {_node(parent)}, which it depends on")
    return Verdict(True, "every migration comes after all it depends on")


def cycle_members(deps: dict[Node, list[Node]]) -> set[Node]:
    """Every migration that lies on some cycle (strongly connected components, self-loops)."""
    import networkx as nx

    g = nx.DiGraph()
    g.add_nodes_from(deps)
    g.add_edges_from((p, n) for n, ps in deps.items() for p in ps)
    members: set[Node] = set()
    for component in nx.strongly_connected_components(g):
        if len(component) > 1 or any(g.has_edge(n, n) for n in component):
            members |= set(component)
    return members


def names_cycle(call: Call) -> Verdict:
    """With ``probe="raises"``: a ValueError whose message names the whole cycle and nothing else."""
    deps = graph_of(call.args[0])
    raised = call.output
    if not isinstance(raised, dict) or not isinstance(raised.get("raised"), bool):
        raise BadAnswer('use probe="raises" with names_cycle')
    if not raised["raised"]:
        return Verdict(False, "no error was raised for a graph with a cycle")
    if raised.get("value_error") is not True:
        return Verdict(False, f"the error should be a ValueError, not {_word(raised.get('type'))}")
    message: str = raised["message"] if isinstance(raised.get("message"), str) else ""
    on_cycle = cycle_members(deps)
    missing = [n for n in sorted(on_cycle) if n[1] not in message]
    if missing:
        return Verdict(False, f"the error message does not name every migration on the cycle ({len(missing)} missing)")
    names_on_cycle = {n for _, n in on_cycle}
    bystanders = [n for n in sorted(set(deps) - on_cycle) if n[1] in message and n[1] not in names_on_cycle]
    if bystanders:
        return Verdict(False, "the error message names migrations that are not on the cycle")
    return Verdict(True, "the cycle is reported by name")


def _word(x: Any) -> str:
    """An exception class name from evidence, shown only if it is a plain identifier."""
    return x if isinstance(x, str) and x.isidentifier() and len(x) <= 40 else "another kind of error"


# --------------------------------------------------------------------- quiz


def choice(call: Call) -> Verdict:
    """A quiz answer: one letter of ``choices=``; with ``expect=``, the right letter."""
    letters = str(call.params.get("choices") or "abcd")
    answer = call.output
    if not isinstance(answer, str) or answer.strip().lower() not in letters or len(answer.strip()) != 1:
        return Verdict(False, f"answer with one of the letters {', '.join(letters)}, in quotes")
    if not call.has_expect:
        return Verdict(True, "answer recorded; it is marked when your notebook is graded")
    right = answer.strip().lower() == str(call.expect).strip().lower()
    return Verdict(right, "right" if right else "not the right choice")


choice.decides_without_expect = False  # type: ignore[attr-defined]  # without expect= it checks the form only


# ------------------------------------------------------------------ squashing


def squashes(call: Call) -> Verdict:
    """Squashed operations judged against the input's, with Django as the oracle.

    Parameters: ``existing`` (operations that built the models before the
    input's first one), ``app`` (default ``"library"``), ``shortest`` (no longer
    than Django's ``MigrationOptimizer`` output) and ``keep_data`` (a column
    renamed in the input is renamed, never dropped and added again).
    """
    from .django_setup import ensure_django
    from .squash import lineage, optimized_length, project_state

    ensure_django()
    app = str(call.params.get("app", "library"))
    existing = _operations(call.params.get("existing", []), "existing")
    original = _operations(call.args[0], "the input")
    try:
        squashed = _operations(call.output, "your result")
    except ValueError as exc:
        return Verdict(False, f"the result is not a list of Django operations ({exc})")
    try:
        mine = lineage(existing, squashed, app)
    except ValueError as exc:
        return Verdict(False, f"the squashed operations do not apply in order: {exc}")
    try:
        same = project_state(existing + squashed, app) == project_state(existing + original, app)
    except Exception as exc:  # noqa: BLE001 - any state Django cannot build is the answer's fault
        return Verdict(False, f"Django could not replay the squashed operations ({type(exc).__name__})")
    if not same:
        return Verdict(False, "replaying the squashed operations does not give the same final schema")
    if call.params.get("shortest") and len(squashed) > optimized_length(original, app):
        limit = optimized_length(original, app)
        return Verdict(False, f"the squashed list has {len(squashed)} operations; {limit} are enough")
    if call.params.get("keep_data") and mine != lineage(existing, original, app):
        return Verdict(False, "a column that keeps its data in the input (a rename) is dropped and created again")
    shortest = ", as short as Django's optimizer" if call.params.get("shortest") else ""
    return Verdict(True, "same final schema" + shortest)


def _operations(data: Any, what: str) -> list[Any]:
    from django.db.migrations.operations.base import Operation

    if not isinstance(data, list):
        raise ValueError(f"{what} should be a list of operations")
    ops = [from_json(item) for item in data]
    if not all(isinstance(op, Operation) for op in ops):
        raise ValueError(f"{what} should hold only Django migration operations")
    return ops


# -------------------------------------------------------------- a real migrate


def runs_migration(call: Call) -> Verdict:
    """A migration file's text, run in a fresh lab (``scenario=``); judged after step ``step=``.

    Every step up to ``step`` must succeed, and then each query of the
    scenario's ``read`` named in ``expect=`` must return exactly those rows.
    For hidden calls nothing the student's code printed is quoted back.
    When the scenario's ``answer_path`` is a list of paths, the answer is a
    list of texts, one per path. A PostgreSQL scenario in a kernel that cannot
    have PostgreSQL only records the answer (the grader runs it).
    """
    from ..lab.postgres import PostgresUnavailable

    scenario = call.params["scenario"]
    wrong_form = _not_migration_texts(call.output, scenario)
    if wrong_form:
        return Verdict(False, wrong_form)
    step = int(call.params.get("step", 0))
    try:
        result = call.context.run_scenario(scenario, call.output)
    except PostgresUnavailable:  # in a learner's kernel only: the judge's context never raises
        if call.hidden:
            return Verdict(False, "the migration could not be run")
        return Verdict(
            True,
            "recorded; PostgreSQL is not available in this kernel, so this check runs when "
            'your notebook is graded (Lab("try", db="postgresql") says why)',
        )
    # What the student's code printed or stored is quoted back only for a visible example run
    # before any hidden one in the same sandbox (a hidden run could have left its rows behind).
    quote = not call.hidden and not result.get("after_hidden", False)
    if call.hidden:
        call.context.saw_hidden()
    if "error" in result:
        return Verdict(False, str(result["error"]) if quote else "the migration could not be run")
    for ran in result["steps"][: step + 1]:
        if ran["timed_out"] or ran["returncode"] != 0:
            what = "ran out of time" if ran["timed_out"] else f"failed (exit status {ran['returncode']})"
            told = f":\n{ran['output']}" if quote and ran["output"] else ""
            return Verdict(False, f"`python manage.py {' '.join(ran['command'])}` {what}{told}")
    if step >= len(result["steps"]):
        return Verdict(False, "an earlier step stopped the run")
    reads = result["steps"][step]["reads"]
    command = " ".join(result["steps"][step]["command"])
    for name, want in dict(call.expect).items():
        got = reads.get(name)
        if not equal_json(got, want):
            detail = f": expected {shown(want)}, found {shown(got)}" if quote else ""
            return Verdict(False, f"after `{command}`, {name} is not what it should be{detail}")
    return Verdict(True, f"after `{command}`, the database holds what it should")


def _not_migration_texts(answer: Any, scenario: Any) -> str:
    """Why ``answer`` is not what the scenario's ``answer_path`` asks for ("" if it is): a migration
    file's text, or a list of texts, one per path, when the scenario names a list of paths."""
    paths = scenario.get("answer_path") if isinstance(scenario, dict) else None
    if isinstance(paths, list):
        if isinstance(answer, list) and len(answer) == len(paths) and all(isinstance(t, str) for t in answer):
            return ""
        return f"the answer should be a list of {len(paths)} migration file texts (str)"
    return "" if isinstance(answer, str) else "the answer should be the text of a migration file (a str)"

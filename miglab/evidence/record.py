"""``check(...)``: what an assignment's test cells call.

    check(pending_migrations, plan, applied, expect=[("loans", "0001_initial")])
    check(order_migrations, graph, rule=valid_plan)
    check(LOANS_0001_DEPENDENCIES, expect=[("library", "0002_book_pages")])
    check(Q01, rule=choice, choices="abcd")

Each call names what is checked: the answer (a function, called on the
inputs that follow, or a value), then how it is judged: ``expect=`` (the
answer must equal it; ``ignore_order=True`` for lists in any order), or
``rule=`` (a public checker of this package, or the name of a rule in the
assignment's ``source/<a>/rules.py``, which only the grader has). Other
keyword arguments are the rule's parameters.

In a kernel, a call does three things:

1. it collects the answer: calls the function on a copy of the inputs (or
   reads the value) and turns what comes back into plain JSON
   (:mod:`miglab.evidence.convert`); ``probe=`` picks another way to look
   at an answer (:mod:`miglab.evidence.probes`);
2. it emits that JSON as *evidence*: a display output of MIME type
   :data:`EVIDENCE_MIME`, keyed by a fingerprint of the call's inputs and
   judgement, which the course's grader reads and judges outside the kernel;
3. it gives instant feedback where it can (``expect=`` and public
   checkers): a line starting with ✔, or one starting with ✘ on stderr with
   the reason (a failed check never raises, so the cell's later checks still
   run; nbgrader alone scores a cell with stderr 0). A rule that lives in
   ``source/`` says the answer was recorded.

When the grader reads an instructor's notebook to learn what each test cell
checks (:func:`reading_test_cells`), the same call records its inputs and
judgement instead, and never touches the answer.
"""

from __future__ import annotations

import contextlib
import copy
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from typing import Any

from . import probes
from .convert import ConversionError, digest, equal_json, shown, to_json
from .verdict import NOTHING, Call, Verdict, as_verdict

EVIDENCE_MIME = "application/vnd.miglab.evidence+json"
WITHHELD = ...  # ``expect=...``: the grader withheld this hidden call's expected answer from the kernel
EMITTED: list[dict[str, Any]] = []  # evidence emitted outside a kernel (plain Python, tests)


# ------------------------------------------------------------- what a call is


def rule_ref(rule: Any) -> dict[str, Any] | None:
    """How a call names its rule in evidence and plans: ``{"name": ...}`` or ``{"ref": "module:qualname"}``."""
    if rule is None:
        return None
    if isinstance(rule, str):
        return {"name": rule}
    if callable(rule):
        return {"ref": f"{getattr(rule, '__module__', '?')}:{getattr(rule, '__qualname__', '?')}"}
    raise TypeError(f"rule= should be a checker function or the name of a rule, not {type(rule).__name__}")


def describe_call(
    args: tuple[Any, ...],
    *,
    expect: Any,
    rule: Any,
    probe: str | None,
    ignore_order: bool,
    forbid: tuple[Any, ...] | list[Any],
    params: dict[str, Any],
) -> dict[str, Any]:
    """The call as plain data, and its ``key``: the same in the kernel and in the grader."""
    spec: dict[str, Any] = {
        "args": to_json(list(args)),
        "rule": rule_ref(rule),
        "probe": probe or ("call" if args else "value"),
        "ignore_order": bool(ignore_order),
        "forbid": [str(f) for f in forbid],
        "params": to_json(dict(params)),
    }
    if expect is not NOTHING and expect is not WITHHELD:
        spec["expect"] = to_json(expect)
    # The key leaves out what the student's kernel may not see (a hidden call's expected answer
    # reaches it as ``...``) and what only the grader reads (forbid=).
    spec["key"] = digest({k: v for k, v in spec.items() if k not in ("forbid", "expect")})
    return spec


# ---------------------------------------------------------------- the grader's reading

_reading: list[dict[str, Any]] | None = None
_segment = "visible"


@contextlib.contextmanager
def reading_test_cells() -> Iterator[list[dict[str, Any]]]:
    """While active, ``check(...)`` records each call's description (with its segment) and returns."""
    global _reading
    previous, _reading = _reading, []
    try:
        yield _reading
    finally:
        _reading = previous


def set_segment(segment: str) -> None:
    """Whether the code now read is a test cell's ``visible`` part or a ``hidden`` test block."""
    global _segment
    _segment = segment


# ------------------------------------------------------------------ the kernel side


def check(
    answer: Any,
    *args: Any,
    expect: Any = NOTHING,
    rule: Any = None,
    probe: str | None = None,
    ignore_order: bool = False,
    forbid: tuple[Any, ...] | list[Any] = (),
    **params: Any,
) -> None:
    """Collect, emit and (where possible) judge one answer: see the module docstring."""
    spec = describe_call(
        args, expect=expect, rule=rule, probe=probe, ignore_order=ignore_order, forbid=forbid, params=params
    )
    if _reading is not None:
        _reading.append({**spec, "segment": _segment})
        return
    label = _label(answer)
    try:
        output = probes.collect(spec["probe"], answer, copy.deepcopy(args), params)
    except probes.AnswerRaised as raised:
        _emit({"key": spec["key"], "error": raised.evidence})
        return _say(False, f"{label} raised {raised.text}")
    except (probes.AnswerError, ConversionError) as problem:
        _emit({"key": spec["key"], "error": {"unreadable": True}})
        return _say(False, f"{label}: {problem}")
    _emit({"key": spec["key"], "output": output})
    if expect is WITHHELD:  # a hidden call at grading time: only the grader knows the answer
        return _say(True, f"{label}: recorded; it is judged by the grader")
    verdict = instant_verdict(spec, rule, output)
    _say(verdict.ok, f"{label}: {verdict.reason}")


def _say(ok: bool, text: str) -> None:
    """✔ on stdout, or ✘ on stderr (which also makes plain nbgrader score the cell 0).

    A failed check never raises: the rest of the test cell still runs, so its
    hidden checks still record evidence for the grader, whatever the kernel
    thought of the visible ones.
    """
    if ok:
        print(f"✔ {text}")
    else:
        print(f"✘ {text}", file=sys.stderr)


def instant_verdict(spec: dict[str, Any], rule: Any, output: Any) -> Verdict:
    """What the kernel can say at once (a public checker, or ``expect=``); the grader decides."""
    if callable(rule):
        expect = spec.get("expect", NOTHING)
        call = Call(args=spec["args"], output=output, expect=expect, params=spec["params"], context=kernel_context())
        try:
            return as_verdict(rule(call))
        except Exception as exc:  # noqa: BLE001 - a checker that cannot read this answer: it fails, saying why
            return Verdict(False, f"the check could not read this answer ({type(exc).__name__}: {exc})")
    if rule is not None:
        return Verdict(True, "recorded; it is judged when your notebook is graded")
    if "expect" in spec:
        if equal_json(output, spec["expect"], spec["ignore_order"]):
            return Verdict(True, "as expected")
        return Verdict(False, f"expected {shown(spec['expect'])}, got {shown(output)}")
    return Verdict(True, "recorded")


def kernel_context() -> Any:
    """How public checkers run code in a learner's kernel: the lab's own fast runner."""
    from .context import LabContext

    return LabContext()


def _label(answer: Any) -> str:
    name = getattr(answer, "__name__", None) if callable(answer) else None
    return name if isinstance(name, str) else "your answer"


def _emit(payload: dict[str, Any]) -> None:
    try:
        from IPython.core.interactiveshell import InteractiveShell

        in_kernel = InteractiveShell.initialized()
    except ImportError:  # pragma: no cover - IPython comes with every kernel
        in_kernel = False
    if in_kernel:
        from IPython.display import publish_display_data

        # The empty text stands in for the evidence wherever it is shown: the learner reads the
        # ✔ line or the failure instead.
        publish_display_data({EVIDENCE_MIME: payload, "text/plain": ""})
    else:
        EMITTED.append(copy.deepcopy(payload))


def setup(quiet_tracebacks: bool | None = None) -> None:
    """Run by an assignment's locked first cell.

    Under plain ``nbgrader autograde`` (``NBGRADER_EXECUTION`` set) tracebacks are
    cut to their last line, so feedback never quotes a hidden test cell. While
    the learner works they stay whole.
    """
    from .django_setup import ensure_django

    ensure_django()
    if quiet_tracebacks is None:
        quiet_tracebacks = bool(os.environ.get("NBGRADER_EXECUTION"))
    if quiet_tracebacks:
        try:
            from IPython import get_ipython
        except ImportError:  # pragma: no cover
            return
        ip = get_ipython()
        if ip is not None:
            ip.InteractiveTB.set_mode(mode="Minimal")


def student_frames(exc: BaseException, limit: int = 8) -> str:
    """The last lines of an exception's traceback, from the student's frames down."""
    tb = exc.__traceback__.tb_next if exc.__traceback__ else None
    lines = traceback.format_exception(type(exc), exc, tb)
    return "".join(lines[-limit:]).rstrip()


Checker = Callable[[Call], Any]

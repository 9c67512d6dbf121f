"""What each test cell of an instructor's notebook checks, read from the notebook itself.

The grader never asks a student's kernel what was checked: it reads the
instructor's notebook in ``source/<assignment>/`` (trusted code) and runs its
locked cells and test cells here, outside any kernel, with every name a
student defines replaced by a :class:`~miglab.evidence.convert.Placeholder`.
While it does, ``check(...)`` records each call's inputs and judgement
instead of running anything (:func:`miglab.evidence.record.reading_test_cells`),
and knows whether the call sits in a hidden test block. The result is a
:class:`Plan`: for every graded test cell, the calls that decide it.

A graded cell with at least one ``check(...)`` call is *judged*: the grader
scores it from the evidence the kernel recorded, by those calls' rules. A
graded cell without one is scored by nbgrader's own result in the kernel.

Reading runs in a child process (``python -m miglab.grading.plan``), so an
instructor's set-up cell cannot change the grader's own process.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# nbgrader's own delimiters (ClearHiddenTests): a line holding one of these starts or ends a hidden block.
BEGIN_HIDDEN = "BEGIN HIDDEN TESTS"
END_HIDDEN = "END HIDDEN TESTS"


@dataclass(frozen=True)
class PlannedCall:
    """One ``check(...)`` call of a test cell, as the grader knows it (plain JSON throughout)."""

    key: str
    args: list[Any]
    rule: dict[str, Any] | None
    probe: str
    ignore_order: bool
    forbid: list[Any]
    params: dict[str, Any]
    hidden: bool
    has_expect: bool = False
    expect: Any = None


@dataclass(frozen=True)
class CellPlan:
    notebook: str
    grade_id: str
    points: float
    calls: list[PlannedCall]  # empty: nbgrader's in-kernel result decides the cell
    has_asserts: bool = False  # assert statements (decided in the kernel) next to check() calls
    has_hidden: bool = False  # the cell carries a hidden test block

    @property
    def judged(self) -> bool:
        return bool(self.calls)


@dataclass
class Plan:
    cells: list[CellPlan] = field(default_factory=list)  # notebook order
    problems: list[Any] = field(default_factory=list)  # what stops the plan being trusted, for `check`
    notes: list[Any] = field(default_factory=list)  # worth knowing, harmless

    def cell(self, notebook: str, grade_id: str) -> CellPlan | None:
        for c in self.cells:
            if c.notebook == notebook and c.grade_id == grade_id:
                return c
        return None

    def to_json(self) -> dict[str, Any]:
        return {"cells": [asdict(c) for c in self.cells], "problems": self.problems, "notes": self.notes}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        cells = [CellPlan(**{**c, "calls": [PlannedCall(**k) for k in c["calls"]]}) for c in data["cells"]]
        return cls(cells=cells, problems=list(data["problems"]), notes=list(data.get("notes", [])))


# ------------------------------------------------------------------ reading a notebook


def read_plan(notebook: Path, folder: Path | None = None, timeout: float = 300) -> Plan:
    """The plan of one source notebook, read in a child process (see the module docstring)."""
    cmd = [sys.executable, "-m", "miglab.grading.plan", str(notebook)]
    env = {**os.environ, "PYTHONHASHSEED": "0", "MPLBACKEND": "agg"}
    env.pop("NBGRADER_EXECUTION", None)
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=str(folder or notebook.parent)
    )
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
        return Plan(problems=[f"{notebook.name}: the test cells could not be read: {tail[0]}"])
    return Plan.from_json(json.loads(done.stdout))


def plan_notebook(path: Path) -> Plan:
    """Read ``path`` in this process (the child of :func:`read_plan`)."""
    import nbformat

    from ..evidence.convert import ConversionError, Placeholder
    from ..evidence.record import reading_test_cells, set_segment

    nb = nbformat.read(str(path), as_version=4)
    plan = Plan()
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
    for name in sorted(student_names(nb)):
        namespace[name] = Placeholder(name)
    notebook = path.stem
    for index, cell in enumerate(nb.cells):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type != "code" or meta.get("solution") or not (meta.get("locked") or meta.get("grade")):
            continue  # answers, and unlocked cells a student may change, are never run here
        if not meta.get("grade"):
            problem = _run(cell.source, namespace, f"cell {index + 1}")
            if problem:
                plan.notes.append(
                    f"{notebook}: locked cell {index + 1} failed while the test cells were read: {problem}"
                )
            continue
        gid = str(meta.get("grade_id"))
        tree = _parse(cell.source)
        calls_check = tree is not None and _calls_check(tree)
        with reading_test_cells() as recorded:
            for segment, text in segments(cell.source):
                set_segment(segment)
                try:
                    problem = _run(text, namespace, f"test cell {gid}")
                except ConversionError as exc:
                    problem = f"a check's input depends on the student's answer or cannot be read ({exc})"
                if problem and calls_check:
                    plan.problems.append(f"{notebook}: test cell {gid}: {problem}")
            set_segment("visible")
        plan.cells.append(
            CellPlan(
                notebook=notebook,
                grade_id=gid,
                points=float(meta.get("points", 0) or 0),
                calls=[_planned(r) for r in recorded],
                has_asserts=tree is not None and _has_assert(tree),
                has_hidden=BEGIN_HIDDEN in cell.source,
            )
        )
    return plan


def _planned(spec: dict[str, Any]) -> PlannedCall:
    return PlannedCall(
        key=spec["key"],
        args=spec["args"],
        rule=spec["rule"],
        probe=spec["probe"],
        ignore_order=spec["ignore_order"],
        forbid=spec["forbid"],
        params=spec["params"],
        hidden=spec["segment"] == "hidden",
        has_expect="expect" in spec,
        expect=spec.get("expect"),
    )


def _run(source: str, namespace: dict[str, Any], where: str) -> str:
    """Execute trusted code with its output swallowed; the error text, or "" if it ran."""
    from ..evidence.convert import ConversionError

    try:
        code = compile(_without_magics(source), f"<{where}>", "exec")
    except SyntaxError as exc:
        return f"syntax error on line {exc.lineno}: {exc.msg}"
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            exec(code, namespace)
    except ConversionError:
        raise
    except Exception as exc:  # noqa: BLE001 - an instructor's cell that fails: reported to `check`, never fatal
        return f"{type(exc).__name__}: {exc}"
    return ""


def _without_magics(source: str) -> str:
    """IPython magics and shell escapes are not Python: they are left out of the reading."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def segments(source: str) -> list[tuple[str, str]]:
    """A test cell split into its visible parts and hidden test blocks, in order.

    Each part keeps its lines' numbers (blank lines stand in for the others),
    so an error names the line an instructor sees. A part that does not
    compile on its own (a hidden block inside an ``if``) makes the whole
    cell one hidden part.
    """
    lines = source.splitlines()
    parts: list[tuple[str, list[int]]] = []
    kind = "visible"
    current: list[int] = []
    for i, line in enumerate(lines):
        if BEGIN_HIDDEN in line or END_HIDDEN in line:
            parts.append((kind, current))
            kind, current = ("hidden" if BEGIN_HIDDEN in line else "visible"), []
            continue
        current.append(i)
    parts.append((kind, current))
    out = []
    for kind, numbers in parts:
        keep = set(numbers)
        text = "\n".join(lines[i] if i in keep else "" for i in range(len(lines)))
        if numbers:
            out.append((kind, text))
    try:
        for _, text in out:
            compile(_without_magics(text), "<part>", "exec")
    except SyntaxError:
        return [("hidden", source)]
    return out


def without_expected_answers(source: str) -> str:
    """A test cell as the student's kernel may run it: in hidden blocks, every ``check(...)``'s
    ``expect=`` value is replaced by ``...`` (the grader has it from the instructor's notebook).

    Hidden inputs must reach the kernel (the student's function is called on them); expected
    answers must not, or a ``check`` rebound by the student's code could echo them back as
    evidence. Line numbers are kept. A part that is not Python is left as it is (the kernel
    fails on it in any case).
    """
    lines = [line.encode() for line in source.splitlines(keepends=True)]  # ast offsets count UTF-8 bytes
    edits: list[tuple[int, int, int, int]] = []
    for kind, text in segments(source):
        tree = _parse(text) if kind == "hidden" else None
        for node in ast.walk(tree) if tree is not None else ():
            if isinstance(node, ast.Call) and _is_check(node):
                edits += [
                    (
                        k.value.lineno,
                        k.value.col_offset,
                        k.value.end_lineno or k.value.lineno,
                        k.value.end_col_offset or 0,
                    )
                    for k in node.keywords
                    if k.arg == "expect"
                ]
    for start, col, end, end_col in sorted(edits, reverse=True):
        head, tail = lines[start - 1][:col], lines[end - 1][end_col:]
        lines[start - 1 : end] = [head + b"..." + b"\n" * (end - start) + tail]
    return b"".join(lines).decode()


def _is_check(node: ast.Call) -> bool:
    return (isinstance(node.func, ast.Name) and node.func.id == "check") or (
        isinstance(node.func, ast.Attribute) and node.func.attr == "check"
    )


def student_names(nb: Any) -> set[str]:
    """Top-level names the notebook's answer cells and unlocked cells bind."""
    names: set[str] = set()
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type != "code" or (meta.get("locked") and not meta.get("solution")):
            continue
        tree = _parse(cell.source)
        for node in tree.body if tree is not None else []:
            names |= _bound(node)
    return names


def _bound(node: ast.stmt) -> set[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in node.names if a.name != "*"}
    targets: list[ast.expr] = []
    if isinstance(node, ast.Assign):
        targets = list(node.targets)
    elif isinstance(node, (ast.AnnAssign, ast.AugAssign, ast.For, ast.AsyncFor)):
        targets = [node.target]
    elif isinstance(node, (ast.With, ast.AsyncWith)):
        targets = [item.optional_vars for item in node.items if item.optional_vars is not None]
    return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}


def _parse(source: str) -> ast.Module | None:
    try:
        return ast.parse(_without_magics(source))
    except SyntaxError:
        return None


def _calls_check(tree: ast.Module) -> bool:
    return any(isinstance(n, ast.Call) and _is_check(n) for n in ast.walk(tree))


def _has_assert(tree: ast.Module) -> bool:
    return any(isinstance(n, ast.Assert) for n in ast.walk(tree))


def main(argv: list[str] | None = None) -> int:
    """``python -m miglab.grading.plan NOTEBOOK``: print the notebook's plan as JSON."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m miglab.grading.plan NOTEBOOK", file=sys.stderr)
        return 2
    path = Path(args[0]).resolve()
    with tempfile.TemporaryDirectory(prefix="miglab-plan-") as scratch:
        os.environ.setdefault("MIGLAB_WORKDIR", str(Path(scratch) / "labs"))
        out = sys.stdout
        plan = plan_notebook(path)
    out.write(json.dumps(plan.to_json()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

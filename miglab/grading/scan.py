"""What a student's own code uses, read from its text (never run): for ``forbid=`` and for review.

A test cell may say ``check(..., forbid=["django.db.migrations.optimizer",
"MigrationOptimizer", ".reduce", "miglab"])``: an answer that delegates the
question to Django's optimizer or to the course package then fails that
call. The student's code is every code cell nbgrader does not restore from
the instructor's notebook: answer cells and cells the student added.

Patterns:

* ``"name"`` (no dot): an identifier or attribute called ``name``, or a
  module ``name`` (or inside it) that is imported;
* ``"a.b.c"``: an imported module ``a.b.c`` or inside it, or the dotted
  expression ``a.b.c`` written out;
* ``".attr"``: an attribute called ``attr`` (``op.reduce(...)``), except
  ``functools.reduce``.

Code that imports or looks names up at run time (``__import__``,
``importlib``, ``exec``, ``eval``, ``compile``, ``getattr`` with a computed
name, ``sys.modules``, ``globals()``) cannot be read this way: it is flagged
for the instructor's review, never scored down on that ground alone.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

DYNAMIC_CALLS = {
    "__import__": "__import__()",
    "exec": "exec()",
    "eval": "eval()",
    "compile": "compile()",
    "globals": "globals()",
    "vars": "vars()",
    "locals": "locals()",
}


@dataclass
class CodeScan:
    identifiers: set[Any] = field(default_factory=set)  # names and attribute names used
    attributes: set[Any] = field(default_factory=set)  # attribute names only
    modules: set[Any] = field(default_factory=set)  # modules imported (dotted)
    dotted: set[Any] = field(default_factory=set)  # dotted expressions written out (a.b.c)
    dynamic: list[Any] = field(default_factory=list)  # why the code needs a human look
    unreadable: int = 0  # cells that are not valid Python

    def uses(self, pattern: str) -> bool:
        """Does the code use what ``pattern`` names (see the module docstring)?"""
        if pattern.startswith("."):
            return pattern[1:] in self.attributes
        if any(m == pattern or m.startswith(pattern + ".") for m in self.modules):
            return True
        if "." in pattern:
            return any(d == pattern or d.startswith(pattern + ".") for d in self.dotted)
        return pattern in self.identifiers

    def review_flags(self) -> list[str]:
        flags = sorted(set(self.dynamic))
        if self.unreadable:
            flags.append(f"{self.unreadable} code cell(s) are not valid Python")
        return flags


def scan_sources(sources: list[str]) -> CodeScan:
    """Read the student's code cells (IPython magics and shell lines left out)."""
    found = CodeScan()
    for source in sources:
        text = "\n".join("" if ln.lstrip().startswith(("%", "!")) else ln for ln in source.splitlines())
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError, RecursionError):
            found.unreadable += 1
            continue
        _Visitor(found).visit(tree)
    return found


class _Visitor(ast.NodeVisitor):
    def __init__(self, found: CodeScan):
        self.found = found

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.found.modules.add(alias.name)
            if alias.name.split(".")[0] == "importlib":
                self.found.dynamic.append("imports importlib")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        self.found.modules.add(base)
        for alias in node.names:
            self.found.modules.add(f"{base}.{alias.name}" if base else alias.name)
            self.found.identifiers.add(alias.name)
        if base.split(".")[0] == "importlib":
            self.found.dynamic.append("imports importlib")

    def visit_Name(self, node: ast.Name) -> None:
        self.found.identifiers.add(node.id)
        if node.id in ("__builtins__", "__loader__", "__spec__"):
            self.found.dynamic.append(f"uses {node.id}")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        chain = _dotted(node)
        if chain:
            self.found.dotted.add(chain)
            if chain == "sys.modules" or chain.startswith("sys.modules."):
                self.found.dynamic.append("uses sys.modules")
            if chain.startswith("importlib."):
                self.found.dynamic.append("uses importlib")
        if chain != "functools.reduce":
            self.found.attributes.add(node.attr)
        self.found.identifiers.add(node.attr)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Name):
            name = node.func.id
            if name in DYNAMIC_CALLS:
                self.found.dynamic.append(f"calls {DYNAMIC_CALLS[name]}")
            if (
                name in ("getattr", "setattr", "hasattr", "delattr")
                and len(node.args) >= 2
                and not (isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str))
            ):
                self.found.dynamic.append(f"calls {name}() with a computed name")
            if name in ("getattr", "hasattr") and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant):
                value = node.args[1].value
                if isinstance(value, str):  # getattr(x, "reduce") is x.reduce written differently
                    self.found.attributes.add(value)
                    self.found.identifiers.add(value)
        self.generic_visit(node)


def _dotted(node: ast.expr) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return ""
    parts.append(node.id)
    return ".".join(reversed(parts))

"""The shape of the package: layers that only import downwards, no assignment inside, names that do not collide.

* lab <- evidence, lab <- sandbox, and all three <- grading (import-linter's
  contract in pyproject.toml, run here): the lab never imports grading, and
  nothing imports grading but grading;
* the engine never imports an assignment (assignments are loaded from
  ``source/<a>/`` by path) and never names one;
* no two public names alike across the package's modules;
* the grading engine's functions are short enough to read at once.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "miglab"
ASSIGNMENTS = sorted(p.name for p in (REPO / "source").iterdir() if p.is_dir())
MAX_LINES = 60
# Names every layer may define once per module: the entry point of a `python -m` module.
SHARED_NAMES = {"main"}


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "template" not in p.parts)


def test_layers_import_only_downwards():
    lint = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    done = subprocess.run(
        [lint, "--config", str(REPO / "pyproject.toml")], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 2 kept, 0 broken" in done.stdout


def imported_top_levels(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", "") == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value.split(".")[0])
    return names


def named_strings(path: Path) -> list[str]:
    """String constants in code (docstrings and comments left out)."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(n.body[0].value)
        for n in ast.walk(tree)
        if isinstance(n, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        and n.body
        and isinstance(n.body[0], ast.Expr)
        and isinstance(n.body[0].value, ast.Constant)
    }
    return [
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings
    ]


def test_the_engine_never_imports_or_names_an_assignment():
    forbidden = {"source", "rules", *ASSIGNMENTS}
    for path in modules():
        assert not imported_top_levels(path) & forbidden, path
        if "grading" in path.parts or "evidence" in path.parts or "sandbox" in path.parts:
            named = [
                s
                for s in named_strings(path)
                if any(a in s for a in ASSIGNMENTS) and not s.startswith(("python -m", "e.g."))
            ]
            assert not named, (path, named)


def test_no_two_public_names_alike():
    where = defaultdict(list)
    for path in modules():
        if path.name == "__init__.py":
            continue
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not node.name.startswith(
                "_"
            ):
                where[node.name].append(path.relative_to(PACKAGE).as_posix())
    twice = {name: paths for name, paths in where.items() if len(paths) > 1 and name not in SHARED_NAMES}
    assert twice == {}


def test_grading_functions_are_short():
    long = []
    for path in modules():
        if "grading" not in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_LINES:
                    long.append(f"{path.name}:{node.name} ({lines} lines)")
    assert long == []

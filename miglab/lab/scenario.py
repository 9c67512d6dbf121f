"""A migration exercise run for real: a fresh lab project, rows in its tables, the answer, commands.

A :class:`Scenario` is plain data (it travels inside a test cell's
``check(...)`` call and through the grader as JSON)::

    Scenario(
        files={"library/models.py": MODELS, "library/migrations/0001_initial.py": M1, ...},
        setup=[["migrate", "library", "0002"]],           # before the answer exists
        rows={"library_book": [{"title": "Dune", "slug": ""}]},
        answer_path="library/migrations/0003_fill_slugs.py",
        later_files={"library/migrations/0004_book_isbn.py": M4},   # after the answer
        steps=[["migrate", "library", "0003"], ["migrate", "library", "0002"]],
        read={"books": "SELECT title, slug FROM library_book ORDER BY id"},
    )

:func:`run_scenario` writes the trusted files, runs the setup commands and
inserts the rows while no answer is on disk; then writes the answer (a
migration file's text) and the later files, runs each step with the
``manage`` it is given, and after each step reads every query of ``read``
from the database, read-only. It returns plain data::

    {"steps": [{"command": [...], "returncode": 0, "timed_out": False,
                "output": "...", "reads": {"books": [["Dune", "dune"]]}}, ...]}

or ``{"error": "..."}`` when the answer cannot even be written. ``manage``
is where the answer's code runs: the lab's own fast runner in a learner's
kernel, a sandbox (:class:`miglab.sandbox.session.Session`) in the grader.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .display import LabError
from .project import Lab

OUTPUT_TAIL = 1500      # characters of a step's output kept in the result
MAX_ROWS = 1000         # rows kept per query
MAX_VALUE = 10_000      # characters kept per value


@dataclass(frozen=True)
class Scenario:
    files: dict[str, str]
    answer_path: str
    steps: list[list[str]]
    read: dict[str, str]
    setup: list[list[str]] = field(default_factory=list)
    rows: dict[str, list[dict]] = field(default_factory=dict)
    later_files: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        """The scenario as plain data (for ``check(..., scenario=...)``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Scenario:
        known = {k: data[k] for k in ("files", "answer_path", "steps", "read", "setup", "rows", "later_files")
                 if k in data}
        return cls(**known)


Manage = Callable[..., Any]   # (project, args, timeout=...) -> an object with returncode/stdout/stderr/timed_out


def trusted_manage(project: Path, args: list[str], timeout: float = 120) -> Any:
    """The lab's own runner: for the scenario's setup (no answer on disk yet) and for learners."""
    from . import runner

    return runner.run_manage(project, args, timeout=timeout)


def run_scenario(scenario: Scenario, answer: str, *, manage: Manage = trusted_manage,
                 root: Path | None = None, timeout: float = 60) -> dict:
    """Run ``scenario`` with ``answer`` as its answer file (see the module docstring)."""
    folder = Path(tempfile.mkdtemp(prefix="miglab-scenario-", dir=root))
    try:
        lab = Lab("scenario", root=folder)
        _prepare(lab, scenario)
        try:
            lab.write_file(scenario.answer_path, answer)
        except LabError as exc:
            return {"error": str(exc)}
        for path, text in scenario.later_files.items():
            lab.write_file(path, text)
        return {"steps": _steps(lab, scenario, manage, timeout)}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _prepare(lab: Lab, scenario: Scenario) -> None:
    """The trusted part: files, setup commands and rows, before any answer is on disk."""
    for path, text in scenario.files.items():
        lab.write_file(path, text)
    for args in scenario.setup:
        done = trusted_manage(lab.path, list(args))
        if done.returncode != 0:
            raise RuntimeError(f"the scenario's set-up `{' '.join(args)}` failed: {(done.stdout + done.stderr)[-800:]}")
    if scenario.rows:
        con = sqlite3.connect(lab.db_path)
        try:
            with con:
                for table, rows in scenario.rows.items():
                    for row in rows:
                        names = ", ".join(f'"{k}"' for k in row)
                        marks = ", ".join("?" for _ in row)
                        con.execute(f'INSERT INTO "{table}" ({names}) VALUES ({marks})', list(row.values()))
        finally:
            con.close()


def _steps(lab: Lab, scenario: Scenario, manage: Manage, timeout: float) -> list[dict]:
    results = []
    for args in scenario.steps:
        done = manage(lab.path, [*args, "--no-color"] if args and args[0] == "migrate" else list(args),
                      timeout=timeout)
        output = (done.stdout + done.stderr).replace(str(lab.path), ".")
        step = {"command": list(args), "returncode": int(done.returncode), "timed_out": bool(done.timed_out),
                "output": output[-OUTPUT_TAIL:], "reads": {}}
        step["reads"] = read_database(lab.db_path, scenario.read)
        results.append(step)
        if done.returncode != 0:
            break
    return results


def read_database(db: Path, queries: dict[str, str]) -> dict[str, Any]:
    """Each query's rows (lists of plain values), read-only; a database that cannot be read says so.

    The file may have been written by learner code: it is opened read-only
    and never through a link (the sandbox removes links a command made).
    """
    reads: dict[str, Any] = {}
    if db.is_symlink() or not db.is_file():
        return {name: {"$error": "no database file"} for name in queries}
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        return {name: {"$error": f"the database could not be opened ({exc})"} for name in queries}
    try:
        for name, query in queries.items():
            try:
                rows = con.execute(query).fetchmany(MAX_ROWS)
                reads[name] = [[_plain(v) for v in row] for row in rows]
            except sqlite3.Error as exc:
                reads[name] = {"$error": f"{type(exc).__name__}: {exc}"}
    finally:
        con.close()
    return reads


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (int, float)):
        return value
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return text if len(text) <= MAX_VALUE else text[:MAX_VALUE] + "…"

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
inserts the rows (then runs ``setup_sql``, trusted SQL such as thousands of
rows from ``generate_series``) while no answer is on disk; then writes the
answer (a migration file's text; or, when ``answer_path`` is a list of
paths, a list of texts, one per path) and the later files, runs each step
with the ``manage`` it is given, and after each step reads every query of
``read`` from the database, read-only. It returns plain data::

    {"steps": [{"command": [...], "returncode": 0, "timed_out": False,
                "output": "...", "reads": {"books": [["Dune", "dune"]]}}, ...]}

(with ``"start": {reads}`` too, taken before the answer is written, when
``read_start`` is set) or ``{"error": "..."}`` when the answer cannot even be
written. ``manage`` is where the answer's code runs: the lab's own fast
runner in a learner's kernel, a sandbox
(:class:`miglab.sandbox.session.Session`) in the grader.

**On PostgreSQL** (``db="postgresql"``) the run gets a database of its own on
the course's server (:mod:`miglab.lab.postgres`) and a login role of its own
that owns it: a random name and password, no superuser, no CREATEDB or
CREATEROLE, a connection limit; the database is closed to every other role.
The answer's commands, the setup commands, the rows and every read connect as
that role (never as the superuser, who could run host programs with ``COPY
... TO PROGRAM``: nothing the answer made, a view or a function, ever runs
with more rights than the answer had). The commands learn where and who they
are from the environment (``MIGLAB_DB``, ``MIGLAB_PG_*``: the lab's template
settings read them), with ``pg_socket`` as the socket folder they see (a
sandbox binds the server's socket folder elsewhere). After every step the
role's connections are ended (a query the answer left running cannot change
what is read next), and at the end the database and the role are dropped.
Reads pin ``search_path``, time zone, date style and a statement timeout, so
settings the answer gave its role or database change nothing read; all the
reads of one run share a time budget (a slow view cannot stall the grader).
"""

from __future__ import annotations

import secrets
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .display import LabError
from .project import Lab

OUTPUT_TAIL = 1500  # characters of a step's output kept in the result
MAX_ROWS = 1000  # rows kept per query
MAX_VALUE = 10_000  # characters kept per value
BACKENDS = ("sqlite", "postgresql")
PG_CONNECTION_LIMIT = 8  # connections one scenario's role may hold (the server has 100 for everyone)
# Every read on PostgreSQL: read-only, bounded in time, with the server's own functions first on the
# search path and fixed formats, whatever the answer set for its role or its database.
PG_READ_SECONDS = 60  # all the reads of one run, together: a view the answer made slow cannot stall the grader
PG_READ_OPTIONS = (
    "-c default_transaction_read_only=on -c statement_timeout=5000 -c lock_timeout=5000 "
    "-c search_path=pg_catalog,public -c DateStyle=ISO,YMD -c TimeZone=UTC "
    "-c IntervalStyle=postgres -c extra_float_digits=1"
)
PG_SETUP_OPTIONS = "-c search_path=public -c DateStyle=ISO,YMD -c TimeZone=UTC"


@dataclass(frozen=True)
class Scenario:
    files: dict[str, str]
    answer_path: str | list[str]
    steps: list[list[str]]
    read: dict[str, str]
    setup: list[list[str]] = field(default_factory=list)
    rows: dict[str, list[dict]] = field(default_factory=dict)
    later_files: dict[str, str] = field(default_factory=dict)
    db: str = "sqlite"  # or "postgresql": a database of its own, see above
    setup_sql: list[str] = field(default_factory=list)  # trusted SQL after the rows, before the answer
    read_start: bool = False  # also read before the answer is written ("start")

    def as_dict(self) -> dict:
        """The scenario as plain data (for ``check(..., scenario=...)``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Scenario:
        known = {
            k: data[k]
            for k in (
                "files",
                "answer_path",
                "steps",
                "read",
                "setup",
                "rows",
                "later_files",
                "db",
                "setup_sql",
                "read_start",
            )
            if k in data
        }
        return cls(**known)


# (project, args, timeout=..., [env=...]) -> an object with returncode, stdout, stderr, timed_out
Manage = Callable[..., Any]


def trusted_manage(project: Path, args: list[str], timeout: float = 120, env: dict | None = None) -> Any:
    """The lab's own runner: for the scenario's setup (no answer on disk yet) and for learners."""
    from . import runner

    return runner.run_manage(project, args, timeout=timeout, env=env)


def run_scenario(
    scenario: Scenario,
    answer: str | list[str],
    *,
    manage: Manage = trusted_manage,
    root: Path | None = None,
    timeout: float = 60,
    pg_socket: str | None = None,
) -> dict:
    """Run ``scenario`` with ``answer`` as its answer file(s) (see the module docstring).

    ``pg_socket``: the PostgreSQL server's socket folder as ``manage``'s commands see it (default:
    where it is here). Raises :class:`miglab.lab.postgres.PostgresUnavailable` (a LabError) when a
    PostgreSQL scenario cannot have its server.
    """
    if scenario.db not in BACKENDS:
        raise LabError(f"a scenario runs on {' or '.join(BACKENDS)}, not {scenario.db!r}")
    db = ScenarioDatabase.create() if scenario.db == "postgresql" else None
    folder = None
    try:
        folder = Path(tempfile.mkdtemp(prefix="miglab-scenario-", dir=root))
        lab = Lab("scenario", root=folder)
        _prepare(lab, scenario, db)
        start = _read(lab, scenario, db) if scenario.read_start else None
        try:
            for path, text in _answer_files(scenario, answer):
                lab.write_file(path, text)
        except LabError as exc:
            return {"error": str(exc)}
        for path, text in scenario.later_files.items():
            lab.write_file(path, text)
        steps = _steps(lab, scenario, manage, timeout, db, pg_socket)
        return {"steps": steps} if start is None else {"start": start, "steps": steps}
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        if db is not None:
            db.drop()


def _answer_files(scenario: Scenario, answer: Any) -> list[tuple[str, str]]:
    if isinstance(scenario.answer_path, (list, tuple)):
        paths = list(scenario.answer_path)
        if not (
            isinstance(answer, (list, tuple)) and len(answer) == len(paths) and all(isinstance(a, str) for a in answer)
        ):
            raise LabError(
                f"the answer should be a list of {len(paths)} migration file texts, one for each of {', '.join(paths)}"
            )
        return list(zip(paths, answer))
    if not isinstance(answer, str):
        raise LabError("the answer should be the text of a migration file (a str)")
    return [(scenario.answer_path, answer)]


def _prepare(lab: Lab, scenario: Scenario, db: ScenarioDatabase | None) -> None:
    """The trusted part: files, setup commands and rows, before any answer is on disk."""
    for path, text in scenario.files.items():
        lab.write_file(path, text)
    for args in scenario.setup:
        done = trusted_manage(lab.path, list(args), **({"env": db.env()} if db is not None else {}))
        if done.returncode != 0:
            output = done.stdout + done.stderr
            raise RuntimeError(
                f"the scenario's set-up `{' '.join(args)}` failed: "
                f"{(db.clean(output) if db is not None else output)[-800:]}"
            )
    if db is not None:
        db.insert(scenario.rows, scenario.setup_sql)
        return
    if scenario.rows or scenario.setup_sql:
        con = sqlite3.connect(lab.db_path)
        try:
            with con:
                for table, rows in scenario.rows.items():
                    for row in rows:
                        names = ", ".join(f'"{k}"' for k in row)
                        marks = ", ".join("?" for _ in row)
                        con.execute(f'INSERT INTO "{table}" ({names}) VALUES ({marks})', list(row.values()))
                for statement in scenario.setup_sql:
                    con.execute(statement)
        finally:
            con.close()


def _steps(
    lab: Lab, scenario: Scenario, manage: Manage, timeout: float, db: ScenarioDatabase | None, pg_socket: str | None
) -> list[dict]:
    results = []
    env = {"env": db.env(pg_socket)} if db is not None else {}
    for args in scenario.steps:
        done = manage(
            lab.path, [*args, "--no-color"] if args and args[0] == "migrate" else list(args), timeout=timeout, **env
        )
        output = (done.stdout + done.stderr).replace(str(lab.path), ".")
        if db is not None:
            db.end_connections()  # what the command left running on the server stops here
            output = db.clean(output, pg_socket)
        step = {
            "command": list(args),
            "returncode": int(done.returncode),
            "timed_out": bool(done.timed_out),
            "output": output[-OUTPUT_TAIL:],
            "reads": {},
        }
        step["reads"] = _read(lab, scenario, db)
        results.append(step)
        if done.returncode != 0:
            break
    return results


def _read(lab: Lab, scenario: Scenario, db: ScenarioDatabase | None) -> dict[str, Any]:
    return db.read(scenario.read) if db is not None else read_database(lab.db_path, scenario.read)


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


# ------------------------------------------------------------------ PostgreSQL

ROLE_PREFIX = "scenario_"  # every scenario's role and database: scenario_<16 hex digits>


class ScenarioDatabase:
    """One scenario run's database on the course's PostgreSQL server, and the role that owns it.

    The role and the database share a random name; the password is random too. Nothing here ever
    connects to the database as the superuser: the superuser only creates the role and the database,
    ends the role's connections (from the ``postgres`` database, where the role cannot go) and drops
    both.
    """

    def __init__(self, server: Any, name: str, password: str):
        self.server, self.name, self.password = server, name, password
        self.read_seconds = 0.0  # spent on reads so far (at most PG_READ_SECONDS, then reads are refused)

    @classmethod
    def create(cls) -> ScenarioDatabase:
        from psycopg import sql

        from . import postgres

        server = postgres.server()  # PostgresUnavailable (a LabError) says why, and how to get it
        db = cls(server, ROLE_PREFIX + secrets.token_hex(8), secrets.token_urlsafe(24))
        server.create_role(db.name, db.password)
        try:
            with server.connect() as con:
                con.execute(
                    sql.SQL("ALTER ROLE {} CONNECTION LIMIT {}").format(
                        sql.Identifier(db.name), sql.Literal(PG_CONNECTION_LIMIT)
                    )
                )
            server.create_database(db.name, owner=db.name)
        except BaseException:
            db.drop()
            raise
        return db

    def env(self, socket: str | None = None) -> dict:
        """The environment of a ``manage.py`` command on this database, as this role; ``socket`` is
        the server's socket folder as the command sees it."""
        env = self.server.env(self.name, self.name, self.password)
        if socket is not None:
            env["MIGLAB_PG_HOST"] = str(socket)
        return env

    def connect(self, options: str):
        import psycopg

        return psycopg.connect(
            **self.server.conninfo(self.name, self.name, self.password), autocommit=True, options=options
        )

    def insert(self, rows: dict[str, list[dict]], statements: list[str]) -> None:
        """The scenario's rows and set-up SQL (trusted: no answer is on disk yet), as the role."""
        from psycopg import sql

        with self.connect(PG_SETUP_OPTIONS) as con, con.transaction():
            for table, items in rows.items():
                for row in items:
                    con.execute(
                        sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                            sql.Identifier(table),
                            sql.SQL(", ").join(map(sql.Identifier, row)),
                            sql.SQL(", ").join(sql.Placeholder() * len(row)),
                        ),
                        list(row.values()),
                    )
            for statement in statements:
                con.execute(statement)

    def read(self, queries: dict[str, str]) -> dict[str, Any]:
        """Each query's rows as plain values (autocommit: one failing query spoils no other)."""
        import psycopg

        try:
            con = self.connect(PG_READ_OPTIONS)
        except psycopg.Error as exc:
            why = self.clean(str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__)
            return {name: {"$error": f"the database could not be opened ({why})"} for name in queries}
        reads: dict[str, Any] = {}
        with con:
            for name, query in queries.items():
                if self.read_seconds > PG_READ_SECONDS:
                    reads[name] = {"$error": "not read: this run's reads took too long"}
                    continue
                started = time.monotonic()
                try:
                    cur = con.execute(query)
                    rows = cur.fetchmany(MAX_ROWS) if cur.description else []
                    reads[name] = [[_plain(v) for v in row] for row in rows]
                except psycopg.Error as exc:
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                    reads[name] = {"$error": self.clean(f"{type(exc).__name__}: {first}")}
                self.read_seconds += time.monotonic() - started
        return reads

    def end_connections(self) -> None:
        """End every connection of the role (waiting up to 5 s for each), as the superuser."""
        with self.server.connect() as con:
            con.execute(
                "SELECT pg_catalog.pg_terminate_backend(pid, 5000) FROM pg_catalog.pg_stat_activity "
                "WHERE usename = %s AND pid <> pg_catalog.pg_backend_pid()",
                (self.name,),
            )

    def clean(self, text: str, socket: str | None = None) -> str:
        """Output as it reads from run to run: no random names, socket folders, pids or oids."""
        from .postgres import sanitize

        for folder in {str(self.server.socket_dir), socket or ""} - {""}:
            text = text.replace(folder, "<socket folder>")
        return sanitize(text.replace(self.password, "<password>").replace(self.name, "scenario"))

    def drop(self) -> None:
        """Drop the database (its connections ended first) and the role. Never raises: a server that
        went away meanwhile forgets both when it stops."""
        for drop in (self.server.drop_database, self.server.drop_role):
            try:
                drop(self.name)
            except Exception:  # noqa: BLE001, S110 - nothing to do about it here
                pass

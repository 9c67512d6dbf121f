"""The course gradebook: made to match ``source/``, written by one process, checked.

* :func:`sync_gradebook` makes nbgrader's gradebook hold the assignment as
  ``source/`` describes it; if the graded cells changed after grades exist,
  it stops with what changed and the way forward instead of a traceback.
* :class:`GradebookWriter` is the only writer, used by the coordinator. For
  each student it first replaces ``autograded/<s>/<a>/`` and
  ``feedback/<s>/<a>/`` (each by one atomic rename, files made by the grader
  with safe modes), then writes the student's grades *and* a row of the
  ``miglab_results`` ledger in a single database transaction. The ledger row
  (submission hash, assignment version, status, reason, notes) is what makes
  a rerun skip a student, so a run killed at any point leaves either the old
  row (the student is graded again) or the new one (everything is in place).
* :func:`check_integrity` finds what is inconsistent.

Any SQLAlchemy URL nbgrader accepts works, e.g. a PostgreSQL gradebook
(``postgresql+psycopg://user:password@/grades?host=/socket/folder``, as
:meth:`miglab.lab.postgres.Server.sqlalchemy_url` makes). A URL whose Python
driver is not installed stops with one line saying which and how to get it
(:func:`require_driver`), never a traceback.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Boolean, Column, Float, MetaData, String, Table, Text, delete, insert, select

from .assignment import AssignmentError, generate
from .collect import parse_timestamp
from .model import NOT_RUN, AssignmentInfo, Result

_META = MetaData()
LEDGER = Table(
    "miglab_results",
    _META,
    Column("assignment", String(128), primary_key=True),
    Column("student", String(128), primary_key=True),
    Column("submission_hash", String(64), nullable=False),
    Column("assignment_version", String(64), nullable=False),
    Column("status", String(32), nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("notes", Text, nullable=False, default="[]"),  # JSON list, for the student
    Column("review", Text, nullable=False, default="[]"),  # JSON list, for the instructor
    Column("total", Float, nullable=False),
    Column("max_total", Float, nullable=False),
    Column("scores", Text, nullable=False),  # JSON: [{notebook, grade_id, score, max_score, reason, scored_by}]
    Column("judged", Boolean, nullable=False, default=False),
    Column("seconds", Float),
    Column("kernel_start", Float),
    Column("cell_seconds", Float),
    Column("graded_at", String(40), nullable=False),
)


# ------------------------------------------------------------------ the database

DRIVER_HINTS = {"psycopg": "pip install 'psycopg[binary]==3.3.9' (it is in requirements.txt: make setup)"}


def require_driver(db_url: str) -> None:
    """Raise :class:`AssignmentError` (one line) unless ``db_url`` names a database whose Python driver
    is installed and, for a database server, that answers: the instructor's to fix, not a crash to read."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        url = make_url(db_url)
        dialect = url.get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise AssignmentError(f"the gradebook URL is not one SQLAlchemy can open: {exc}") from None
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        module = (exc.name or dialect.driver or "").split(".")[0]
        where = url.render_as_string(hide_password=True)
        hint = DRIVER_HINTS.get(module, f"pip install {module}")
        raise AssignmentError(
            f"the gradebook {where} needs the Python driver {module!r}, which is not installed here: {hint}"
        ) from None
    if url.get_backend_name() != "sqlite":  # a server: say at once, in one line, if it cannot be reached
        _can_connect(url)


def _can_connect(url: Any) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.exc import SQLAlchemyError

    engine = create_engine(url)
    try:
        with engine.connect():
            pass
    except SQLAlchemyError as exc:
        why = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise AssignmentError(f"cannot open the gradebook {url.render_as_string(hide_password=True)}: {why}") from None
    finally:
        engine.dispose()


# ------------------------------------------------------------------ the assignment


def _cells(db_url: str, course_id: str, assignment_id: str) -> dict | None:
    """What a gradebook knows of an assignment: {(notebook, cell, kind): points or checksum}, or None."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(db_url, course_id) as gb:
        try:
            a = gb.find_assignment(assignment_id)
        except MissingEntry:
            return None
        out: dict = {}
        for nb in a.notebooks:
            for c in nb.grade_cells:
                out[(nb.name, c.name, "grade")] = float(c.max_score)
            for c in nb.source_cells:
                out[(nb.name, c.name, "source")] = c.checksum
        return out


def sync_gradebook(db_url: str, info: AssignmentInfo, root: Path) -> str:
    """Make the course gradebook hold the assignment exactly as in ``source/``.

    Returns "present", "created" or "updated". When graded cells were removed
    or renamed and grades exist for them, nbgrader refuses; that is an
    :class:`AssignmentError` naming the cells and the way forward.
    """
    require_driver(db_url)
    with tempfile.TemporaryDirectory(prefix="miglab-seed-") as t:
        seed_path = Path(t) / "seed.db"
        seed_path.write_bytes(info.seed_db)
        want = _cells(f"sqlite:///{seed_path}", info.course_id, info.assignment_id)
    have = _cells(db_url, info.course_id, info.assignment_id)
    if have == want:
        return "present"
    with tempfile.TemporaryDirectory(prefix="miglab-sync-") as t:
        try:
            generate(
                Path(root) / "source" / info.assignment_id,
                Path(t),
                info.assignment_id,
                info.course_id,
                db_url,
                info.config,
            )
        except AssignmentError as exc:
            raise AssignmentError(_changed_cells_message(info, have or {}, want or {}, exc)) from None
    return "created" if have is None else "updated"


def _changed_cells_message(info: AssignmentInfo, have: dict, want: dict, exc: Exception) -> str:
    graded = lambda cells: {(nb, c) for nb, c, kind in cells if kind == "grade"}
    gone = sorted(f"{nb}:{c}" for nb, c in graded(have) - graded(want))
    new = sorted(f"{nb}:{c}" for nb, c in graded(want) - graded(have))
    a = info.assignment_id
    return (
        f"the graded cells of {a} changed after submissions were graded "
        f"(removed: {', '.join(gone) or 'none'}; added: {', '.join(new) or 'none'}), and nbgrader keeps the "
        f"old cells' grades, so it cannot update the gradebook ({str(exc).splitlines()[-1][:200]}). "
        f"Either put the removed cells back, or start the assignment's grades afresh: "
        f"`python -m miglab.grading grade {a} --rebuild-gradebook` removes {a} and its grades from the "
        f"gradebook (students stay) and grades every submission again."
    )


def remove_assignment(db_url: str, course_id: str, assignment_id: str) -> None:
    """Delete an assignment, its submissions' grades and its ledger rows (students stay)."""
    from nbgrader.api import Gradebook, MissingEntry

    require_driver(db_url)
    with Gradebook(db_url, course_id) as gb:
        _META.create_all(gb.engine)
        try:
            gb.remove_assignment(assignment_id)
        except MissingEntry:
            pass
        with gb.engine.begin() as conn:
            conn.execute(delete(LEDGER).where(LEDGER.c.assignment == assignment_id))


# ------------------------------------------------------------------- the writer


@contextmanager
def one_transaction(gb: Any) -> Iterator[Any]:
    """Hold nbgrader's per-call commits (they become flushes) and commit once at the end."""
    session = gb.db
    session.commit = session.flush
    try:
        yield session
    except BaseException:
        del session.commit
        session.rollback()
        raise
    del session.commit
    session.commit()


class GradebookWriter:
    def __init__(self, db_url: str, course_id: str, root: Path):
        from nbgrader.api import Gradebook

        require_driver(db_url)
        self.db_url, self.course_id, self.root = db_url, course_id, Path(root)
        self._gb = Gradebook(db_url, course_id)
        _META.create_all(self._gb.engine)

    def close(self) -> None:
        self._gb.close()

    def __enter__(self) -> GradebookWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ledger(self, assignment: str) -> dict:
        """{student: row} of the ledger for ``assignment``."""
        with self._gb.engine.connect() as conn:
            rows = conn.execute(select(LEDGER).where(LEDGER.c.assignment == assignment)).mappings().all()
        return {r["student"]: dict(r) for r in rows}

    def record(self, result: Result) -> None:
        from .collect import write_tree

        a, sid = result.assignment_id, result.student_id
        write_tree(self.root / "autograded" / sid / a, result.autograded, private=True)
        write_tree(self.root / "feedback" / sid / a, result.feedback, private=False)
        gb = self._gb
        with warnings.catch_warnings(), one_transaction(gb) as session:
            warnings.simplefilter("ignore")  # SQLAlchemy 2.1 warns about nbgrader's own session use
            gb.update_or_create_student(sid)
            stamp = parse_timestamp(result.timestamp) if result.timestamp else None
            gb.update_or_create_submission(a, sid, **({"timestamp": stamp} if stamp else {}))
            for s in result.scores:
                grade = gb.find_grade(s.grade_id, s.notebook, a, sid)
                grade.auto_score = s.score
                grade.needs_manual_grade = grade.manual_score is not None or s.score is None
            self._comments(gb, result)
            session.execute(delete(LEDGER).where(LEDGER.c.assignment == a, LEDGER.c.student == sid))
            session.execute(insert(LEDGER).values(**ledger_row(result)))

    @staticmethod
    def _comments(gb: Any, result: Result) -> None:
        from nbgrader.api import MissingEntry

        for (nb_id, name), text in result.comments.items():
            try:
                gb.find_comment(name, nb_id, result.assignment_id, result.student_id).auto_comment = text
            except MissingEntry:
                continue  # a comment of a cell this gradebook does not have


def ledger_row(result: Result) -> dict:
    return {
        "assignment": result.assignment_id,
        "student": result.student_id,
        "submission_hash": result.submission_hash,
        "assignment_version": result.assignment_version,
        "status": result.status,
        "reason": result.reason or "",
        "notes": json.dumps(result.notes),
        "review": json.dumps(result.review),
        "total": float(result.total),
        "max_total": float(result.max_total),
        "scores": json.dumps(
            [
                {
                    "notebook": s.notebook,
                    "grade_id": s.grade_id,
                    "score": s.score,
                    "max_score": s.max_score,
                    "reason": s.reason,
                    "scored_by": s.scored_by,
                }
                for s in result.scores
            ]
        ),
        "judged": result.judged,
        "seconds": result.seconds,
        "kernel_start": result.kernel_start,
        "cell_seconds": result.cell_seconds,
        "graded_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }


# ----------------------------------------------------------------- integrity


def check_integrity(db_url: str, course_id: str, assignment: str, root: Path | None = None) -> list[str]:
    """Problems found in the gradebook for ``assignment`` (empty list: all good).

    Checks: SQLite's own integrity check (on SQLite only: other databases keep
    their files consistent themselves); one submission per student; every
    submitted notebook has exactly one grade per grade cell; scores within
    [0, max]; ledger rows match the gradebook's scores and students; the
    autograded notebook exists for every student whose submission could run.
    """
    from nbgrader.api import Gradebook, MissingEntry

    require_driver(db_url)
    problems = _sqlite_problems(db_url)
    with Gradebook(db_url, course_id) as gb:
        problems += _duplicate_submissions(gb.engine, assignment)
        try:
            a = gb.find_assignment(assignment)
        except MissingEntry:
            return [*problems, f"assignment {assignment} is not in the gradebook"]
        cells = {(nb.name, c.name) for nb in a.notebooks for c in nb.grade_cells}
        ledger = {}
        with gb.engine.connect() as conn:
            if gb.engine.dialect.has_table(conn, LEDGER.name):
                ledger = {
                    r["student"]: dict(r)
                    for r in conn.execute(select(LEDGER).where(LEDGER.c.assignment == assignment)).mappings()
                }
        subs = {s.student.id: s for s in a.submissions}
        for sid, sub in subs.items():
            problems += _submission_problems(sid, sub, cells, ledger.get(sid), a, root)
        problems += [f"ledger has {sid} but the gradebook has no submission" for sid in ledger if sid not in subs]
    return problems


def _sqlite_problems(db_url: str) -> list[str]:
    """SQLite's own check of its file (other databases: nothing to do here)."""
    if not db_url.startswith("sqlite:///"):
        return []
    con = sqlite3.connect(db_url[len("sqlite:///") :])
    try:
        verdict = con.execute("PRAGMA integrity_check").fetchone()[0]
        return [] if verdict == "ok" else [f"sqlite integrity_check: {verdict}"]
    finally:
        con.close()


def _submission_problems(sid: str, sub: Any, cells: set, row: dict | None, a: Any, root: Path | None) -> list[str]:
    problems = []
    seen: dict = {}
    for snb in sub.notebooks:
        for g in snb.grades:
            key = (snb.notebook.name, g.cell.name)
            seen[key] = seen.get(key, 0) + 1
            auto = g.auto_score
            if auto is not None and not (0 <= auto <= g.max_score + 1e-9):
                problems.append(f"{sid} {key}: score {auto} outside [0, {g.max_score}]")
    if set(seen) != cells or any(n != 1 for n in seen.values()):
        problems.append(f"{sid}: grades do not match the assignment's grade cells")
    if row is not None:
        total = sum((g.auto_score or 0) for snb in sub.notebooks for g in snb.grades)
        if abs(total - row["total"]) > 1e-6:
            problems.append(f"{sid}: gradebook total {total} != ledger total {row['total']}")
        if root is not None and row["status"] not in NOT_RUN:
            for nb in a.notebooks:
                if not (Path(root) / "autograded" / sid / a.name / f"{nb.name}.ipynb").exists():
                    problems.append(f"{sid}: autograded/{sid}/{a.name}/{nb.name}.ipynb is missing")
    return problems


def _duplicate_submissions(engine: Any, assignment: str) -> list[str]:
    """Students with more than one submission of ``assignment`` (plain SQL, any database)."""
    from sqlalchemy import text

    with engine.connect() as conn:
        if not engine.dialect.has_table(conn, "submitted_assignment"):
            return []
        dups = conn.execute(
            text(
                "SELECT s.student_id, COUNT(*) FROM submitted_assignment s JOIN assignment a ON s.assignment_id = a.id "
                "WHERE a.name = :name GROUP BY s.student_id HAVING COUNT(*) > 1"
            ),
            {"name": assignment},
        ).fetchall()
    return [f"student {s} has {n} submissions" for s, n in dups]

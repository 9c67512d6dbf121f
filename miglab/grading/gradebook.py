"""The one writer of the course gradebook, and its integrity check.

Only the coordinator calls :meth:`GradebookWriter.record`. For each student
it first replaces ``autograded/<s>/<a>/`` and ``feedback/<s>/<a>/`` (each by
an atomic rename), then writes the student's grades *and* a row of the
``miglab_grading`` ledger in a single database transaction. The ledger row
(submission hash + assignment version + status + reason) is what makes a
rerun skip a student, so a run killed at any point leaves either the old
row (the student is graded again) or the new one (everything is in place).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Boolean, Column, Float, MetaData, String, Table, Text, delete, insert, select

from .model import Result

_META = MetaData()
LEDGER = Table(
    "miglab_grading", _META,
    Column("assignment", String(128), primary_key=True),
    Column("student", String(128), primary_key=True),
    Column("submission_hash", String(64), nullable=False),
    Column("assignment_version", String(64), nullable=False),
    Column("status", String(32), nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("total", Float, nullable=False),
    Column("max_total", Float, nullable=False),
    Column("scores", Text, nullable=False),       # JSON: [{notebook, grade_id, score, max_score, reason}]
    Column("judged", Boolean, nullable=False, default=False),
    Column("seconds", Float), Column("kernel_start", Float), Column("cell_seconds", Float),
    Column("graded_at", String(40), nullable=False),
)


def _replace_dir(dest: Path, files: dict) -> None:
    """Make ``dest`` hold exactly ``files`` (relative path -> bytes), switching in one rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.new-{os.getpid()}"
    old = dest.parent / f".{dest.name}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)
    if not files:
        if dest.exists():
            dest.rename(old)
            shutil.rmtree(old, ignore_errors=True)
        return
    for rel, data in files.items():
        p = tmp / rel
        if not p.resolve().is_relative_to(tmp.resolve()):
            continue
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    if dest.exists():
        dest.rename(old)
    tmp.rename(dest)
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def one_transaction(gb):
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

        self.db_url, self.course_id, self.root = db_url, course_id, Path(root)
        self._gb = Gradebook(db_url, course_id)
        _META.create_all(self._gb.engine)

    def close(self):
        self._gb.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def ledger(self, assignment: str) -> dict:
        """{student: row} of the ledger for ``assignment``."""
        with self._gb.engine.connect() as conn:
            rows = conn.execute(select(LEDGER).where(LEDGER.c.assignment == assignment)).mappings().all()
        return {r["student"]: dict(r) for r in rows}

    def record(self, result: Result) -> None:
        from nbgrader.utils import parse_utc

        a, sid = result.assignment_id, result.student_id
        _replace_dir(self.root / "autograded" / sid / a, result.autograded)
        _replace_dir(self.root / "feedback" / sid / a, result.feedback)
        gb = self._gb
        with warnings.catch_warnings(), one_transaction(gb) as session:
            warnings.simplefilter("ignore")  # SQLAlchemy 2.1 warns about nbgrader's own session use
            gb.update_or_create_student(sid)
            kwargs = {"timestamp": parse_utc(result.timestamp)} if result.timestamp else {}
            gb.update_or_create_submission(a, sid, **kwargs)
            for s in result.scores:
                grade = gb.find_grade(s.grade_id, s.notebook, a, sid)
                grade.auto_score = s.score
                grade.needs_manual_grade = grade.manual_score is not None or s.score is None
            for (nb_id, name), text in result.comments.items():
                try:
                    gb.find_comment(name, nb_id, a, sid).auto_comment = text
                except Exception:
                    pass
            session.execute(delete(LEDGER).where(LEDGER.c.assignment == a, LEDGER.c.student == sid))
            session.execute(insert(LEDGER).values(
                assignment=a, student=sid, submission_hash=result.submission_hash,
                assignment_version=result.assignment_version, status=result.status,
                reason=result.reason or "", total=float(sum(s.score or 0 for s in result.scores)),
                max_total=float(result.max_total),
                scores=json.dumps([{"notebook": s.notebook, "grade_id": s.grade_id, "score": s.score,
                                    "max_score": s.max_score, "reason": s.reason} for s in result.scores]),
                judged=result.judged, seconds=result.seconds, kernel_start=result.kernel_start,
                cell_seconds=result.cell_seconds, graded_at=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            ))


def check_integrity(db_url: str, course_id: str, assignment: str, root: Path | None = None) -> list[str]:
    """Problems found in the gradebook for ``assignment`` (empty list: all good).

    Checks: SQLite's own integrity check; one submission per student; every
    submitted notebook has exactly one grade per grade cell; scores within
    [0, max]; ledger rows match the gradebook's scores and students; the
    autograded notebook exists for every student whose submission could run.
    """
    from nbgrader.api import Gradebook, MissingEntry

    problems: list[str] = []
    if db_url.startswith("sqlite:///"):
        con = sqlite3.connect(db_url[len("sqlite:///"):])
        try:
            verdict = con.execute("PRAGMA integrity_check").fetchone()[0]
            if verdict != "ok":
                problems.append(f"sqlite integrity_check: {verdict}")
            dups = con.execute(
                "SELECT student_id, COUNT(*) FROM submitted_assignment s JOIN assignment a ON s.assignment_id = a.id "
                "WHERE a.name = ? GROUP BY student_id HAVING COUNT(*) > 1", (assignment,)).fetchall()
            problems += [f"student {s} has {n} submissions" for s, n in dups]
        finally:
            con.close()
    with Gradebook(db_url, course_id) as gb:
        try:
            a = gb.find_assignment(assignment)
        except MissingEntry:
            return problems + [f"assignment {assignment} is not in the gradebook"]
        cells = {(nb.name, c.name): c.max_score for nb in a.notebooks for c in nb.grade_cells}
        ledger = {}
        with gb.engine.connect() as conn:
            if gb.engine.dialect.has_table(conn, "miglab_grading"):
                ledger = {r["student"]: dict(r) for r in conn.execute(
                    select(LEDGER).where(LEDGER.c.assignment == assignment)).mappings()}
        subs = {s.student.id: s for s in a.submissions}
        for sid, sub in subs.items():
            seen = {}
            for snb in sub.notebooks:
                for g in snb.grades:
                    key = (snb.notebook.name, g.cell.name)
                    seen[key] = seen.get(key, 0) + 1
                    auto = g.auto_score
                    if auto is not None and not (0 <= auto <= g.max_score + 1e-9):
                        problems.append(f"{sid} {key}: score {auto} outside [0, {g.max_score}]")
            if set(seen) != set(cells) or any(n != 1 for n in seen.values()):
                problems.append(f"{sid}: grades do not match the assignment's grade cells")
            row = ledger.get(sid)
            if row is not None:
                total = sum((g.auto_score or 0) for snb in sub.notebooks for g in snb.grades)
                if abs(total - row["total"]) > 1e-6:
                    problems.append(f"{sid}: gradebook total {total} != ledger total {row['total']}")
                if root is not None and row["status"] not in ("malformed", "missing", "error"):
                    for nb in a.notebooks:
                        if not (Path(root) / "autograded" / sid / assignment / f"{nb.name}.ipynb").exists():
                            problems.append(f"{sid}: autograded/{sid}/{assignment}/{nb.name}.ipynb is missing")
        for sid in ledger:
            if sid not in subs:
                problems.append(f"ledger has {sid} but the gradebook has no submission")
    return problems

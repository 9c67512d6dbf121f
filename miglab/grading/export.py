"""``python -m miglab.grading export ASSIGNMENT --format canvas|moodle|csv``: grades in the shape an LMS imports.

* ``canvas``: Canvas's gradebook import (Grades → Import). The header is
  Canvas's identity columns, ``Student,ID,SIS User ID,SIS Login ID,Section``,
  then one points column for the assignment (named by ``--column``: an
  existing Canvas assignment as ``Title (canvas id)``, as Canvas's own export
  names it, else the assignment id, which Canvas makes a new assignment of); a
  ``Points Possible`` row gives its points; then one row per student.
  Canvas finds a student by ``ID`` (its user id), else ``SIS User ID``, else
  ``SIS Login ID``, else the name in ``Student``.
* ``moodle``: Moodle's assignment grading worksheet (the assignment → "Upload
  grading worksheet"): ``Identifier`` (``Participant <n>``, the number in
  Moodle's "Download all submissions" names), ``Full name``, ``Email
  address``, ``Grade``, ``Maximum Grade`` and ``Last modified (grade)`` (Moodle
  needs it: it does not overwrite a grade changed in Moodle after that time).
* ``csv``: this course's own per-question file (``reports/<a>/grades.csv``, as
  :mod:`~miglab.grading.reports` writes it after grading).

Where a student's LMS identity comes from, first found first:

1. ``--roster FILE``: the LMS's own file of the class, matched on the
   student's ids (Canvas: its gradebook export, "Export Entire Gradebook",
   whose identity columns are copied as they are; Moodle: its downloaded
   grading worksheet, whose ``Identifier`` is copied), by LMS id, SIS ids or
   e-mail;
2. nbgrader's student table (``nbgrader db student add ID --lms-user-id=...
   --first-name=... --last-name=... --email=...`` or ``nbgrader db student
   import``): ``lms_user_id`` is the Canvas user id (``ID``) or the Moodle
   participant number; names and e-mail fill ``Student`` / ``Full name`` /
   ``Email address``;
3. the student id itself: an id made of digits is the LMS's own (what the
   LMS import, :mod:`~miglab.grading.lms`, takes from Canvas's and Moodle's
   file names); for Canvas, any other id (an exchange or JupyterHub user
   name) is given as ``SIS Login ID``.

A Moodle row needs an ``Identifier``: students without one are left out and
named in the report. Submissions whose grading failed in the grader itself
(status ``error``) are never exported as a grade (regrade them first).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

FORMATS = ("canvas", "moodle", "csv")
CANVAS_IDENTITY = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
CANVAS_POINTS_ROW = "    Points Possible"  # as Canvas's own export writes it (Canvas checks it "includes" this)
MOODLE_COLUMNS = ["Identifier", "Full name", "Email address", "Grade", "Maximum Grade", "Last modified (grade)"]
MOODLE_PARTICIPANT = "Participant "
DEFAULT_FILES = {"canvas": "canvas.csv", "moodle": "moodle.csv", "csv": "grades.csv"}


class ExportError(Exception):
    pass


@dataclass
class ExportReport:
    path: Path
    format: str
    exported: list = field(default_factory=list)  # student ids written
    left_out: list = field(default_factory=list)  # (student id, why)
    warnings: list = field(default_factory=list)

    def text(self) -> str:
        lines = [f"{self.format}: {len(self.exported)} students written to {self.path}"]
        lines += [f"  left out {sid}: {why}" for sid, why in self.left_out]
        lines += [f"  {w}" for w in self.warnings]
        return "\n".join(lines)


@dataclass(frozen=True)
class Person:
    """What is known of one student: nbgrader's id and its student table."""

    id: str
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    lms_user_id: str = ""

    @property
    def lms_id(self) -> str:
        """The LMS's id of this student: the recorded one, else the student id when it is the LMS's (digits)."""
        return self.lms_user_id or (self.id if self.id.isdigit() else "")

    @property
    def sortable_name(self) -> str:
        if self.first_name or self.last_name:
            return ", ".join(p for p in (self.last_name, self.first_name) if p)
        return self.id

    @property
    def full_name(self) -> str:
        return " ".join(p for p in (self.first_name, self.last_name) if p) or self.id

    def ids(self) -> set[str]:
        return {v for v in (self.id, self.lms_user_id) if v}


def people(db_url: str, course_id: str) -> dict[str, Person]:
    from nbgrader.api import Gradebook

    with Gradebook(db_url, course_id) as gb:
        return {
            s.id: Person(
                id=s.id,
                first_name=s.first_name or "",
                last_name=s.last_name or "",
                email=s.email or "",
                lms_user_id=str(s.lms_user_id or ""),
            )
            for s in gb.students
        }


def points(value: float) -> str:
    """A score as an LMS reads it: at most two decimals, no trailing zeros."""
    text = f"{round(float(value), 2):.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def read_roster(path: Path) -> list[dict]:
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ExportError(f"cannot read the roster {path}: {exc}") from None
    return list(csv.DictReader(io.StringIO(text)))


def _canvas_match(person: Person, roster: list[dict]) -> dict | None:
    ids = person.ids()
    for row in roster:
        if "Points Possible" in (row.get("Student") or "") or not (row.get("ID") or row.get("SIS Login ID")):
            continue
        values = {(row.get(k) or "").strip() for k in ("ID", "SIS User ID", "SIS Login ID")} - {""}
        if values & ids or (person.email and (row.get("SIS Login ID") or "").strip().lower() == person.email.lower()):
            return row
    return None


def _moodle_match(person: Person, roster: list[dict]) -> dict | None:
    for row in roster:
        ident = (row.get("Identifier") or "").strip()
        number = ident[len(MOODLE_PARTICIPANT) :] if ident.startswith(MOODLE_PARTICIPANT) else ""
        if number and number in person.ids():
            return row
        email = (row.get("Email address") or "").strip().lower()
        if person.email and email == person.email.lower():
            return row
    return None


def canvas_rows(
    rows: list[dict],
    who: dict[str, Person],
    column: str,
    max_total: float,
    roster: list[dict] | None,
    report: ExportReport,
    scale: float,
) -> list[list[str]]:
    out = [[*CANVAS_IDENTITY, column], [CANVAS_POINTS_ROW, "", "", "", "", points(max_total * scale)]]
    unmatched = []
    for row in rows:
        person = who.get(row["student_id"]) or Person(id=row["student_id"])
        found = _canvas_match(person, roster) if roster is not None else None
        if found is not None:
            identity = [(found.get(k) or "").strip() for k in CANVAS_IDENTITY]
        else:
            if roster is not None:
                unmatched.append(person.id)
            login = "" if person.lms_id else person.id
            identity = [person.sortable_name, person.lms_id, "", login, ""]
        out.append([*identity, points(row["total"] * scale)])
        report.exported.append(person.id)
    if unmatched:
        report.warnings.append(f"not in the roster (written with what nbgrader knows): {', '.join(unmatched)}")
    return out


def moodle_rows(
    rows: list[dict],
    who: dict[str, Person],
    max_total: float,
    roster: list[dict] | None,
    graded_at: dict[str, str],
    report: ExportReport,
    scale: float,
) -> list[list[str]]:
    out = [list(MOODLE_COLUMNS)]
    for row in rows:
        person = who.get(row["student_id"]) or Person(id=row["student_id"])
        found = _moodle_match(person, roster) if roster is not None else None
        if found is not None:
            ident = found["Identifier"].strip()
            name = (found.get("Full name") or "").strip() or person.full_name
            email = (found.get("Email address") or "").strip() or person.email
        elif person.lms_id:
            ident, name, email = MOODLE_PARTICIPANT + person.lms_id, person.full_name, person.email
        else:
            report.left_out.append(
                (
                    person.id,
                    "no Moodle participant number (a roster, an lms_user_id, or an "
                    "id from Moodle's download names gives one)",
                )
            )
            continue
        out.append(
            [ident, name, email, points(row["total"] * scale), points(max_total * scale), graded_at.get(person.id, "")]
        )
        report.exported.append(person.id)
    return out


def _graded_at(db_url: str, course_id: str, assignment: str) -> dict[str, str]:
    """When each student's result was recorded (the ledger), as Moodle's strtotime reads it."""
    from nbgrader.api import Gradebook
    from sqlalchemy import select

    from .gradebook import LEDGER

    with Gradebook(db_url, course_id) as gb, gb.engine.connect() as conn:
        if not gb.engine.dialect.has_table(conn, LEDGER.name):
            return {}
        return {
            r.student: r.graded_at
            for r in conn.execute(select(LEDGER.c.student, LEDGER.c.graded_at).where(LEDGER.c.assignment == assignment))
        }


def write_rows(path: Path, rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    os.replace(tmp, path)
    return path


def _gradable(rows: list[dict], report: ExportReport) -> list[dict]:
    """The rows that may go to an LMS: never a submission the grader failed on."""
    graded = []
    for row in rows:
        if row.get("status") == "error":
            why = "the grader failed on this submission (status error): grade it again before exporting"
            report.left_out.append((row["student_id"], why))
        else:
            graded.append(row)
    return graded


def _warn_unmatched(out: list[list[str]], listed: object, report: ExportReport) -> None:
    no_id = [r[3] or "?" for r in out[2:] if not r[1] and not r[2]]
    if no_id and listed is None:
        report.warnings.append(
            f"{len(no_id)} students have no Canvas user id (ID), so Canvas matches them by "
            f"SIS Login ID, then name: {', '.join(no_id)}. A --roster (Canvas's gradebook "
            "export) or nbgrader's lms_user_id makes the match exact."
        )


def export(
    db_url: str,
    course_id: str,
    assignment: str,
    fmt: str,
    output: Path,
    *,
    column: str | None = None,
    roster: Path | None = None,
    out_of: float | None = None,
) -> ExportReport:
    """Write ``assignment``'s grades from the gradebook at ``db_url`` to ``output`` in format ``fmt``."""
    from nbgrader.api import MissingEntry

    from .reports import table, write_csv

    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    output = Path(output)
    report = ExportReport(path=output, format=fmt)
    try:
        questions, rows = table(db_url, course_id, assignment)
    except MissingEntry:
        raise ExportError(f"{assignment} is not in the gradebook {db_url}: grade it first") from None
    if fmt == "csv":
        write_csv(output, questions, rows)
        report.exported = [r["student_id"] for r in rows]
        return report
    max_total = rows[0]["max_total"] if rows else _max_total(db_url, course_id, assignment)
    if out_of is not None and out_of <= 0:
        raise ExportError("--out-of must be a positive number of points")
    scale = (out_of / max_total) if out_of and max_total else 1.0
    graded = _gradable(rows, report)
    who = people(db_url, course_id)
    listed = read_roster(roster) if roster else None
    if fmt == "canvas":
        out = canvas_rows(graded, who, column or assignment, max_total, listed, report, scale)
        _warn_unmatched(out, listed, report)
    else:
        out = moodle_rows(graded, who, max_total, listed, _graded_at(db_url, course_id, assignment), report, scale)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        for line in out[1:]:
            line[5] = line[5] or stamp
    write_rows(output, out)
    return report


def _max_total(db_url: str, course_id: str, assignment: str) -> float:
    from nbgrader.api import Gradebook

    with Gradebook(db_url, course_id) as gb:
        a = gb.find_assignment(assignment)
        return float(sum(c.max_score for nb in a.notebooks for c in nb.grade_cells))


def default_output(course: Path, assignment: str, fmt: str) -> Path:
    return Path(course) / "reports" / assignment / DEFAULT_FILES[fmt]

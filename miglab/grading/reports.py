"""Grades out of the gradebook: the per-question CSV and the chart of the class (``reports/<a>/``).

The CSV holds one row per student: a column per graded cell (the manual
score where a grader set one, else the automatic one), ``total``,
``max_total``, ``status`` and ``reason`` (the main cause, its first line),
``notes`` (what was fixed or skipped in the submission), ``review`` (answers
worth a human look: code that imports or looks names up at run time) and
``scored_in_kernel`` (the cells whose score nbgrader decided inside the
student's kernel, from asserts: forgeable, unlike the judged ones).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from sqlalchemy import select

from .gradebook import LEDGER


def table(db_url: str, course_id: str, assignment: str) -> tuple[list[str], list[dict]]:
    """(question ids in notebook order, one row per student with a submission).

    A row holds the columns of the module docstring; ``status`` is
    "nbgrader" when plain nbgrader graded the submission (no ledger row).
    """
    from nbgrader.api import Gradebook

    with Gradebook(db_url, course_id) as gb:
        a = gb.find_assignment(assignment)
        questions, max_total = [], 0.0
        for nb in a.notebooks:
            order = {c.name: i for i, c in enumerate(nb.source_cells)}
            for c in sorted(nb.grade_cells, key=lambda c: order.get(c.name, 0)):
                questions.append(c.name if len(a.notebooks) == 1 else f"{nb.name}:{c.name}")
                max_total += c.max_score
        with gb.engine.connect() as conn:
            ledger = {}
            if gb.engine.dialect.has_table(conn, LEDGER.name):
                ledger = {
                    r["student"]: r
                    for r in conn.execute(select(LEDGER).where(LEDGER.c.assignment == assignment)).mappings()
                }
        rows = []
        for sub in sorted(a.submissions, key=lambda s: s.student.id):
            row = {"student_id": sub.student.id}
            total = 0.0
            for snb in sub.notebooks:
                for g in snb.grades:
                    key = g.name if len(a.notebooks) == 1 else f"{snb.notebook.name}:{g.name}"
                    score = g.score or 0.0
                    row[key] = score
                    total += score
            row["total"] = total
            row["max_total"] = max_total
            rows.append({**row, **_ledger_columns(ledger.get(sub.student.id))})
    return questions, rows


def _ledger_columns(entry: Any) -> dict:
    if entry is None:
        return {"status": "nbgrader", "reason": "", "notes": "", "review": "", "scored_in_kernel": ""}
    in_kernel = [s["grade_id"] for s in json.loads(entry["scores"]) if s.get("scored_by") == "nbgrader"]
    return {
        "status": entry["status"],
        "reason": (entry["reason"] or "").splitlines()[0] if entry["reason"] else "",
        "notes": "; ".join(json.loads(entry["notes"] or "[]")),
        "review": "; ".join(json.loads(entry["review"] or "[]")),
        "scored_in_kernel": " ".join(in_kernel),
    }


EXTRA_COLUMNS = ["total", "max_total", "status", "reason", "notes", "review", "scored_in_kernel"]


def write_csv(path: Path, questions: list[str], rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["student_id", *questions, *EXTRA_COLUMNS])
        w.writeheader()
        for row in rows:
            w.writerow({k: (f"{v:g}" if isinstance(v, float) else v) for k, v in row.items()})
    tmp.replace(path)
    return path


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (the grader may run without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_reports(db_url: str, course_id: str, assignment: str, folder: Path) -> tuple[Path, Path]:
    from nbgrader.api import Gradebook

    questions, rows = table(db_url, course_id, assignment)
    with Gradebook(db_url, course_id) as gb:
        a = gb.find_assignment(assignment)
        max_scores = {}
        for nb in a.notebooks:
            for c in nb.grade_cells:
                max_scores[c.name if len(a.notebooks) == 1 else f"{nb.name}:{c.name}"] = c.max_score
    max_scores["total"] = sum(max_scores.values())
    csv_path = write_csv(Path(folder) / "grades.csv", questions, rows)
    from .chart import write_chart

    chart = write_chart(
        Path(folder) / "scores.png", questions, rows, max_scores, f"{assignment}: scores of {len(rows)} students"
    )
    return csv_path, chart

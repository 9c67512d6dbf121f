"""Grades out of the gradebook: a CSV an LMS can import and a chart of scores per question."""

from __future__ import annotations

import csv
from pathlib import Path

from sqlalchemy import select

from .gradebook import LEDGER


def table(db_url: str, course_id: str, assignment: str) -> tuple[list[str], list[dict]]:
    """(question ids in notebook order, one row per student with a submission).

    A row holds ``student_id``, one score per question (the manual score when
    a grader set one, else the autograder's), ``total``, ``max_total``,
    ``status`` and ``reason`` (from the batch grader's ledger; "nbgrader" when
    the submission was graded by plain nbgrader).
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
            if gb.engine.dialect.has_table(conn, "miglab_grading"):
                ledger = {r["student"]: r for r in conn.execute(
                    select(LEDGER).where(LEDGER.c.assignment == assignment)).mappings()}
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
            entry = ledger.get(sub.student.id)
            row["status"] = entry["status"] if entry else "nbgrader"
            row["reason"] = entry["reason"] if entry else ""
            rows.append(row)
    return questions, rows


def write_csv(path: Path, questions: list[str], rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["student_id", *questions, "total", "max_total", "status", "reason"])
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


def write_chart(path: Path, questions: list[str], rows: list[dict], max_scores: dict, title: str) -> Path:
    """One small histogram per question (and one for the total): how many students got each score."""
    plt = pyplot()

    panels = [*questions, "total"]
    cols = min(4, len(panels))
    nrows = -(-len(panels) // cols)
    width, height = 3.2 * cols, 2.4 * nrows
    fig, axes = plt.subplots(nrows, cols, figsize=(width, height), squeeze=False)
    # Fixed margins (in inches, turned into fractions): the panels are all alike, so matplotlib's
    # tight_layout (a second of text measuring for a class-sized chart) would find the same.
    fig.subplots_adjust(left=0.55 / width, right=1 - 0.15 / width, bottom=0.45 / height, top=1 - 0.75 / height,
                        wspace=0.35, hspace=0.75)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, q in zip(axes.flat, panels):
        values = [float(r.get(q, 0.0)) for r in rows]
        top = max_scores.get(q, max(values, default=1.0)) or 1.0
        distinct = sorted({*values, 0.0, top})
        counts = [sum(1 for v in values if v == d) for d in distinct]
        ax.bar([f"{d:g}" for d in distinct], counts, color="#4c72b0" if q != "total" else "#dd8452")
        mean = sum(values) / len(values) if values else 0.0
        ax.set_title(f"{q}\nmean {mean:.2g} / {top:g}", fontsize=8)
        ax.set_xlabel("points", fontsize=7)
        ax.set_ylabel("students", fontsize=7)
        ax.tick_params(labelsize=7)
        ax.yaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(title, fontsize=10, y=1 - 0.12 / height)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


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
    chart = write_chart(Path(folder) / "scores.png", questions, rows, max_scores,
                        f"{assignment}: scores of {len(rows)} students")
    return csv_path, chart

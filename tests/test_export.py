"""`python -m miglab.grading export`: each format's exact header and rows for a small graded class.

The class, graded once by the course's own command: two students from a Canvas download
(their ids are Canvas user ids, 1001 and 1002), one from the exchange whose nbgrader student
record carries her names, e-mail and LMS id (carol), and one whose notebook is not a notebook
(dave: status malformed, nothing known of him but his id).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from miglab.grading.validate import scratch_course

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
BIN = Path(PY).parent
SAMPLE = REPO / "tests" / "submissions" / "deep_dive"
A = "deep_dive"
EXPECTED = json.loads((SAMPLE / "expected.json").read_text())
FULL, PART = EXPECTED["perfect"]["total"], EXPECTED["partial"]["total"]


def sh(args, cwd, ok=True):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    out = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if ok:
        assert out.returncode == 0, f"{args}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    base = tmp_path_factory.mktemp("export")
    course = scratch_course(base / "course", REPO, A)
    download = base / "canvas.zip"
    with zipfile.ZipFile(download, "w") as zf:
        zf.write(SAMPLE / "perfect.ipynb", "smithalice_1001_555_deep_dive.ipynb")
        zf.write(SAMPLE / "partial.ipynb", "jonesbob_LATE_1002_556_deep_dive.ipynb")
    sh([PY, "-m", "miglab.grading", "import", download, A, "--course", course], base)
    for sid, kind in (("carol", "blank"), ("dave", "malformed")):
        folder = course / "submitted" / sid / A
        folder.mkdir(parents=True)
        shutil.copy(SAMPLE / f"{kind}.ipynb", folder / f"{A}.ipynb")
        (folder / "timestamp.txt").write_text("2026-11-30 10:00:00.000000 UTC")
    sh(
        [
            BIN / "nbgrader",
            "db",
            "student",
            "add",
            "carol",
            "--first-name=Carol",
            "--last-name=Diaz",
            "--email=carol@example.edu",
            "--lms-user-id=1003",
        ],
        course,
    )
    out = sh([PY, "-m", "miglab.grading", "grade", A, "--course", course, "--no-progress", "-j", "2"], base)
    assert "graded 4" in out.stdout, out.stdout
    return course


def export(course, *args, ok=True):
    return sh([PY, "-m", "miglab.grading", "export", A, "--course", course, *args], course, ok=ok)


def rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def graded_at(course: Path) -> dict:
    con = sqlite3.connect(course / "gradebook.db")
    try:
        return dict(con.execute("SELECT student, graded_at FROM miglab_results WHERE assignment = ?", (A,)))
    finally:
        con.close()


def test_canvas(course):
    out = export(course, "--format", "canvas")
    assert rows(course / "reports" / A / "canvas.csv") == [
        ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", A],
        ["    Points Possible", "", "", "", "", "47"],
        ["1001", "1001", "", "", "", f"{FULL:g}"],
        ["1002", "1002", "", "", "", f"{PART:g}"],
        ["Diaz, Carol", "1003", "", "", "", "0"],
        ["dave", "", "", "dave", "", "0"],
    ]
    assert "4 students written" in out.stdout
    assert "have no Canvas user id (ID), so Canvas matches them by SIS Login ID, then name: dave" in out.stdout


def test_canvas_with_its_own_roster_an_existing_assignment_and_other_points(course, tmp_path):
    roster = tmp_path / "canvas-export.csv"
    roster.write_text(
        "Student,ID,SIS User ID,SIS Login ID,Section,Deep Dive (4242),Current Score\n"
        "    Points Possible,,,,,100,(read only)\n"
        '"Smith, Alice",1001,S-1001,asmith,Section 1,,\n'
        '"Jones, Bob",1002,S-1002,bjones,Section 2,,\n'
        '"Diaz, Carol",1003,S-1003,cdiaz,Section 1,,\n'
    )
    out_file = tmp_path / "to-canvas.csv"
    out = export(
        course,
        "--format",
        "canvas",
        "--roster",
        roster,
        "--column",
        "Deep Dive (4242)",
        "--out-of",
        "100",
        "-o",
        out_file,
    )
    assert rows(out_file) == [
        ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Deep Dive (4242)"],
        ["    Points Possible", "", "", "", "", "100"],
        ["Smith, Alice", "1001", "S-1001", "asmith", "Section 1", f"{round(FULL / 47 * 100, 2):g}"],
        ["Jones, Bob", "1002", "S-1002", "bjones", "Section 2", f"{round(PART / 47 * 100, 2):g}"],
        ["Diaz, Carol", "1003", "S-1003", "cdiaz", "Section 1", "0"],
        ["dave", "", "", "dave", "", "0"],
    ]
    assert "not in the roster (written with what nbgrader knows): dave" in out.stdout


def test_moodle(course):
    out = export(course, "--format", "moodle")
    stamps = graded_at(course)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", t) for t in stamps.values())
    assert rows(course / "reports" / A / "moodle.csv") == [
        ["Identifier", "Full name", "Email address", "Grade", "Maximum Grade", "Last modified (grade)"],
        ["Participant 1001", "1001", "", f"{FULL:g}", "47", stamps["1001"]],
        ["Participant 1002", "1002", "", f"{PART:g}", "47", stamps["1002"]],
        ["Participant 1003", "Carol Diaz", "carol@example.edu", "0", "47", stamps["carol"]],
    ]
    assert "left out dave: no Moodle participant number" in out.stdout


def test_moodle_with_its_grading_worksheet(course, tmp_path):
    sheet = tmp_path / "worksheet.csv"
    sheet.write_text(
        "Identifier,Full name,Email address,Status,Grade,Maximum Grade,Grade can be changed,"
        "Last modified (submission),Last modified (grade),Feedback comments\n"
        "Participant 77,Carol Diaz,carol@example.edu,Submitted,,47.00,Yes,-,-,\n"
        "Participant 1001,Alice Smith,alice@example.edu,Submitted,,47.00,Yes,-,-,\n"
    )
    out_file = tmp_path / "to-moodle.csv"
    export(course, "--format", "moodle", "--roster", sheet, "-o", out_file)
    stamps = graded_at(course)
    assert rows(out_file)[1:] == [
        ["Participant 1001", "Alice Smith", "alice@example.edu", f"{FULL:g}", "47", stamps["1001"]],
        ["Participant 1002", "1002", "", f"{PART:g}", "47", stamps["1002"]],
        ["Participant 77", "Carol Diaz", "carol@example.edu", "0", "47", stamps["carol"]],
    ]


def test_csv_is_the_per_question_file(course, tmp_path):
    out_file = tmp_path / "grades.csv"
    export(course, "--format", "csv", "-o", out_file)
    assert out_file.read_bytes() == (course / "reports" / A / "grades.csv").read_bytes()  # as grading wrote it
    table = rows(out_file)
    points = json.loads(json.dumps(EXPECTED["perfect"]["scores"]))
    assert table[0][0] == "student_id" and sorted(table[0][1 : 1 + len(points)]) == sorted(points)
    assert table[0][1 + len(points) :] == [
        "total",
        "max_total",
        "status",
        "reason",
        "notes",
        "review",
        "scored_in_kernel",
    ]
    got = {r[0]: (r[1 + len(points)], r[3 + len(points)]) for r in table[1:]}
    assert got == {
        "1001": (f"{FULL:g}", "ok"),
        "1002": (f"{PART:g}", "ok"),
        "carol": ("0", "ok"),
        "dave": ("0", "malformed"),
    }


def test_a_grader_error_is_never_exported_as_a_grade(course, tmp_path):
    db = tmp_path / "gradebook.db"
    shutil.copy(course / "gradebook.db", db)
    con = sqlite3.connect(db)
    con.execute("UPDATE miglab_results SET status = 'error' WHERE student = 'dave'")
    con.commit()
    con.close()
    out_file = tmp_path / "canvas.csv"
    out = export(course, "--format", "canvas", "--db", f"sqlite:///{db}", "-o", out_file)
    assert [r[0] for r in rows(out_file)[2:]] == ["1001", "1002", "Diaz, Carol"]
    assert "left out dave: the grader failed on this submission" in out.stdout


def test_an_assignment_not_in_the_gradebook_is_a_clear_error(course, tmp_path):
    out = export(course, "--format", "canvas", "--db", f"sqlite:///{tmp_path / 'empty.db'}", ok=False)
    assert out.returncode == 2 and "is not in the gradebook" in out.stderr and "Traceback" not in out.stderr

"""The instructor's whole classroom flow with real nbgrader commands and a temporary exchange folder:

generate -> release -> (students) fetch -> submit -> collect -> grade (ours) -> release feedback
-> (students) fetch feedback -> export; then the LMS flow: a zip of downloaded notebooks imported
and graded into the same course.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
BIN = Path(PY).parent
SAMPLE = REPO / "tests" / "submissions" / "deep_dive"
COURSE_ID = "migrations-deep-dive"


def sh(args, cwd, home=None, ok=True):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    if home:
        env["HOME"] = str(home)
    out = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if ok:
        assert out.returncode == 0, f"{args}\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}"
    return out


def test_exchange_flow_then_lms_flow(tmp_path):
    expected = json.loads((SAMPLE / "expected.json").read_text())
    course, exchange = tmp_path / "course", tmp_path / "exchange"
    course.mkdir()
    exchange.mkdir()
    shutil.copytree(REPO / "source" / "deep_dive", course / "source" / "deep_dive")
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        f"load_subconfig({str(REPO / 'grader_config.py')!r})\n"
        f"c.CourseDirectory.root = {str(course)!r}\n"
        f"c.CourseDirectory.db_url = {('sqlite:///' + str(course / 'gradebook.db'))!r}\n"
        f"c.Exchange.root = {str(exchange)!r}\n")
    nbgrader = BIN / "nbgrader"
    # instructor: generate and release
    sh([nbgrader, "generate_assignment", "deep_dive", "--force"], course)
    sh([nbgrader, "release_assignment", "deep_dive"], course)
    # students: fetch, work (alice: everything; bob: half), submit
    work = {"alice": "perfect", "bob": "partial"}
    for student, kind in work.items():
        home = tmp_path / student
        home.mkdir()
        common = ["--course", COURSE_ID, f"--Exchange.root={exchange}"]
        sh([nbgrader, "fetch_assignment", "deep_dive", *common], home, home)
        fetched = home / "deep_dive" / "deep_dive.ipynb"
        assert fetched.read_bytes() == (course / "release" / "deep_dive" / "deep_dive.ipynb").read_bytes()
        shutil.copy(SAMPLE / f"{kind}.ipynb", fetched)
        sh([nbgrader, "submit", "deep_dive", "--student", student, *common], home, home)
    # instructor: collect, grade, release feedback
    sh([nbgrader, "collect", "deep_dive"], course)
    assert sorted(p.name for p in (course / "submitted").iterdir()) == ["alice", "bob"]
    out = sh([PY, "-m", "miglab.grading", "grade", "deep_dive", "--course", course, "--no-progress"], tmp_path)
    assert "graded 2" in out.stdout and "status: ok 2" in out.stdout
    sh([nbgrader, "release_feedback", "deep_dive"], course)
    # students: fetch their feedback (hidden tests are not in it)
    for student, kind in work.items():
        home = tmp_path / student
        sh([nbgrader, "fetch_feedback", "deep_dive", "--student", student, "--course", COURSE_ID,
            f"--Exchange.root={exchange}"], home, home)
        pages = list((home / "deep_dive" / "feedback").glob("*/deep_dive.html"))
        assert len(pages) == 1, student
        page = pages[0].read_text()
        assert f"{expected[kind]['total']:g}" in page and "HIDDEN TESTS" not in page
    # instructor: export (nbgrader's CSV and ours)
    sh([nbgrader, "export"], course)
    rows = {r["student_id"]: float(r["score"]) for r in csv.DictReader(open(course / "grades.csv"))}
    assert rows == {s: expected[k]["total"] for s, k in work.items()}
    ours = {r["student_id"]: r for r in csv.DictReader(open(course / "reports" / "deep_dive" / "grades.csv"))}
    assert {s: float(r["total"]) for s, r in ours.items()} == rows
    assert all(r["status"] == "ok" for r in ours.values())

    # LMS flow: a Canvas-style zip of two more notebooks, imported, then graded (only they are graded)
    z = tmp_path / "canvas.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.write(SAMPLE / "blank.ipynb", "smithcarol_1001_555_deep_dive.ipynb")
        zf.write(SAMPLE / "malformed.ipynb", "jonesdave_1002_556_deep_dive.ipynb")
    out = sh([PY, "-m", "miglab.grading", "import", z, "deep_dive", "--course", course], tmp_path)
    assert "imported 2" in out.stdout
    out = sh([PY, "-m", "miglab.grading", "grade", "deep_dive", "--course", course, "--no-progress"], tmp_path)
    assert "graded 2" in out.stdout and "2 unchanged (skipped)" in out.stdout
    assert "1002: malformed" in out.stdout
    ours = {r["student_id"]: r for r in csv.DictReader(open(course / "reports" / "deep_dive" / "grades.csv"))}
    assert {s: (float(r["total"]), r["status"]) for s, r in ours.items()} == {
        "alice": (expected["perfect"]["total"], "ok"), "bob": (expected["partial"]["total"], "ok"),
        "1001": (0.0, "ok"), "1002": (0.0, "malformed")}
    out = sh([PY, "-m", "miglab.grading", "check", "deep_dive", "--course", course], tmp_path)
    assert "gradebook OK" in out.stdout

"""Student files are hostile input: a class whose submission folders attack the grader itself.

One class, graded once with the real command (sandboxed), mixes honest
students with submissions that: link their notebook to another student's;
link a file to the course's source/ and to host files (/etc/shadow, a file
of the grader's, /proc/self/environ); carry a garbage timestamp.txt; are
JSON nested 10,000 deep; are over the size limits; add a graded cell or
re-mark a test cell as a solution. An LMS zip with ``../`` and link entries
is imported beside them. Each gets its exact score and status; the honest
students keep theirs; no host content appears in anything the grader
wrote; the command exits 0.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from test_grading import gradebook_scores, make_course

from miglab.grading.lms import import_submissions

pytestmark = [pytest.mark.slow, pytest.mark.sandbox, pytest.mark.timeout(1200)]
HOST_SECRET = "host-secret-9d1c7e"  # a file of the grader's that no student may read
FULL = {"q1_test": 2.0, "q2_test": 3.0, "q3_test": 5.0}
ZERO = dict.fromkeys(FULL, 0.0)


def folder(course: Path, sid: str) -> Path:
    f = course / "submitted" / sid / "tiny"
    f.mkdir(parents=True, exist_ok=True)
    return f


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    course = tmp_path_factory.mktemp("hostile-files")
    downloads, expected = make_course(course)
    import_submissions(downloads, course, "tiny")
    perfect = (course / "submitted" / "perfect" / "tiny" / "tiny.ipynb").read_bytes()
    secret = course.parent / "grader-only.txt"
    secret.write_text(HOST_SECRET)
    secret.chmod(0o600)
    students = {}

    def add(sid, status, scores, files=None, links=None):
        f = folder(course, sid)
        for name, data in (files if files is not None else {"tiny.ipynb": perfect}).items():
            (f / name).write_bytes(data)
        for name, target in (links or {}).items():
            os.symlink(target, f / name)
        students[sid] = (status, scores)

    other = course / "submitted" / "perfect" / "tiny" / "tiny.ipynb"
    add("links_to_a_classmate", "missing", ZERO, files={}, links={"tiny.ipynb": str(other)})
    add("links_to_source", "ok", FULL, links={"answers.ipynb": str(course / "source" / "tiny" / "tiny.ipynb")})
    add(
        "links_to_host_files",
        "ok",
        FULL,
        links={"shadow": "/etc/shadow", "mine.txt": str(secret), "environ": "/proc/self/environ"},
    )
    add("garbage_timestamp", "ok", FULL, files={"tiny.ipynb": perfect, "timestamp.txt": b"\x00not a time at all"})
    add("deep_json", "malformed", ZERO, files={"tiny.ipynb": b"[" * 10_000 + b"]" * 10_000})
    add("huge_notebook", "too_large", ZERO, files={"tiny.ipynb": b'{"cells": [], "pad": "' + b"x" * (21 << 20) + b'"}'})
    add(
        "huge_submission",
        "too_large",
        ZERO,
        files={
            "tiny.ipynb": perfect,
            "a.bin": os.urandom(19 << 20),
            "b.bin": os.urandom(19 << 20),
            "c.bin": os.urandom(19 << 20),
        },
    )
    nb = nbformat.reads(perfect.decode(), as_version=4)
    extra = nbformat.v4.new_code_cell(
        "print('bonus')",
        metadata={
            "nbgrader": {
                "grade": True,
                "solution": False,
                "locked": True,
                "grade_id": "bonus",
                "points": 100,
                "schema_version": 3,
            }
        },
    )
    nb.cells.append(extra)
    add("extra_graded_cell", "tampered", FULL, files={"tiny.ipynb": nbformat.writes(nb).encode()})
    nb = nbformat.reads(perfect.decode(), as_version=4)
    test = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "q2_test")
    test.metadata.nbgrader.update(solution=True, locked=False)
    test.source = "pass  # the student's own 'test'"
    add("test_made_a_solution", "tampered", FULL, files={"tiny.ipynb": nbformat.writes(nb).encode()})
    fifo_dir = folder(course, "a_fifo")
    (fifo_dir / "tiny.ipynb").write_bytes(perfect)
    os.mkfifo(fifo_dir / "pipe")
    students["a_fifo"] = ("ok", FULL)

    zipped = course.parent / "lms.zip"
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("zara_tiny.ipynb", perfect)
        z.writestr("../../escape_tiny.ipynb", perfect)
        link = zipfile.ZipInfo("linky_tiny.ipynb")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        z.writestr(link, "/etc/shadow")
    report = import_submissions(zipped, course, "tiny")
    students["zara"] = ("ok", FULL)

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "miglab.grading",
            "grade",
            "tiny",
            "--course",
            str(course),
            "-j",
            "2",
            "--cell-timeout",
            "3",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    return {"course": course, "done": done, "students": students, "expected": expected, "report": report, "zip": zipped}


def test_the_command_exits_0_and_records_everyone(graded):
    done = graded["done"]
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    book = gradebook_scores(graded["course"])
    for sid, (_status, scores) in graded["students"].items():
        assert book[sid] == scores, sid


def test_each_hostile_folder_gets_its_exact_status_and_a_reason(graded):
    import sqlite3

    with sqlite3.connect(graded["course"] / "gradebook.db") as con:
        rows = {
            s: (st, reason, json.loads(notes))
            for s, st, reason, notes in con.execute("SELECT student, status, reason, notes FROM miglab_results")
        }
    for sid, (status, _scores) in graded["students"].items():
        assert rows[sid][0] == status, (sid, rows[sid])
    assert "tiny.ipynb was not read: a symbolic link (links are never followed)" in rows["links_to_a_classmate"][1]
    assert any("answers.ipynb was not read: a symbolic link" in n for n in rows["links_to_source"][2])
    assert any("shadow was not read" in n for n in rows["links_to_host_files"][2])
    assert any("timestamp.txt could not be read" in n and "collection time" in n for n in rows["garbage_timestamp"][2])
    assert "nested too deeply" in rows["deep_json"][1]
    assert "larger than 20 MB" in rows["huge_notebook"][1]
    assert "larger than 50 MB" in rows["huge_submission"][1]
    assert any("bonus" in n for n in rows["extra_graded_cell"][2])
    assert any("q2_test were changed; they were put back" in n for n in rows["test_made_a_solution"][2])
    assert any("pipe was not read: a named pipe" in n for n in rows["a_fifo"][2])


def test_honest_students_keep_their_exact_scores(graded):
    book = gradebook_scores(graded["course"])
    for sid, exp in graded["expected"].items():
        assert book[sid] == exp["scores"], sid


def test_no_host_content_appears_anywhere_the_grader_wrote(graded):
    course = graded["course"]
    shadow = Path("/etc/shadow").read_text().splitlines()[0]
    environ = [v for k, v in os.environ.items() if len(v) > 12 and k in ("PATH", "HOME", "MIGLAB_TEST_SESSION")]
    written = [p for d in ("autograded", "feedback", "reports") for p in (course / d).rglob("*") if p.is_file()]
    assert written
    for p in written:
        text = p.read_bytes().decode("utf-8", "replace")
        assert HOST_SECRET not in text and shadow not in text, p
        assert not [v for v in environ if v in text], p
    for p in (course / "autograded").rglob("*"):
        mode = p.lstat().st_mode
        assert not stat.S_ISLNK(mode) and not (mode & 0o077), (p, oct(mode))  # nothing linked, nothing shared


def test_the_lms_import_refuses_escaping_and_linked_zip_entries(graded):
    report = graded["report"]
    refused = {name for name, _ in report.problems}
    assert "../../escape_tiny.ipynb" in refused and "linky_tiny.ipynb" in refused
    assert report.imported == ["zara"]
    assert not (graded["course"].parent / "escape_tiny.ipynb").exists()
    assert not (graded["course"] / "submitted" / "linky").exists()


def test_every_cause_is_kept_in_a_log_the_readme_names(graded):
    logs = graded["course"] / "reports" / "tiny" / "logs"
    for sid in graded["students"]:
        text = (logs / f"{sid}.log").read_text()
        assert f"student: {sid}" in text and "status:" in text
    assert "nested too deeply" in (logs / "deep_json.log").read_text()

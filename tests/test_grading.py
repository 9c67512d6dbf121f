"""Batch grading end to end with real nbgrader: a small fixture course and the sample class.

The fixture course ("tiny": three questions, 2 + 3 + 5 points) gets the same
kinds of students as the sample class, made by the same generator
(tests/submissions/make_sample_class.py). Expected scores come from that
generator (points of the source notebook and what was done to each copy),
never from running the grader.
"""

from __future__ import annotations

import csv
import hashlib
import json
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "submissions"))

import make_sample_class as sample

from miglab.grading import Task, TimeLimits, grade_assignment, grade_submission
from miglab.grading.assignment import generate, prepare
from miglab.grading.coordinator import default_kernel
from miglab.grading.gradebook import check_integrity
from miglab.grading.lms import import_submissions, student_id
from miglab.sandbox.kernel import NOTEBOOK_OUTPUT_BUDGET

pytestmark = pytest.mark.slow

PY = sys.executable


LIMITS = TimeLimits(cell_timeout=3, interrupt_grace=2, wall=120)
SAMPLE_CLASS = REPO / "tests" / "submissions" / "deep_dive"
CONFIG = """c = get_config()
c.CourseDirectory.course_id = "tinycourse"
c.OverwriteCells.add_missing_cells = True
c.Execute.timeout = 3
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbgrader.preprocessors.ClearHiddenTests",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
"""


def grade_command(course: Path, *extra: str) -> list[str]:
    """The grading command line for the tiny class of ``course`` (3 s cells, no progress bar)."""
    return [
        PY,
        "-m",
        "miglab.grading",
        "grade",
        "tiny",
        "--course",
        str(course),
        "--cell-timeout",
        "3",
        "--no-progress",
        *extra,
    ]


def tree_hash(folder: Path) -> dict:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def make_course(root: Path) -> tuple[Path, dict]:
    """A course folder with source/tiny, its nbgrader config and a folder of LMS downloads."""
    (root / "source" / "tiny").mkdir(parents=True)
    nbformat.write(sample.tiny_source(), str(root / "source" / "tiny" / "tiny.ipynb"))
    (root / "nbgrader_config.py").write_text(CONFIG)
    release_dir = generate(
        root / "source" / "tiny",
        root / ".release-build",
        "tiny",
        "tinycourse",
        f"sqlite:///{root / '.release-build' / 'x.db'}",
        {},
    )
    release = nbformat.read(str(release_dir / "tiny.ipynb"), as_version=4)
    files, expected = sample.build_class(sample.tiny_source(), release)
    downloads = root / "downloads"
    downloads.mkdir()
    for name, data in files.items():
        (downloads / f"{name}_tiny.ipynb").write_bytes(data)
    return downloads, expected


def gradebook_scores(course: Path, assignment="tiny") -> dict:
    from nbgrader.api import Gradebook

    out = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "tinycourse") as gb:
        for sub in gb.find_assignment(assignment).submissions:
            out[sub.student.id] = {g.name: g.auto_score for nb in sub.notebooks for g in nb.grades}
    return out


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The tiny class imported from an LMS folder and graded once with two workers."""
    course = tmp_path_factory.mktemp("course")
    downloads, expected = make_course(course)
    report = import_submissions(downloads, course, "tiny")
    assert sorted(report.imported) == sorted(expected) and not report.problems
    before = tree_hash(course / "submitted")
    summary = grade_assignment(course, "tiny", workers=2, limits=LIMITS, kernel=default_kernel(), progress=False)
    return course, expected, summary, before


def test_every_student_gets_the_exact_expected_score_and_status(graded):
    course, expected, summary, _ = graded
    assert summary.total == summary.graded == len(expected) and summary.skipped == 0
    got = {r.student_id: r for r in summary.results}
    for student, exp in expected.items():
        r = got[student]
        assert r.status == exp["status"], (student, r.status, r.reason)
        assert {s.grade_id: s.score for s in r.scores} == exp["scores"], student
        assert r.total == exp["total"], student
        if exp["status"] != "ok":
            assert r.reason, student
    # the same numbers are in nbgrader's gradebook
    book = gradebook_scores(course)
    assert set(book) == set(expected)
    for student, exp in expected.items():
        assert book[student] == exp["scores"], student


def test_reasons_say_what_happened(graded):
    _, _, summary, _ = graded
    got = {r.student_id: r for r in summary.results}
    assert "not valid JSON" in got["malformed"].reason
    assert "not a notebook" in got["not_a_notebook"].reason
    assert "kernel died" in got["dead_kernel"].reason
    assert "ignored the interrupt" in got["ignores_sigint"].reason
    assert "3 s limit" in got["infinite_loop"].reason
    # points lost because a cell never ran carry the reason
    lost = [s for s in got["dead_kernel"].scores if s.score == 0]
    assert lost and all("kernel died" in s.reason for s in lost)


def test_gradebook_integrity_and_submitted_untouched(graded):
    course, _, _, before = graded
    assert check_integrity(f"sqlite:///{course / 'gradebook.db'}", "tinycourse", "tiny", course) == []
    assert tree_hash(course / "submitted") == before
    # nbgrader's own command line reads the gradebook we wrote
    out = subprocess.run(
        [str(Path(PY).parent / "nbgrader"), "export", "--to", str(course / "nbgrader.csv")],
        cwd=course,
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{Path(PY).parent}:{os.environ['PATH']}"},
    )
    assert out.returncode == 0, out.stderr
    with open(course / "nbgrader.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["student_id"]: float(r["raw_score"]) for r in rows}["partial"] == 2.0


def test_outputs_csv_chart_autograded_and_feedback_without_hidden_tests(graded):
    course, expected, summary, _ = graded
    with open(summary.csv) as fh:
        rows = {r["student_id"]: r for r in csv.DictReader(fh)}
    assert list(next(iter(rows.values())))[:4] == ["student_id", "q1_test", "q2_test", "q3_test"]
    for student, exp in expected.items():
        assert float(rows[student]["total"]) == exp["total"]
        assert rows[student]["status"] == exp["status"]
        assert float(rows[student]["q2_test"]) == exp["scores"]["q2_test"]
    assert rows["malformed"]["reason"].startswith("tiny.ipynb is not valid JSON")
    assert summary.chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for student in expected:
        fb = (course / "feedback" / student / "tiny" / "tiny.html").read_text()
        assert "HIDDEN-Q" not in fb and "BEGIN HIDDEN" not in fb, student
        if expected[student]["status"] != "malformed":
            nb = nbformat.read(str(course / "autograded" / student / "tiny" / "tiny.ipynb"), as_version=4)
            assert any("HIDDEN-Q1" in c.source for c in nb.cells), student  # hidden tests were run
    # the deleted test cell was put back and graded
    nb = nbformat.read(str(course / "autograded" / "deleted_test_cell" / "tiny" / "tiny.ipynb"), as_version=4)
    assert [c.metadata.nbgrader["grade_id"] for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")] == [
        "q1_test",
        "q2_test",
        "q3_test",
    ]
    assert "Score: 0 / 10" in (course / "feedback" / "malformed" / "tiny" / "tiny.html").read_text()


def test_rerun_grades_only_new_or_changed_and_force_regrades_all(graded, tmp_path):
    course, expected, _, _ = graded
    again = grade_assignment(course, "tiny", workers=2, limits=LIMITS, kernel=default_kernel(), progress=False)
    assert again.graded == 0 and again.skipped == len(expected)
    # blank resubmits the perfect notebook (through the LMS import, replacing the old file)
    new = tmp_path / "new"
    new.mkdir()
    (new / "blank.ipynb").write_bytes((course / "submitted" / "perfect" / "tiny" / "tiny.ipynb").read_bytes())
    assert import_submissions(new, course, "tiny").problems  # refuses to overwrite silently
    assert import_submissions(new, course, "tiny", replace=True).replaced == ["blank"]
    again = grade_assignment(course, "tiny", workers=2, limits=LIMITS, kernel=default_kernel(), progress=False)
    assert [r.student_id for r in again.results] == ["blank"] and again.results[0].total == 10
    assert gradebook_scores(course)["blank"] == expected["perfect"]["scores"]
    forced = grade_assignment(
        course,
        "tiny",
        workers=2,
        force=True,
        students=["perfect", "partial"],
        limits=LIMITS,
        kernel=default_kernel(),
        progress=False,
    )
    assert sorted(r.student_id for r in forced.results) == ["partial", "perfect"]
    assert check_integrity(f"sqlite:///{course / 'gradebook.db'}", "tinycourse", "tiny", course) == []


def test_any_executor_with_submit_works(tmp_path):
    """The pool is pluggable: here the caller's own process pool (a dask.distributed Client, with one
    thread per worker process, is used the same way)."""
    downloads, expected = make_course(tmp_path)
    import_submissions(downloads, tmp_path, "tiny")
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as ex:
        s = grade_assignment(
            tmp_path,
            "tiny",
            executor=ex,
            students=["perfect", "partial", "malformed"],
            limits=LIMITS,
            kernel=default_kernel(),
            progress=False,
        )
    assert {r.student_id: r.total for r in s.results} == {
        k: expected[k]["total"] for k in ("perfect", "partial", "malformed")
    }


def perfect_tiny_with_q2_prefixed(tmp_path: Path, student: str, prefix: str, limits: TimeLimits) -> Task:
    """A sandboxed task of the tiny course: the perfect notebook, with ``prefix`` run before q2's answer."""
    downloads, _ = make_course(tmp_path)
    nb = nbformat.reads((downloads / "perfect_tiny.ipynb").read_text(), as_version=4)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "q2":
            cell.source = prefix + cell.source
    return Task(
        student_id=student,
        assignment=prepare(tmp_path, "tiny"),
        files={"tiny.ipynb": nbformat.writes(nb).encode()},
        submission_hash="h",
        limits=limits,
        kernel=default_kernel(),
    )


def test_wall_limit_keeps_credit_for_what_ran(tmp_path):
    task = perfect_tiny_with_q2_prefixed(
        tmp_path, "slow", "import time\ntime.sleep(30)\n", TimeLimits(cell_timeout=60, wall=6, interrupt_grace=2)
    )
    r = grade_submission(task)
    assert r.status == "wall_limit", r.reason
    assert {s.grade_id: s.score for s in r.scores} == {"q1_test": 2.0, "q2_test": 0.0, "q3_test": 0.0}
    assert r.seconds < 30


@pytest.mark.parametrize(
    "flush, why",
    [
        (True, f"more than {NOTEBOOK_OUTPUT_BUDGET >> 20} MB of output by the end of cell"),  # many messages
        (False, "output stopped reaching the grader in cell"),  # one message too big for the channel
    ],
)
def test_a_notebook_that_floods_its_output_is_stopped_and_keeps_credit_for_what_ran(tmp_path, flush, why):
    """A notebook that sends more output than its whole budget, or one message bigger than the channel
    takes (which drops the connection: no later output would arrive), stops there instead of costing
    its worker the wall-clock limit: cells before keep their credit, the rest did not run, and the
    status and reason say why."""
    flood = NOTEBOOK_OUTPUT_BUDGET // (1 << 20) + 8
    prefix = f"for _ in range({flood}):\n    print('x' * (1 << 20), flush={flush})\n"
    task = perfect_tiny_with_q2_prefixed(tmp_path, "flood", prefix, TimeLimits(cell_timeout=60))
    r = grade_submission(task)
    assert r.status == "output_limit" and why in r.reason, r.reason
    assert {s.grade_id: s.score for s in r.scores} == {"q1_test": 2.0, "q2_test": 0.0, "q3_test": 0.0}


@pytest.mark.parametrize(
    "kind, content",
    [
        ("display_data", {"data": {"text/plain": 5}, "metadata": {}}),  # nbformat refuses it
        ("stream", {"text": "no name"}),  # a field missing
        ("status", {}),  # not even a state
    ],
)
def test_a_kernel_message_no_notebook_can_hold_is_dropped_not_a_grader_error(tmp_path, kind, content):
    """The kernel is the student's: a message it sends that cannot become a notebook output is dropped
    with a note, and the notebook is graded as usual (it used to stop nbgrader: status error)."""
    from miglab.grading.execute import DROPPED

    send = (
        f"_k = get_ipython().kernel\n_k.session.send(_k.iopub_socket, {kind!r}, {content!r}, parent=_k.get_parent())\n"
    )
    task = perfect_tiny_with_q2_prefixed(tmp_path, "odd", send, TimeLimits(cell_timeout=60))
    r = grade_submission(task)
    assert (r.status, r.reason) == ("ok", "")
    assert {s.grade_id: s.score for s in r.scores} == {"q1_test": 2.0, "q2_test": 3.0, "q3_test": 5.0}
    graded = nbformat.reads(r.autograded["tiny.ipynb"].decode(), as_version=4)
    assert [
        o.text for c in graded.cells if c.cell_type == "code" for o in c.outputs if DROPPED in o.get("text", "")
    ] == [DROPPED]


def test_a_failing_judge_withholds_scores_instead_of_trusting_the_kernel(tmp_path, monkeypatch):
    """nbgrader's scores come from inside the student's kernel: if the judge cannot decide, the
    submission is a recorded grader error with every cell at 0, never a silent fall-back."""
    import miglab.grading.judge
    from miglab.grading.cli import make_sample_course

    def broken(*args, **kwargs):
        raise RuntimeError("judge out of order")

    monkeypatch.setattr(miglab.grading.judge, "judge_notebook", broken)
    course = make_sample_course(SAMPLE_CLASS, tmp_path / "course")
    task = Task(
        student_id="perfect",
        assignment=prepare(course, "deep_dive"),
        files={"deep_dive.ipynb": (SAMPLE_CLASS / "perfect.ipynb").read_bytes()},
        submission_hash="h",
        limits=TimeLimits(cell_timeout=30),
        kernel=default_kernel(unsafe=True),
    )
    r = grade_submission(task)
    assert r.status == "error" and "the judge failed (RuntimeError: judge out of order)" in r.reason
    assert all(s.score == 0.0 for s in r.scores)
    assert sum(s.nbgrader_score or 0 for s in r.scores) == r.max_total  # the kernel said full marks
    assert "Traceback" in r.log and "judge out of order" in r.log  # the cause is kept for the log


def test_plain_nbgrader_cells_are_scored_in_the_kernel_and_labelled_so(graded):
    _, _, summary, _ = graded
    assert summary.scored_in_kernel == ["q1_test", "q2_test", "q3_test"]
    assert "scored in the kernel by nbgrader" in summary.text()
    with open(summary.csv) as fh:
        rows = {r["student_id"]: r for r in csv.DictReader(fh)}
    assert rows["perfect"]["scored_in_kernel"] == "q1_test q2_test q3_test"
    assert all(s.scored_by == "nbgrader" for s in {r.student_id: r for r in summary.results}["perfect"].scores)


def test_killed_run_resumes_to_the_same_grades(tmp_path):
    downloads, expected = make_course(tmp_path)
    import_submissions(downloads, tmp_path, "tiny")
    cmd = grade_command(tmp_path, "-j", "2")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    db = tmp_path / "gradebook.db"
    deadline = time.time() + 120
    done = 0
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
        try:
            with sqlite3.connect(db) as con:
                done = con.execute("SELECT COUNT(*) FROM miglab_results").fetchone()[0]
        except sqlite3.Error:
            continue
        if done >= 2:
            break
    assert proc.poll() is None and 2 <= done < len(expected), "the run should be killed mid-way"
    os.kill(proc.pid, signal.SIGKILL)  # the coordinator only, the hard way
    proc.wait()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "unchanged (skipped)" in out.stdout
    book = gradebook_scores(tmp_path)
    assert book == {k: v["scores"] for k, v in expected.items()}
    assert check_integrity(f"sqlite:///{db}", "tinycourse", "tiny", tmp_path) == []
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT COUNT(*) FROM miglab_results").fetchone()[0] == len(expected)
        assert con.execute("SELECT COUNT(*) FROM submitted_assignment").fetchone()[0] == len(expected)


def test_lms_file_names_carry_the_student_id(tmp_path):
    assert student_id("alice.ipynb", "deep_dive", "deep_dive") == "alice"
    assert student_id("bob_deep_dive.ipynb", "deep_dive", "deep_dive") == "bob"
    assert student_id("smithalice_12345_67890_deep_dive.ipynb", "deep_dive", "deep_dive") == "12345"
    assert student_id("smithalice_LATE_12345_67890_deep_dive-1.ipynb", "deep_dive", "deep_dive") == "12345"
    assert student_id("Alice Smith_777_assignsubmission_file_/deep_dive.ipynb", "deep_dive", "deep_dive") == "777"
    assert student_id("hw-s0042.ipynb", "deep_dive", "deep_dive", id_regex=r"s(?P<id>\d+)") == "0042"
    with pytest.raises(ValueError):
        student_id("not an id!.ipynb", "deep_dive", "deep_dive")
    # a zip with two files for one student imports neither, and says so
    import zipfile

    z = tmp_path / "class.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("carol.ipynb", "{}")
        zf.writestr("carol_deep_dive.ipynb", "{}")
        zf.writestr("dave.ipynb", "{}")
        zf.writestr("__MACOSX/._dave.ipynb", "junk")
    report = import_submissions(z, tmp_path, "deep_dive")
    assert report.imported == ["dave"] and len(report.problems) == 1 and "carol" in report.problems[0][1]
    assert (tmp_path / "submitted" / "dave" / "deep_dive" / "timestamp.txt").exists()
    assert not (tmp_path / "submitted" / "carol").exists()


def test_cli_help_lists_the_commands():
    out = subprocess.run([PY, "-m", "miglab.grading", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for word in ("grade", "import", "report", "check", "integrity"):
        assert word in out.stdout
    out = subprocess.run([PY, "-m", "miglab.grading", "grade", "--help"], capture_output=True, text=True)
    assert "--workers" in out.stdout and "--force" in out.stdout and "--db" in out.stdout


# ---------------------------------------------------------------- the sample class (deep_dive)


def test_sample_class_is_generated_from_the_current_assignment():
    out = subprocess.run(
        [PY, str(REPO / "tests" / "submissions" / "make_sample_class.py"), "--check"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_sample_class_grades_to_the_exact_expected_scores(tmp_path):
    """`make grade` without arguments does this in .grading/; here in a temporary course."""
    from miglab.grading.cli import make_sample_course

    course = make_sample_course(SAMPLE_CLASS, tmp_path / "course")
    expected = json.loads((SAMPLE_CLASS / "expected.json").read_text())
    before = tree_hash(course / "submitted")
    summary = grade_assignment(
        course,
        "deep_dive",
        workers=2,
        limits=TimeLimits(cell_timeout=10, interrupt_grace=3),
        kernel=default_kernel(),
        progress=False,
    )
    got = {r.student_id: r for r in summary.results}
    assert set(got) == set(expected)
    for student, exp in expected.items():
        r = got[student]
        assert r.status == exp["status"], (student, r.status, r.reason)
        assert {s.grade_id: s.score for s in r.scores} == exp["scores"], (student, r.reason)
        assert r.judged == (exp["status"] != "malformed"), student  # scores decided by the judge
        if r.judged:
            assert all(s.scored_by == "judge" for s in r.scores), student
    from nbgrader.api import Gradebook

    db_url = f"sqlite:///{course / 'gradebook.db'}"
    with Gradebook(db_url, "migrations-deep-dive") as gb:
        totals = {s.student.id: s.score for s in gb.find_assignment("deep_dive").submissions}
    assert totals == {k: v["total"] for k, v in expected.items()}
    assert check_integrity(db_url, "migrations-deep-dive", "deep_dive", course) == []
    assert tree_hash(course / "submitted") == before
    with open(summary.csv) as fh:
        rows = {r["student_id"]: r for r in csv.DictReader(fh)}
    assert {k: float(r["total"]) for k, r in rows.items()} == {k: v["total"] for k, v in expected.items()}
    # feedback never shows the hidden tests of the source notebook
    source = nbformat.read(str(course / "source" / "deep_dive" / "deep_dive.ipynb"), as_version=4)
    hidden = []
    for cell in source.cells:
        if "### BEGIN HIDDEN TESTS" in cell.source:
            block = cell.source.split("### BEGIN HIDDEN TESTS")[1].split("### END HIDDEN TESTS")[0]
            hidden += [line.strip() for line in block.splitlines() if len(line.strip()) > 25]
    assert hidden
    for student in expected:
        fb = (course / "feedback" / student / "deep_dive" / "deep_dive.html").read_text()
        leaked = [line for line in hidden if line in fb]
        assert not leaked, (student, leaked[:3])

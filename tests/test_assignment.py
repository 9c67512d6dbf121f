"""The deep_dive assignment graded end to end with the real nbgrader and real Django.

One temporary course (a copy of nbgrader_config.py, grader_config.py and
source/deep_dive; its own gradebook) is built once for the module:
`nbgrader generate_assignment`, four submissions, `nbgrader autograde`, then
`nbgrader generate_feedback`. Every score is then compared exactly, both
nbgrader's own and the trusted judge's (miglab.judges), which recomputes each
cell from the evidence alone.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from miglab import judges

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "assignment_fixtures"
sys.path.insert(0, str(ROOT / "tools"))
import release as release_tool  # noqa: E402

A = "deep_dive"
STUDENTS = ("solution", "blank", "partial", "alternative")
FULL = {gid: float(points) for gid, (points, _) in judges.GRADED.items()}

# The hand-made partial submission (tests/assignment_fixtures/make_fixtures.py), cell by cell.
PARTIAL_JUDGED = {
    "pending_basic": 2, "pending_edge": 0,           # crashes when applied lists other migrations
    "deps_loans": 0,                                  # depends on library 0001, not the latest
    "get_model": 1, "reverse_arg": 0,                 # RunPython without a reverse
    "merge_deps": 1,
    "order_basic": 2, "order_cross": 2, "order_cycle": 0,   # DFS that never notices a cycle
    "leaves": 2, "conflicts": 0,                      # conflicts lists every app
    "replay_basic": 2, "replay_random": 2,
    "squash_state": 2, "squash_short": 0, "squash_rename": 2, "squash_random": 0,  # returns its input
    "datamig_forward": 2, "datamig_backward": 0,      # reverse is a no-op: slugs stay
    **{f"quiz_q{n:02d}": 1 for n in range(1, 16)},
    "quiz_q02": 0, "quiz_q04": 0, "quiz_q05": 0, "quiz_q11": 0,  # wrong, not a letter, blank, wrong
}
# Inside the kernel the quiz key is unknown, so nbgrader itself only checks the answer is a letter.
PARTIAL_NBGRADER = {**PARTIAL_JUDGED, "quiz_q02": 1, "quiz_q11": 1}


def _env():
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONWARNINGS"] = "ignore"
    return env


def _nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("nbgrader")
    return subprocess.run([str(exe), *args], cwd=course, capture_output=True, text=True, env=_env(), timeout=900)


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("course")
    for name in ("nbgrader_config.py", "grader_config.py"):
        shutil.copy2(ROOT / name, root / name)
    shutil.copytree(ROOT / "source" / A, root / "source" / A,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", ".hypothesis"))
    done = _nbgrader(root, "generate_assignment", A, "--force")
    assert done.returncode == 0, done.stderr[-3000:]
    submissions = {
        "solution": root / "source" / A / f"{A}.ipynb",
        "blank": root / "release" / A / f"{A}.ipynb",
        "partial": FIXTURES / "partial.ipynb",
        "alternative": FIXTURES / "alternative.ipynb",
    }
    for student, nb in submissions.items():
        target = root / "submitted" / student / A
        target.mkdir(parents=True)
        shutil.copy2(nb, target / f"{A}.ipynb")
        (target / "timestamp.txt").write_text("2026-01-01 12:00:00.000000 UTC")
    started = time.monotonic()
    graded = _nbgrader(root, "autograde", A, "--force")
    elapsed = time.monotonic() - started
    assert graded.returncode == 0, graded.stderr[-3000:]
    feedback = _nbgrader(root, "generate_feedback", A, "--force")
    assert feedback.returncode == 0, feedback.stderr[-3000:]
    print(f"\nnbgrader autograde of {len(STUDENTS)} submissions: {elapsed:.1f} s")
    return root


def nbgrader_scores(course: Path, student: str) -> dict[str, float]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", course_id="migrations-deep-dive") as gb:
        sub = gb.find_submission_notebook(A, A, student)
        return {g.name: float(g.score) for g in sub.grades}


def autograded(course: Path, student: str):
    return nbformat.read(course / "autograded" / student / A / f"{A}.ipynb", as_version=4)


def judged_scores(course: Path, student: str) -> dict[str, float]:
    verdicts = judges.judge_notebook(autograded(course, student),
                                     key_path=course / "source" / A / "answer_key.json")
    return {gid: v.score for gid, v in verdicts.items()}


def feedback_html(course: Path, student: str) -> str:
    return html.unescape((course / "feedback" / student / A / f"{A}.html").read_text())


def hidden_lines() -> list[str]:
    nb = nbformat.read(ROOT / "source" / A / f"{A}.ipynb", as_version=4)
    lines = []
    for cell in nb.cells:
        for block in re.findall(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", cell.source, re.S):
            lines += [line.strip() for line in block.splitlines() if line.strip()]
    return lines


# ------------------------------------------------------------------ release


def test_committed_release_matches_a_fresh_generation(course):
    problems = release_tool.differences(course / "release" / A, ROOT / "release" / A)
    assert problems == []


def test_committed_source_is_what_the_generator_writes(tmp_path):
    done = subprocess.run([sys.executable, "-c",
                           "import sys; from pathlib import Path; sys.path.insert(0, 'tools'); import build_deep_dive as b; "
                           f"b.main(Path({str(tmp_path / 'nb.ipynb')!r}), Path({str(tmp_path / 'key.json')!r}))"],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "nb.ipynb").read_text() == (ROOT / "source" / A / f"{A}.ipynb").read_text(), \
        "source/deep_dive is stale: run `make release` (edit tools/build_deep_dive.py, not the notebook)"
    assert (tmp_path / "key.json").read_text() == (ROOT / "source" / A / "answer_key.json").read_text()


def test_release_holds_no_solution_hidden_test_or_quiz_key(course):
    text = (ROOT / "release" / A / f"{A}.ipynb").read_text()
    assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text
    assert sorted(p.name for p in (ROOT / "release" / A).iterdir()) == [f"{A}.ipynb"]
    key = json.loads((ROOT / "source" / A / "answer_key.json").read_text())
    for qid, letter in key.items():
        assert f'{qid.upper()} = \\"{letter}\\"' not in text
    for line in hidden_lines():
        assert line not in text
    nb = nbformat.read(ROOT / "release" / A / f"{A}.ipynb", as_version=4)
    assert all(not c.get("outputs") for c in nb.cells)
    points = {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["points"]
              for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")}
    assert points == {gid: p for gid, (p, _) in judges.GRADED.items()}
    assert sum(points.values()) == judges.TOTAL_POINTS == 47


def test_quiz_key_never_reaches_a_kernel_folder(course):
    for student in STUDENTS:
        folder = course / "autograded" / student / A
        assert not (folder / "answer_key.json").exists()
        assert not (folder / ".hypothesis").exists()


# ------------------------------------------------------------------ grading


def test_solution_scores_full_marks(course):
    assert nbgrader_scores(course, "solution") == FULL
    assert judged_scores(course, "solution") == FULL


def test_solution_writes_nothing_to_stderr(course):
    nb = autograded(course, "solution")
    for cell in nb.cells:
        if cell.cell_type == "code":
            bad = [o for o in cell.outputs
                   if o.output_type == "error" or (o.output_type == "stream" and o.name == "stderr")]
            assert bad == [], (cell.metadata.get("nbgrader", {}).get("grade_id"), bad)


def test_untouched_release_scores_zero_everywhere(course):
    zero = {gid: 0.0 for gid in FULL}
    assert nbgrader_scores(course, "blank") == zero
    assert judged_scores(course, "blank") == zero
    verdicts = judges.judge_notebook(autograded(course, "blank"), key={})
    assert all(v.reason for v in verdicts.values())


def test_partial_submission_scores_exactly_what_was_planned(course):
    assert nbgrader_scores(course, "partial") == {k: float(v) for k, v in PARTIAL_NBGRADER.items()}
    assert judged_scores(course, "partial") == {k: float(v) for k, v in PARTIAL_JUDGED.items()}
    assert sum(PARTIAL_JUDGED.values()) == 31


def test_a_correct_solution_written_differently_scores_full_marks(course):
    assert nbgrader_scores(course, "alternative") == FULL
    assert judged_scores(course, "alternative") == FULL


def test_the_alternative_really_orders_differently(course):
    """Kahn's order differs from the depth-first solution's, so order is judged by validity."""
    def orders(student):
        cell = next(c for c in autograded(course, student).cells
                    if c.metadata.get("nbgrader", {}).get("grade_id") == "order_cross")
        found, _ = judges.evidence_of(cell)
        return found["order.cross"]

    assert orders("alternative") != orders("solution")


# ------------------------------------------------------------------ feedback


def test_feedback_shows_what_failed_without_hidden_test_code(course):
    for student in STUDENTS:
        page = feedback_html(course, student)
        for line in hidden_lines():
            assert line not in page, (student, line)
        assert "### BEGIN HIDDEN TESTS" not in page
    partial = feedback_html(course, "partial")
    assert "no error was raised for a graph with a cycle" in partial
    assert "after migrating backwards, some books still have a slug" in partial
    assert "pending_migrations raised ValueError" in partial
    # A failed check shows its message, plus the learner's own frames when their code raised;
    # never a frame of the checks or of a test cell.
    assert "checks.py" not in partial and "judges.py" not in partial
    frames = re.findall(r'File "([^"]+)", line \d+, in (\w+)', partial)
    assert frames and all(func == "pending_migrations" for _, func in frames), frames

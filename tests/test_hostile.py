"""The hostile corpus through the real grading command: no attack pays, nobody else is touched.

One class is graded once, sandboxed, with ``python -m miglab.grading grade``:
the blank student copy, a perfect submission, and every attack in
tests/submissions/hostile/ (each is the blank copy plus one attack cell).
Then, for every attack:

* its score per test cell is exactly the blank notebook's (0 everywhere):
  what an honest student who answered nothing gets;
* the perfect student in the same run still gets full marks (the class is
  unaffected by a fork bomb, a memory bomb or a flood next door);
* source/, every submitted file, the repository's source/ and a neighbouring
  course (its gradebook, source and submissions) are byte-for-byte unchanged;
* what the attacks that look around could reach: nothing.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
HOSTILE = REPO / "tests" / "submissions" / "hostile"
ASSIGNMENT = "deep_dive"
# Grading the whole corpus takes minutes (a fork bomb and a loop that ignores the interrupt each
# cost a cell timeout): more than the suite's default per-test limit on a busy machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
ATTACKS = sorted(p.name for p in HOSTILE.iterdir() if (p / f"{ASSIGNMENT}.ipynb").exists())


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def tree_digest(root: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under root (symlinks included as their target text)."""
    out = {}
    if root.is_file():
        return {root.name: hashlib.sha256(root.read_bytes()).hexdigest()}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_symlink():
            out[rel] = "link:" + os.readlink(p)
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def write_course(course: Path, students: dict[str, dict[str, bytes]]) -> None:
    course.mkdir(parents=True)
    (course / "nbgrader_config.py").write_text(
        "c = get_config()  # noqa: F821\n"
        f"load_subconfig({str(REPO / 'grader_config.py')!r})  # noqa: F821\n"
        f"c.CourseDirectory.root = {str(course)!r}\n"
        f"c.CourseDirectory.db_url = {('sqlite:///' + str(course / 'gradebook.db'))!r}\n"
    )
    shutil.copytree(REPO / "source" / ASSIGNMENT, course / "source" / ASSIGNMENT)
    for sid, files in students.items():
        for rel, data in files.items():
            dest = course / "submitted" / sid / ASSIGNMENT / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)


HOSTILE_WALL = 150  # seconds per submission
HOSTILE_CELL_TIMEOUT = 10  # seconds per cell


def grade(course: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "miglab.grading",
            "grade",
            ASSIGNMENT,
            "--course",
            str(course),
            "-j",
            "2",
            "--cell-timeout",
            str(HOSTILE_CELL_TIMEOUT),
            # A last resort here: every attack is stopped by its own limit well before (an honest
            # notebook takes a tenth of this, even on a loaded machine).
            "--wall",
            str(HOSTILE_WALL),
            "--no-progress",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=str(course),
    )


def scores(course: Path, students) -> dict[str, dict[str, float]]:
    from nbgrader.api import Gradebook

    out = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for sid in students:
            snb = gb.find_submission_notebook(ASSIGNMENT, ASSIGNMENT, sid)
            out[sid] = {g.name: float(g.score) for g in snb.grades}
    return out


def reports(course: Path, sid: str, cells: slice = slice(None)) -> list[dict]:
    path = course / "autograded" / sid / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    if not path.exists():
        return []
    text = "".join(
        o.get("text", "")
        for c in nbformat.read(path, as_version=4).cells[cells]
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "stream"
    )
    return [json.loads(m) for m in re.findall(r"HOSTILE-REPORT (\{.*?\})\n", text)]


def grade_the_corpus(tmp_path_factory) -> dict:
    """The corpus, beside honest students, graded once by the command line (sandboxed, 2 workers): what
    the tests of this module read, and what tests/test_dask.py compares the cluster's run with (the
    ``hostile_class`` fixture of tests/conftest.py holds it for the whole session)."""
    sample = _load("make_sample_class", REPO / "tests" / "submissions" / "make_sample_class.py")
    source_nb = nbformat.read(REPO / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    release_nb = nbformat.read(REPO / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    perfect = copy.deepcopy(release_nb)
    answers = sample._answers(source_nb)
    sample._fill(perfect, answers, set(answers))
    # Right answers from a noisy student: every cell (test cells included) prints, writes to
    # stderr, raises a warning, and one floods past the output cap. nbgrader alone gives a test
    # cell with stderr 0; the judge looks at the evidence only.
    noisy = copy.deepcopy(perfect)
    noise = nbformat.v4.new_code_cell(
        "import sys, warnings\n"
        "warnings.simplefilter('always')\n"
        "def _chatter(info):\n"
        "    print('debugging output ' * 50)\n"
        "    sys.stderr.write('a harmless note on stderr\\n')\n"
        "    warnings.warn('something deprecated')\n"
        "get_ipython().events.register('pre_run_cell', _chatter)\n"
        "print('z' * 3_000_000)\n"
    )
    noise["id"] = "noise"
    noisy.cells.insert(2, noise)
    students = {
        "blank": {f"{ASSIGNMENT}.ipynb": sample._dump(release_nb)},
        "perfect": {f"{ASSIGNMENT}.ipynb": sample._dump(perfect)},
        "noisy_perfect": {f"{ASSIGNMENT}.ipynb": sample._dump(noisy)},
    }
    for attack in ATTACKS:
        students[f"hostile_{attack}"] = {
            p.relative_to(HOSTILE / attack).as_posix(): p.read_bytes()
            for p in sorted((HOSTILE / attack).rglob("*"))
            if p.is_file()
        }
    base = tmp_path_factory.mktemp("hostile")
    course, neighbour = base / "course", base / "other_course"
    write_course(course, students)
    # A neighbouring course, already graded once: its gradebook must survive the attacks untouched.
    write_course(neighbour, {k: v for k, v in students.items() if k in ("blank", "perfect")})
    done = grade(neighbour)
    assert done.returncode == 0, done.stdout + done.stderr
    watched = {
        "course source": course / "source",
        "course submissions": course / "submitted",
        "repo source": REPO / "source",
        "repo release": REPO / "release",
        "neighbour": neighbour,
    }
    before = {k: tree_digest(v) for k, v in watched.items()}
    done = grade(course)
    after = {k: tree_digest(v) for k, v in watched.items()}
    return {
        "course": course,
        "done": done,
        "before": before,
        "after": after,
        "scores": scores(course, students),
        "students": students,
        "statuses": statuses(course),
    }


@pytest.fixture
def graded(hostile_class):
    return hostile_class


def statuses(course: Path) -> dict[str, str]:
    import sqlite3

    with sqlite3.connect(course / "gradebook.db") as con:
        return dict(con.execute("SELECT student, status FROM miglab_results"))


def test_a_flood_of_output_is_stopped_by_the_output_limit_long_before_the_wall(graded):
    assert graded["statuses"]["hostile_huge_output"] == "output_limit"


def test_the_command_ran_sandboxed(graded):
    done = graded["done"]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.returncode == 0, done.stdout[-3000:]  # student-caused trouble never fails the command
    # every student was graded and recorded, none failed the grader itself
    assert set(graded["scores"]) == set(graded["students"])
    assert "error" not in done.stdout.split("status:")[1].splitlines()[0]


def hidden_lines() -> list[str]:
    """Lines of the hidden test blocks that appear nowhere else in the instructor's notebook."""
    nb = nbformat.read(REPO / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    pattern = r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS"
    visible = "\n".join(re.sub(pattern, "", c.source, flags=re.S) for c in nb.cells)
    lines = {
        line.strip() for c in nb.cells for block in re.findall(pattern, c.source, re.S) for line in block.splitlines()
    }
    return sorted(line for line in lines if len(line) > 12 and line not in visible)


def test_no_feedback_page_shows_a_hidden_test(graded):
    """Hooks that print every cell's source, replay it later and raise it as an error all fail."""
    import html

    hidden = hidden_lines()
    assert len(hidden) > 40
    for sid in graded["students"]:
        page = graded["course"] / "feedback" / sid / ASSIGNMENT / f"{ASSIGNMENT}.html"
        text = html.unescape(page.read_text())
        leaked = [line for line in hidden if line in text]
        assert not leaked, (sid, leaked[:3])
    leak = html.unescape(
        (graded["course"] / "feedback" / "hostile_leak_hidden_tests" / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    )
    assert "output of the grading run not shown" in leak and "raised NotImplementedError while it was graded" in leak
    assert "STOLEN EARLIER: " not in leak  # the replayed sources never show (the attack's own code does)


def test_honest_students_are_unaffected(graded):
    perfect, blank = graded["scores"]["perfect"], graded["scores"]["blank"]
    source_nb = nbformat.read(REPO / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    full = {
        c.metadata["nbgrader"]["grade_id"]: float(c.metadata["nbgrader"]["points"])
        for c in source_nb.cells
        if c.metadata.get("nbgrader", {}).get("grade")
    }
    assert perfect == full
    assert graded["scores"]["noisy_perfect"] == full  # stderr, warnings and prints cost nothing
    assert blank == {gid: 0.0 for gid in full}


@pytest.mark.parametrize("attack", ATTACKS)
def test_attack_scores_like_a_blank_notebook(graded, attack):
    assert graded["scores"][f"hostile_{attack}"] == graded["scores"]["blank"]


@pytest.mark.parametrize("what", ["course source", "course submissions", "repo source", "repo release", "neighbour"])
def test_files_outside_the_sandbox_are_unchanged(graded, what):
    assert graded["after"][what] == graded["before"][what]


def test_looking_around_reaches_nothing(graded):
    course = graded["course"]
    own = "/home/student/work/"  # the kernel's private copy of its own submission: all it may see
    [found] = reports(course, "hostile_read_answers")
    assert found["found"] and all(p.startswith(own) for p in found["found"])
    [lookup] = reports(course, "hostile_package_lookup")
    assert lookup["key_tables"] == [] and lookup["modules"] >= 20  # it looked everywhere and found no key
    [written] = reports(course, "hostile_write_results")
    assert all(p.startswith(own) for p in written["written"])
    [net] = reports(course, "hostile_network")
    assert net == {"reached": []}
    [signs] = reports(course, "hostile_detect_grader")
    assert signs == {"signs": {"NBGRADER_EXECUTION": None, "autograded_cwd": False, "root": False}}
    # The setup cell (cell 1) imports miglab and Django: the real ones, not the folders shipped next
    # to the notebook. (The attack cell then imports its own copy on purpose: that only fools itself.)
    assert reports(course, "hostile_shadow_package", slice(0, 2)) == []
    assert {"shadow": "imported"} in reports(course, "hostile_shadow_package")


def test_corpus_is_up_to_date():
    gen = _load("make_hostile", HOSTILE / "make_hostile.py")
    assert gen.main(["--check"]) == 0


def test_without_the_sandbox_the_same_attacks_pay(tmp_path):
    """The control experiment: --unsafe runs kernels as the grader. Only attacks that read are run here."""
    students = {
        f"hostile_{a}": {
            p.relative_to(HOSTILE / a).as_posix(): p.read_bytes()
            for p in sorted((HOSTILE / a).rglob("*"))
            if p.is_file()
        }
        for a in ("read_answers", "shadow_package")
    }
    course = tmp_path / "course"
    write_course(course, students)
    done = grade(course, "--unsafe")
    assert done.returncode == 0, done.stdout + done.stderr
    got = scores(course, students)
    quiz = {gid: s for gid, s in got["hostile_read_answers"].items() if gid.startswith("quiz_")}
    assert quiz and all(s == 1.0 for s in quiz.values())  # the quiz key, read from source/, was used
    [found] = reports(course, "hostile_read_answers")
    assert any("/source/" in p and p.endswith(".ipynb") for p in found["found"])
    assert {"shadow": "imported"} in reports(course, "hostile_shadow_package")

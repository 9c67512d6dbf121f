"""Make the sample class: one submission per kind of student, from source/ and release/.

    python tests/submissions/make_sample_class.py          # (re)write tests/submissions/<assignment>/
    python tests/submissions/make_sample_class.py --check  # exit 1 if the committed files are stale
    python tests/submissions/make_sample_class.py --assignment field_options   # one (the first time: makes it)

Without --assignment: every assignment of ``ASSIGNMENTS`` (the classes this
script makes; a folder here with a generator of its own is left alone).

Every submission is derived from the instructor notebook and the student
copy, so the class follows the assignment as it grows. ``expected.json``
gives each student's score per test cell and status, derived from the
points in the source notebook and from what was done to the notebook (never
from running the grader):

perfect            the student copy with every answer filled from the solution
blank              the student copy as released
partial            the first half of the answers filled
deleted_test_cell  perfect, with the first test cell deleted (nbgrader puts it back)
tampered_tests     blank, with every test cell replaced by ``pass`` (restored: still 0)
infinite_loop      perfect, with a loop after the middle answer (interrupted; full marks)
ignores_sigint     perfect, the middle answer ignores SIGINT and loops (killed; credit before it)
dead_kernel        perfect, the middle answer calls os._exit (credit before it)
malformed          not JSON (a truncated file)
not_a_notebook     JSON, but not a notebook
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
ASSIGNMENT = "deep_dive"
ASSIGNMENTS = (ASSIGNMENT, "field_options")   # the sample classes this script makes (and `make release` remakes)

MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")


def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def is_answer(cell) -> bool:
    return bool(_meta(cell).get("solution"))


def is_test(cell) -> bool:
    m = _meta(cell)
    return bool(m.get("grade")) and not m.get("solution") and cell.cell_type == "code"


def solution_text(source: str) -> str:
    """The instructor's answer as a student would type it: the solution markers removed."""
    lines = [line for line in source.splitlines() if line.strip() not in MARKERS]
    return "\n".join(lines)


def _answers(source_nb) -> dict:
    return {_meta(c)["grade_id"]: solution_text(c.source) for c in source_nb.cells if is_answer(c)}


def _fill(nb, answers: dict, ids) -> None:
    for cell in nb.cells:
        gid = _meta(cell).get("grade_id")
        if is_answer(cell) and gid in ids:
            cell.source = answers[gid]


def _dump(nb) -> bytes:
    return (nbformat.writes(nb) + "\n").encode()


def build_class(source_nb, release_nb) -> tuple[dict, dict]:
    """Return ({student: file bytes}, {student: expected}) for the sample class."""
    answers = _answers(source_nb)
    cells = release_nb.cells
    answer_ids = [_meta(c)["grade_id"] for c in cells if is_answer(c)]
    tests = [(i, _meta(c)["grade_id"], float(_meta(c).get("points", 0))) for i, c in enumerate(cells) if is_test(c)]
    full = {gid: pts for _, gid, pts in tests}
    zero = {gid: 0.0 for gid in full}
    if not answer_ids or not tests:
        raise SystemExit("the assignment needs answer cells and test cells")

    def nearest_answer(index):
        for j in range(index, -1, -1):
            if is_answer(cells[j]):
                return _meta(cells[j])["grade_id"]
        return None

    def expected(scores, status):
        return {"status": status, "scores": scores, "total": sum(scores.values())}

    files, exp = {}, {}

    perfect = copy.deepcopy(release_nb)
    _fill(perfect, answers, set(answer_ids))
    files["perfect"], exp["perfect"] = _dump(perfect), expected(dict(full), "ok")

    files["blank"], exp["blank"] = _dump(release_nb), expected(dict(zero), "ok")

    half = set(answer_ids[: max(1, len(answer_ids) // 2)])
    partial = copy.deepcopy(release_nb)
    _fill(partial, answers, half)
    files["partial"] = _dump(partial)
    exp["partial"] = expected({gid: (pts if nearest_answer(i) in half else 0.0) for i, gid, pts in tests}, "ok")

    deleted = copy.deepcopy(perfect)
    first_test = next(c for c in deleted.cells if is_test(c))
    deleted.cells.remove(first_test)
    files["deleted_test_cell"], exp["deleted_test_cell"] = _dump(deleted), expected(dict(full), "ok")

    tampered = copy.deepcopy(release_nb)
    for cell in tampered.cells:
        if is_test(cell):
            cell.source = "pass"
    files["tampered_tests"], exp["tampered_tests"] = _dump(tampered), expected(dict(zero), "ok")

    # The middle answer carries the trouble; tests before it keep their credit.
    code_answers = [_meta(c)["grade_id"] for c in cells if is_answer(c) and c.cell_type == "code"]
    middle = code_answers[len(code_answers) // 2]
    middle_index = next(i for i, c in enumerate(cells) if _meta(c).get("grade_id") == middle)
    before = {gid: (pts if i < middle_index else 0.0) for i, gid, pts in tests}

    def with_middle(prefix="", suffix=""):
        nb = copy.deepcopy(perfect)
        for cell in nb.cells:
            if _meta(cell).get("grade_id") == middle:
                cell.source = prefix + cell.source + suffix
        return _dump(nb)

    files["infinite_loop"] = with_middle(suffix="\n\nwhile True:  # oops: never ends\n    pass\n")
    exp["infinite_loop"] = expected(dict(full), "timeout")
    files["ignores_sigint"] = with_middle(
        prefix="import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass\n\n")
    exp["ignores_sigint"] = expected(dict(before), "hung")
    files["dead_kernel"] = with_middle(prefix="import os\nos._exit(1)\n\n")
    exp["dead_kernel"] = expected(dict(before), "dead_kernel")

    files["malformed"] = _dump(perfect)[:200]
    exp["malformed"] = expected(dict(zero), "malformed")
    files["not_a_notebook"] = json.dumps({"essay": "I did the work on paper."}).encode() + b"\n"
    exp["not_a_notebook"] = expected(dict(zero), "malformed")
    return files, exp


def render(root: Path = REPO, assignment: str = ASSIGNMENT) -> dict:
    """{relative path: bytes} of the sample class folder for ``assignment``."""
    source = nbformat.read(str(root / "source" / assignment / f"{assignment}.ipynb"), as_version=4)
    release = nbformat.read(str(root / "release" / assignment / f"{assignment}.ipynb"), as_version=4)
    files, exp = build_class(source, release)
    out = {f"{name}.ipynb": data for name, data in files.items()}
    out["expected.json"] = (json.dumps(exp, indent=1, sort_keys=True) + "\n").encode()
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="only check that the committed files are current")
    p.add_argument("--assignment", action="append",
                   help=f"assignment id, repeatable (default: {', '.join(ASSIGNMENTS)})")
    args = p.parse_args(argv)
    return max(one(assignment, args.check) for assignment in args.assignment or ASSIGNMENTS)


def one(assignment: str, check: bool) -> int:
    dest = HERE / assignment
    want = render(REPO, assignment)
    if check:
        have = {p.name: p.read_bytes() for p in dest.glob("*")} if dest.is_dir() else {}
        stale = sorted(set(want) ^ set(have) | {k for k in want if have.get(k) != want[k]})
        if stale:
            print(f"stale sample class in {dest}: {', '.join(stale)}; "
                  f"run {Path(__file__).relative_to(REPO)} --assignment {assignment}")
            return 1
        print(f"{dest} is current ({len(want)} files)")
        return 0
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("*"):
        if old.name not in want:
            old.unlink()
    for name, data in want.items():
        (dest / name).write_bytes(data)
    print(f"wrote {len(want)} files to {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())


def tiny_source():
    """A three-question instructor notebook (nbgrader metadata v3) for fast grading tests."""
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    def meta(grade_id, *, grade=False, solution=False, locked=False, points=None):
        m = {"schema_version": 3, "grade": grade, "solution": solution, "locked": locked, "grade_id": grade_id}
        if points is not None:
            m["points"] = points
        return {"nbgrader": m}

    def answer(gid, body):
        return new_code_cell(f"### BEGIN SOLUTION\n{body}\n### END SOLUTION", metadata=meta(gid, solution=True))

    def test(gid, visible, hidden, points):
        src = f"{visible}\n### BEGIN HIDDEN TESTS\n{hidden}\n### END HIDDEN TESTS"
        return new_code_cell(src, metadata=meta(gid, grade=True, locked=True, points=points))

    cells = [
        new_code_cell("import math", metadata=meta("setup", locked=True)),
        new_markdown_cell("**Q1.** Write `double(x)`."),
        answer("q1", "def double(x):\n    return 2 * x"),
        test("q1_test", "assert double(2) == 4", "assert double(-3) == -6  # HIDDEN-Q1", 2),
        new_markdown_cell("**Q2.** Write `square(x)`."),
        answer("q2", "def square(x):\n    return x * x"),
        test("q2_test", "assert square(3) == 9", "assert square(-4) == 16  # HIDDEN-Q2", 3),
        new_markdown_cell("**Q3.** Write `hyp(a, b)`."),
        answer("q3", "def hyp(a, b):\n    return math.hypot(a, b)"),
        test("q3_test", "assert hyp(3, 4) == 5", "assert hyp(5, 12) == 13  # HIDDEN-Q3", 5),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb

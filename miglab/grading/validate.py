"""``python -m miglab.grading check ASSIGNMENT``: is the assignment ready to release and grade?

It reads ``source/<assignment>/`` the way grading will and reports, per
graded cell, who decides its score (the judge outside the kernel, nbgrader's
result inside it, or a human), then every problem that would make grades
wrong:

* a graded cell without points; a judged cell that decides nothing (its
  checks only record an answer: no ``expect=``, no deciding rule; a quiz
  cell without its key, say); a rule that cannot be found; a check whose
  inputs depend on the student's answer; ``assert`` statements in a judged
  cell (the judge ignores them);
* ``release/<assignment>/`` not what nbgrader makes from ``source/`` now, or
  holding a private file (``rules.py``) or a hidden test;
* with ``run`` (the default): the instructor's own solutions, graded by the
  real pipeline, must earn every point, and the untouched release none.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .assignment import AssignmentError, prepare
from .model import AssignmentInfo
from .plan import BEGIN_HIDDEN, CellPlan, Plan
from .rulebook import RuleBook, RuleError

SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")


@dataclass
class Report:
    assignment: str
    cells: list = field(default_factory=list)  # (notebook, grade_id, points, decided by)
    problems: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    solution_score: tuple | None = None  # (score, max)
    blank_score: tuple | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def text(self) -> str:
        lines = [f"{self.assignment}: {len(self.cells)} graded cells, {sum(c[2] for c in self.cells):g} points"]
        lines += [f"  {nb}:{gid:<24} {points:>4g} pt  {who}" for nb, gid, points, who in self.cells]
        if self.solution_score:
            lines.append(f"  the solutions score {self.solution_score[0]:g} / {self.solution_score[1]:g}")
        if self.blank_score:
            lines.append(f"  the untouched release scores {self.blank_score[0]:g} / {self.blank_score[1]:g}")
        lines += [f"  warning: {w}" for w in self.warnings]
        lines += [f"  PROBLEM: {p}" for p in self.problems]
        lines.append("ready" if self.ok else f"{len(self.problems)} problem(s): not ready")
        return "\n".join(lines)


def validate(root: Path, assignment: str, *, run: bool = True) -> Report:
    report = Report(assignment)
    try:
        info = prepare(Path(root), assignment)
    except AssignmentError as exc:
        report.problems.append(str(exc))
        return report
    plan = Plan.from_json(info.plan)
    rules = RuleBook(info.rules, origin=f"source/{assignment}/rules.py", assignment=assignment)
    report.problems += plan.problems
    report.warnings += plan.notes
    _cells(report, info, plan, rules)
    _release(report, Path(root), assignment)
    if run and not report.problems:
        _run_solutions(report, Path(root), assignment, info)
    return report


def _cells(report: Report, info: AssignmentInfo, plan: Plan, rules: RuleBook) -> None:
    manual = {(nb, c.grade_id) for nb, cells in info.cells.items() for c in cells if c.grade and c.solution}
    for nb, gid, points in info.grade_cells:
        cp = plan.cell(nb, gid)
        if (nb, gid) in manual:
            who = "graded by hand"
        elif cp is not None and cp.judged:
            who = f"judge ({len(cp.calls)} checks, {sum(c.hidden for c in cp.calls)} hidden)"
            _judged_cell(report, cp, rules)
        else:
            who = "nbgrader, in the kernel (asserts)"
        if not points:
            report.problems.append(f"{nb}:{gid} has no points")
        report.cells.append((nb, gid, points, who))


def _judged_cell(report: Report, cp: CellPlan, rules: RuleBook) -> None:
    deciding = 0
    for call in cp.calls:
        try:
            rule = rules.resolve(call.rule)
        except RuleError as exc:
            report.problems.append(f"{cp.notebook}:{cp.grade_id}: {exc}")
            continue
        if call.has_expect or (rule is not None and getattr(rule, "decides_without_expect", True)):
            deciding += 1
    if not deciding:
        report.problems.append(
            f"{cp.notebook}:{cp.grade_id}: its checks only record the answer and decide "
            "nothing (add a hidden check(..., expect=...) or a deciding rule)"
        )
    if cp.has_asserts:
        report.warnings.append(
            f"{cp.notebook}:{cp.grade_id}: assert statements in a judged cell are decided in "
            "the kernel and ignored by the judge; write them as check(...) calls"
        )


def _release(report: Report, root: Path, assignment: str) -> None:
    from .release import release_problems

    folder = root / "release" / assignment
    if not folder.exists():
        report.warnings.append(f"release/{assignment} does not exist yet (make release)")
        return
    report.problems += [
        f"release/{assignment} is stale: {p} (run make release)" for p in release_problems(root, assignment)
    ]
    for path in folder.rglob("*"):
        if path.name == "rules.py":
            report.problems.append(f"release/{assignment} holds {path.relative_to(folder)}: rules are private")
        if path.suffix == ".ipynb" and (BEGIN_HIDDEN in path.read_text() or SOLUTION_MARKERS[0] in path.read_text()):
            report.problems.append(f"release/{assignment}/{path.name} holds a hidden test or a solution")


def _run_solutions(report: Report, root: Path, assignment: str, info: AssignmentInfo) -> None:
    """Grade the solutions and the untouched release in a scratch course, with local kernels."""
    from .coordinator import grade_assignment
    from .model import KernelOptions

    with tempfile.TemporaryDirectory(prefix="miglab-check-") as tmp:
        course = scratch_course(Path(tmp) / "course", root, assignment)
        for name, nb_id in ((n, n) for n in info.notebooks):
            source = json.loads((root / "source" / assignment / f"{nb_id}.ipynb").read_text())
            _write(course, "solution", assignment, name, json.dumps(solution_notebook(source, root, assignment, nb_id)))
            release = root / "release" / assignment / f"{nb_id}.ipynb"
            if release.exists():
                _write(course, "blank", assignment, name, release.read_text())
        summary = grade_assignment(
            course, assignment, workers=2, kernel=KernelOptions(), progress=False, feedback=False, reports=False
        )
    by = {r.student_id: r for r in summary.results}
    if "solution" in by:
        r = by["solution"]
        report.solution_score = (r.total, r.max_total)
        if r.total < r.max_total:
            lost = [f"{s.grade_id} ({s.reason})" for s in r.scores if (s.score or 0) < s.max_score]
            report.problems.append(f"the solutions do not earn every point: {'; '.join(lost)}")
    if "blank" in by:
        r = by["blank"]
        report.blank_score = (r.total, r.max_total)
        if r.total > 0:
            free = [s.grade_id for s in r.scores if (s.score or 0) > 0]
            report.warnings.append(f"the untouched release earns points: {', '.join(free)}")


def scratch_course(dest: Path, course: Path, assignment: str) -> Path:
    """A throwaway course with this course's nbgrader settings and ``source/<assignment>``."""
    dest.mkdir(parents=True, exist_ok=True)
    config = course / "nbgrader_config.py"
    lines = ["c = get_config()  # noqa: F821"]
    if config.exists():
        lines.append(f"load_subconfig({str(config)!r})  # noqa: F821")
    lines += [
        f"c.CourseDirectory.root = {str(dest)!r}",
        f"c.CourseDirectory.db_url = {('sqlite:///' + str(dest / 'gradebook.db'))!r}",
    ]
    (dest / "nbgrader_config.py").write_text("\n".join(lines) + "\n")
    shutil.copytree(
        course / "source" / assignment,
        dest / "source" / assignment,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"),
    )
    return dest


def solution_notebook(source: dict, root: Path, assignment: str, nb_id: str) -> dict:
    """The release notebook with every answer cell filled from the instructor's solution."""
    release = root / "release" / assignment / f"{nb_id}.ipynb"
    base = json.loads(release.read_text()) if release.exists() else source
    answers = {
        c["metadata"]["nbgrader"]["grade_id"]: _without_markers(_text(c["source"]))
        for c in source["cells"]
        if c.get("metadata", {}).get("nbgrader", {}).get("solution")
    }
    for cell in base["cells"]:
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if cell.get("metadata", {}).get("nbgrader", {}).get("solution") and gid in answers:
            cell["source"] = answers[gid]
    return base


def _text(source: str | list) -> str:
    return "".join(source) if isinstance(source, list) else source


def _without_markers(source: str) -> str:
    return "\n".join(line for line in source.splitlines() if line.strip() not in SOLUTION_MARKERS)


def _write(course: Path, student: str, assignment: str, nb_id: str, text: str) -> None:
    folder = course / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{nb_id}.ipynb").write_text(text)

"""``python -m miglab.grading me NOTEBOOK`` (``make grade-me``): a learner's own copy, graded for real.

A self-paced learner (who has this checkout, ``source/`` included) gets the
verdict an instructor's grading would give: the same pipeline
(:func:`~miglab.grading.coordinator.grade_assignment`), the same sandbox for
the kernel, the same judge outside it, the same time limits, run on a
scratch course made from ``source/<assignment>/`` and the course's nbgrader
settings. The learner's notebook is only read: its bytes are copied into the
scratch course as ``submitted/me/<assignment>/``, and checked unchanged
afterwards. The scratch course is kept (``.grading/me/<assignment>/`` unless
``--out``) so its feedback page can be opened; each run starts it afresh.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

from .assignment import AssignmentError
from .collect import format_timestamp

STUDENT = "me"


@dataclass
class SelfGrade:
    notebook: Path
    assignment: str
    course: Path  # the scratch course
    result: object  # model.Result
    feedback: list  # feedback pages written (Paths)

    def text(self) -> str:
        r = self.result
        width = max([len(s.grade_id) for s in r.scores] + [8])
        lines = [f"{self.notebook}: {self.assignment}, graded as the instructor's grading would (sandbox and judge)"]
        for s in r.scores:
            score = s.score or 0.0
            mark = "✔" if score >= s.max_score else ("~" if score > 0 else "✘")
            why = f"  {s.reason.splitlines()[0]}" if s.reason and score < s.max_score else ""
            lines.append(f"  {s.grade_id:<{width}} {score:>4g} / {s.max_score:<3g} {mark}{why}")
        lines.append(
            f"total: {r.total:g} / {r.max_total:g}   status: {r.status}"
            + (f" ({r.reason.splitlines()[0]})" if r.reason and r.status != "ok" else "")
        )
        lines += [f"note: {n}" for n in r.notes]
        lines += [f"feedback: {p}" for p in self.feedback]
        if not self.feedback:
            lines.append("feedback: none was written (see the status)")
        lines.append("Your notebook was only read; nothing in it changed.")
        return "\n".join(lines)


def infer_assignment(course: Path, notebook: Path) -> str:
    """The assignment a notebook belongs to: its folder's name, else its own name, if ``source/`` has it."""
    for name in (notebook.parent.name, notebook.stem):
        if (course / "source" / name).is_dir():
            return name
    have = sorted(p.name for p in (course / "source").iterdir() if p.is_dir()) if (course / "source").is_dir() else []
    raise AssignmentError(
        f"cannot tell which assignment {notebook} is: neither its folder nor its name is one of "
        f"source/ ({', '.join(have) or 'none'}); name it with --assignment"
    )


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _notebooks_of(notebook: Path, assignment: str, notebooks: tuple[str, ...]) -> dict[str, Path]:
    """The learner's copies of the assignment's notebooks: this one, and the others found beside it."""
    if notebook.stem in notebooks:
        found = {nb: notebook.parent / f"{nb}.ipynb" for nb in notebooks}
        return {nb: p for nb, p in found.items() if nb == notebook.stem or (p.is_file() and not p.is_symlink())}
    if len(notebooks) == 1:  # a copy under another name ("deep_dive-Copy1.ipynb")
        return {notebooks[0]: notebook}
    raise AssignmentError(
        f"{notebook.name} is not a notebook of {assignment} "
        f"(its notebooks: {', '.join(n + '.ipynb' for n in notebooks)})"
    )


def grade_mine(
    notebook: Path,
    *,
    course: Path,
    assignment: str | None = None,
    out: Path | None = None,
    unsafe: bool = False,
    limits=None,
) -> SelfGrade:
    """Grade ``notebook`` (and the assignment's other notebooks beside it) as the instructor would.

    ``limits``: the time limits (default: the course's, as ``python -m miglab.grading grade`` takes them).
    """
    from .assignment import prepare
    from .coordinator import default_kernel, grade_assignment
    from .validate import scratch_course

    notebook, course = Path(notebook).resolve(), Path(course).resolve()
    if not notebook.is_file() or notebook.is_symlink():
        raise AssignmentError(f"no notebook file {notebook}")
    assignment = assignment or infer_assignment(course, notebook)
    mine = _notebooks_of(notebook, assignment, prepare(course, assignment).notebooks)
    before = {nb: _digest(p) for nb, p in mine.items()}

    scratch = Path(out).resolve() if out else course / ".grading" / "me" / assignment
    if any(scratch == p or scratch in p.parents for p in mine.values()):
        raise AssignmentError(f"the output folder {scratch} holds the notebook itself: choose another --out")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch_course(scratch, course, assignment)
    folder = scratch / "submitted" / STUDENT / assignment
    folder.mkdir(parents=True)
    for nb, path in mine.items():
        (folder / f"{nb}.ipynb").write_bytes(path.read_bytes())
    (folder / "timestamp.txt").write_text(format_timestamp(dt.datetime.now(dt.UTC)))

    summary = grade_assignment(
        scratch,
        assignment,
        workers=1,
        force=True,
        limits=limits,
        kernel=default_kernel(unsafe),
        progress=False,
        feedback=True,
        reports=False,
    )
    after = {nb: _digest(p) for nb, p in mine.items()}
    if after != before:  # never: the notebook is only read; said loudly if it ever were not so
        raise AssignmentError(f"{notebook} changed while it was graded")
    result = next(r for r in summary.results if r.student_id == STUDENT)
    pages = sorted((scratch / "feedback" / STUDENT / assignment).glob("*.html"))
    return SelfGrade(notebook=notebook, assignment=assignment, course=scratch, result=result, feedback=pages)

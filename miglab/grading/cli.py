"""``python -m miglab.grading`` (or ``miglab-grade``): grade a class, check an assignment, import LMS downloads,
write reports, export grades for an LMS, grade a learner's own copy, check the gradebook."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SAMPLE_COURSE = REPO / ".grading"  # where `grade --sample-class DIR` grades (git-ignored, safe to delete)
SAMPLE_CELL_TIMEOUT = 15.0


def _limits(args, course: Path):
    from .assignment import load_course_config
    from .model import TimeLimits

    config = load_course_config(course)
    timeout = args.cell_timeout or config.get("Execute", {}).get("timeout") or 60
    wall = args.wall or max(600.0, 20 * float(timeout))
    return TimeLimits(cell_timeout=float(timeout), wall=float(wall))


def _executor(args):
    """None (the local pool), or the Dask cluster at ``--dask ADDRESS``, its workers checked for isolation."""
    if not args.dask:
        return None
    try:
        import distributed  # noqa: F401

        from .cluster import DaskExecutor
    except ImportError:
        raise SystemExit("--dask needs the 'distributed' package: pip install distributed") from None
    executor = DaskExecutor.connect(args.dask)
    leaky = {} if args.unsafe else executor.check_isolation()
    if leaky:
        executor.close()
        from ..sandbox.bwrap import SandboxError

        raise SandboxError(
            "refusing to run student code on Dask workers without isolation: "
            + "; ".join(f"{addr}: {why}" for addr, why in sorted(leaky.items()))
            + " (fix them, or pass --unsafe)"
        )
    return executor


def make_sample_course(submissions: Path, dest: Path = SAMPLE_COURSE) -> Path:
    """A scratch course: this repo's nbgrader settings, ``source/<assignment>`` and a folder of sample
    submissions (``<student>.ipynb`` files), where the folder's name is the assignment's."""
    from .lms import import_submissions

    submissions = Path(submissions).resolve()
    assignment = submissions.name
    src = REPO / "source" / assignment
    if not src.is_dir():
        raise SystemExit(f"no {src}: the sample class needs the assignment source")
    if not submissions.is_dir():
        raise SystemExit(f"no sample class in {submissions}")
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "nbgrader_config.py").write_text(
        "# Scratch course made by `python -m miglab.grading grade` (the sample class). Safe to delete.\n"
        "c = get_config()  # noqa: F821\n"
        f"load_subconfig({str(REPO / 'grader_config.py')!r})  # noqa: F821\n"
        f"c.CourseDirectory.root = {str(dest)!r}\n"
        f"c.CourseDirectory.db_url = {('sqlite:///' + str(dest / 'gradebook.db'))!r}\n"
    )
    shutil.rmtree(dest / "source" / assignment, ignore_errors=True)
    shutil.copytree(
        src, dest / "source" / assignment, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__")
    )
    import_submissions(submissions, dest, assignment, replace=True)
    return dest


def cmd_grade(args) -> int:
    from .coordinator import default_kernel, grade_assignment

    if args.sample_class:
        course = make_sample_course(Path(args.sample_class))
        assignment = Path(args.sample_class).resolve().name
        if not args.cell_timeout:
            args.cell_timeout = SAMPLE_CELL_TIMEOUT
        print(f"Grading the sample class {args.sample_class} in the scratch course {course}", flush=True)
    elif args.assignment is None:
        raise SystemExit("say which assignment to grade (or --sample-class DIR): see --help")
    else:
        course, assignment = Path(args.course).resolve(), args.assignment
    executor = _executor(args)
    try:
        # With --dask the kernels run on the workers, whose isolation _executor checked, not here.
        kernel = default_kernel(args.unsafe, check=executor is None)
        summary = grade_assignment(
            course,
            assignment,
            db_url=args.db,
            workers=args.workers,
            executor=executor,
            force=args.force,
            students=args.student or None,
            limits=_limits(args, course),
            kernel=kernel,
            progress=not args.no_progress,
            feedback=not args.no_feedback,
            rebuild_gradebook=args.rebuild_gradebook,
        )
    finally:
        if executor is not None:
            executor.close()
    print(summary.text())
    if summary.interrupted:
        return 130
    return 1 if summary.statuses.get("error") else 0


def cmd_import(args) -> int:
    from .lms import LMSImportError, import_submissions

    course = Path(args.course).resolve()
    try:
        report = import_submissions(
            args.source,
            course,
            args.assignment,
            notebook=args.notebook,
            id_regex=args.id_regex,
            replace=args.replace,
            due=args.due,
            db_url=args.db or _db(args, course)[0],
        )
    except LMSImportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.text())
    return 1 if report.problems else 0


def _db(args, course: Path):
    """The gradebook's URL and the course id; a URL whose driver is missing or server is down is one line."""
    from .assignment import load_course_config
    from .gradebook import require_driver

    cd = load_course_config(course).get("CourseDirectory", {})
    db_url = args.db or cd.get("db_url") or f"sqlite:///{course / 'gradebook.db'}"
    require_driver(db_url)
    return db_url, cd.get("course_id") or "default_course"


def cmd_report(args) -> int:
    from .reports import write_reports

    course = Path(args.course).resolve()
    db_url, course_id = _db(args, course)
    csv_path, chart = write_reports(db_url, course_id, args.assignment, course / "reports" / args.assignment)
    print(f"grades CSV: {csv_path}\nscore chart: {chart}")
    return 0


def cmd_check(args) -> int:
    from .validate import validate

    report = validate(Path(args.course).resolve(), args.assignment, run=not args.no_run)
    print(report.text())
    return 0 if report.ok else 1


def cmd_integrity(args) -> int:
    from .gradebook import check_integrity

    course = Path(args.course).resolve()
    db_url, course_id = _db(args, course)
    problems = check_integrity(db_url, course_id, args.assignment, course)
    for p in problems:
        print(p)
    print("gradebook OK" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


def cmd_export(args) -> int:
    from .export import ExportError, default_output, export

    course = Path(args.course).resolve()
    db_url, course_id = _db(args, course)
    output = Path(args.output) if args.output else default_output(course, args.assignment, args.format)
    try:
        report = export(
            db_url,
            course_id,
            args.assignment,
            args.format,
            output,
            column=args.column,
            roster=Path(args.roster) if args.roster else None,
            out_of=args.out_of,
        )
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.text())
    return 0


def cmd_me(args) -> int:
    from .learner import grade_mine

    course = Path(args.course).resolve()
    mine = grade_mine(
        Path(args.notebook),
        course=course,
        assignment=args.assignment,
        out=Path(args.out) if args.out else None,
        unsafe=args.unsafe,
        limits=_limits(args, course),
    )
    print(mine.text())
    return 1 if mine.result.status == "error" else 0


def _grade_command(sub) -> None:

    g = sub.add_parser(
        "grade",
        help="grade all new or changed submissions of an assignment",
        description="Grade submitted/<student>/<assignment>/ for every student (or, with "
        "--sample-class, a folder of sample submissions in the scratch course .grading/).",
    )
    g.add_argument("assignment", nargs="?", help="assignment id")
    g.add_argument(
        "--sample-class",
        metavar="DIR",
        help="grade a folder of sample submissions (<student>.ipynb) "
        "in the scratch course .grading/ instead; the folder's "
        "name is the assignment's",
    )
    g.add_argument(
        "--course",
        default=".",
        help="course folder holding nbgrader_config.py, source/, submitted/ (default: the current folder)",
    )
    g.add_argument(
        "--db",
        help="gradebook SQLAlchemy URL (default: the course's, sqlite:///<course>/gradebook.db); "
        "e.g. postgresql+psycopg://user@host/grades",
    )
    g.add_argument("-j", "--workers", type=int, help="parallel workers (default: number of CPU cores)")
    g.add_argument("--force", action="store_true", help="regrade every submission, even unchanged ones")
    g.add_argument("--student", action="append", help="grade only this student (repeatable)")
    g.add_argument(
        "--cell-timeout",
        type=float,
        help="seconds per cell before it is interrupted (default: the course's Execute.timeout)",
    )
    g.add_argument("--wall", type=float, help="seconds per submission in all (default: max(600, 20 x cell timeout))")
    g.add_argument("--unsafe", action="store_true", help="run kernels as plain local processes, without the sandbox")
    g.add_argument("--dask", metavar="ADDRESS", help="run the workers on a Dask cluster (scheduler address)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument("--no-feedback", action="store_true", help="skip the feedback HTML files")
    g.add_argument(
        "--rebuild-gradebook",
        action="store_true",
        help="remove the assignment and its grades from the gradebook first (students stay), then grade "
        "every submission: the way forward after changing an assignment's graded cells",
    )
    g.set_defaults(func=cmd_grade)


def _import_command(sub) -> None:
    i = sub.add_parser("import", help="import an LMS download (folder or zip of notebooks) as submissions")
    i.add_argument("source", help="folder or .zip of notebooks, one per student")
    i.add_argument("assignment", help="assignment id")
    i.add_argument("--course", default=".", help="course folder (default: current folder)")
    i.add_argument("--notebook", help="notebook name inside the assignment (default: the assignment id)")
    i.add_argument(
        "--id-regex", help="regular expression finding the student id in a file name (group 'id' or group 1)"
    )
    i.add_argument(
        "--replace",
        action="store_true",
        help="replace a different existing submission (the old folder is kept beside it)",
    )
    i.add_argument(
        "--due",
        help='the assignment\'s due date ("2026-12-15 17:00:00 UTC"), for lateness marked in '
        "Canvas file names (default: the gradebook's due date)",
    )
    i.add_argument("--db", help="gradebook SQLAlchemy URL holding the due date (default: the course's)")
    i.set_defaults(func=cmd_import)


def _report_command(sub) -> None:
    r = sub.add_parser("report", help="write reports/<assignment>/grades.csv and scores.png from the gradebook")
    r.add_argument("assignment")
    r.add_argument("--course", default=".")
    r.add_argument("--db")
    r.set_defaults(func=cmd_report)


def _check_command(sub) -> None:
    c = sub.add_parser(
        "check",
        help="check an assignment before release: cells, points, rules, keys, release/, "
        "and that the solutions earn every point",
    )
    c.add_argument("assignment")
    c.add_argument("--course", default=".")
    c.add_argument("--no-run", action="store_true", help="skip grading the solutions and the blank release")
    c.set_defaults(func=cmd_check)


def _export_command(sub) -> None:
    e = sub.add_parser(
        "export",
        help="write the assignment's grades for an LMS import (Canvas, Moodle) or as the per-question CSV",
        description="Grades from the gradebook in the shape an LMS gradebook import expects: "
        "canvas (Canvas's Grades > Import: Student, ID, SIS User ID, SIS Login ID, Section, "
        "one points column), moodle (the assignment's grading worksheet: Identifier, Grade, "
        "...), csv (reports/<assignment>/grades.csv, one column per question). Students' "
        "LMS ids come from --roster, else nbgrader's student table (lms_user_id, names, "
        "e-mail), else the student id itself (digits: the LMS's id, as the LMS import "
        "takes it from file names).",
    )
    e.add_argument("assignment")
    e.add_argument("--format", choices=("canvas", "moodle", "csv"), default="canvas", help="default: canvas")
    e.add_argument("--course", default=".")
    e.add_argument("--db")
    e.add_argument(
        "-o", "--output", help="file to write (default: reports/<assignment>/canvas.csv, moodle.csv or grades.csv)"
    )
    e.add_argument(
        "--column",
        help="Canvas: the assignment column's header, e.g. 'Deep Dive (12345)' for an "
        "existing Canvas assignment (default: the assignment id: a new assignment)",
    )
    e.add_argument(
        "--roster",
        help="the LMS's own class file to take identities from: Canvas's gradebook export, "
        "or Moodle's downloaded grading worksheet",
    )
    e.add_argument("--out-of", type=float, help="scale the totals to this many points (default: the assignment's)")
    e.set_defaults(func=cmd_export)


def _me_command(sub) -> None:
    m = sub.add_parser(
        "me",
        help="grade your own working copy of an assignment, as the instructor's grading would",
        description="Grade one learner's notebook with the instructor's pipeline (sandboxed kernel, "
        "trusted judge, the course's time limits) in a scratch course made from source/; "
        "print each question's score and where the feedback page is. The notebook is "
        "only read, never changed.",
    )
    m.add_argument("notebook", help="your notebook, e.g. release/<assignment>/<assignment>.ipynb")
    m.add_argument("--assignment", help="assignment id (default: the notebook's folder or file name)")
    m.add_argument("--course", default=".", help="course folder holding source/ (default: the current folder)")
    m.add_argument(
        "--out", help="scratch course to grade in and keep for its feedback page (default: .grading/me/<assignment>/)"
    )
    m.add_argument("--cell-timeout", type=float, help="seconds per cell (default: the course's Execute.timeout)")
    m.add_argument("--wall", type=float, help="seconds for the whole notebook (default: max(600, 20 x cell timeout))")
    m.add_argument("--unsafe", action="store_true", help="run the kernel without the sandbox")
    m.set_defaults(func=cmd_me)


def _integrity_command(sub) -> None:
    v = sub.add_parser("integrity", help="check the gradebook's integrity for an assignment")
    v.add_argument("assignment")
    v.add_argument("--course", default=".")
    v.add_argument("--db")
    v.set_defaults(func=cmd_integrity)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m miglab.grading",
        description="Batch grading for the course: every submission graded by real nbgrader, in parallel; "
        "a bad submission gets a recorded result with a reason and never stops the class.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    _grade_command(sub)
    _import_command(sub)
    _report_command(sub)
    _check_command(sub)
    _export_command(sub)
    _me_command(sub)
    _integrity_command(sub)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    from ..sandbox.bwrap import SandboxError
    from .assignment import AssignmentError, ensure_tools_on_path

    ensure_tools_on_path()
    try:
        return args.func(args)
    except (AssignmentError, SandboxError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

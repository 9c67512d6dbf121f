"""Import notebooks downloaded from an LMS (a folder or a zip) as nbgrader submissions.

Each notebook file belongs to one student, and its name (or its folder's
name) carries the student id. Understood out of the box:

* ``alice.ipynb``, ``alice_deep_dive.ipynb``, ``alice-deep_dive.ipynb``  ->  ``alice``
* Canvas ("Download Submissions"): ``smithalice_12345_67890_deep_dive.ipynb`` -> ``12345``,
  ``smithalice_LATE_12345_67890_deep_dive.ipynb`` -> ``12345``, late; anonymous grading:
  ``LATE_anon_x7Gq2_67890_deep_dive.ipynb`` -> ``anon_x7Gq2``. Canvas builds the name as
  ``<sortable name>_[LATE_]<user id>_<file id>_<file name>`` (older versions lowercase the
  ``late``; both are read).
* Moodle ("Download all submissions"), in folders or not:
  ``Alice Smith_12345_assignsubmission_file_/deep_dive.ipynb`` or
  ``Alice Smith_12345_assignsubmission_file_deep_dive.ipynb`` -> ``12345``

``--id-regex`` handles anything else (the group named ``id``, or group 1).
Each student gets ``submitted/<id>/<assignment>/<notebook>.ipynb`` and a
``timestamp.txt``, written by the grader (files 0o600, folders 0o700). Nothing
is overwritten silently: an identical submission is left as is, a different
one is a conflict unless ``replace=True``, and then the previous folder is
kept beside it.

Lateness and submission times. Neither download says *when* a student
submitted: Canvas's names carry only the ``LATE`` flag (and its zip entries
all bear the time the zip was built), Moodle's names carry nothing (its zip
entry times are those of its file store, not of the submission). So the
entry times are never used, and ``timestamp.txt`` holds

* for a Canvas name with ``LATE``, when the assignment has a due date (given
  as ``due=``, else read from the gradebook): 1 second after the due date,
  so nbgrader counts it late (by an amount the download does not tell);
* for a Canvas name without ``LATE``, with a due date: the due date itself
  (on time, as Canvas says; Canvas's verdict includes its own extensions);
* otherwise (no due date known, or a name that says nothing of time): the
  time of this import, an upper bound of the submission time, as nbgrader's
  own ``collect`` would give. The report says so for every student, and
  warns when Canvas marks students ``LATE`` but no due date is known (set
  it, then import again with ``replace=True``).

An import-time stamp never makes an unchanged notebook a conflict; a stamp
taken from the LMS does when it differs from the one already there.

Every zip entry or folder entry that is a link, a device, a pipe, a socket,
an absolute path, a path with ``..``, a drive letter or a NUL is refused with
a problem line and never written; a folder download is read with
:func:`miglab.grading.collect.read_submission` (no link is ever followed).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import stat
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .collect import (
    LINK,
    MAX_DEPTH,
    MAX_FILE_BYTES,
    format_timestamp,
    kind_of,
    parse_timestamp,
    read_submission,
    size_text,
    write_tree,
)

SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")
CANVAS = re.compile(r"^(?P<name>.+?)_(?:(?P<late>late)_)?(?P<id>\d+)_\d+_.", re.IGNORECASE)
CANVAS_ANONYMOUS = re.compile(r"^(?:(?P<late>late)_)?(?P<id>anon_[A-Za-z0-9]+)_\d+_.", re.IGNORECASE)
MOODLE = re.compile(r"_(?P<id>\d+)_assignsubmission_")

#: The most notebook bytes one import reads (a whole class); over it nothing is imported.
MAX_IMPORT_BYTES = 2**30
#: The most entries a download (zip entries, or files and folders) may hold; over it nothing is imported.
MAX_IMPORT_ENTRIES = 100_000


class LMSImportError(Exception):
    pass


@dataclass
class ImportReport:
    imported: list = field(default_factory=list)  # student ids written
    unchanged: list = field(default_factory=list)  # identical submission already there
    replaced: list = field(default_factory=list)  # different submission, replaced (old one kept)
    problems: list = field(default_factory=list)  # (file name, reason): nothing written for it
    late: list = field(default_factory=list)  # student ids the LMS marks late (Canvas LATE)
    times: dict = field(default_factory=dict)  # student id -> (timestamp.txt written, where it comes from)
    warnings: list = field(default_factory=list)  # sentences for the instructor

    def text(self) -> str:
        lines = [
            f"imported {len(self.imported)}, replaced {len(self.replaced)}, "
            f"unchanged {len(self.unchanged)}, not imported {len(self.problems)}"
        ]
        if self.late:
            lines.append(f"  late (the LMS says so): {', '.join(self.late)}")
        by_how: dict[str, list] = {}
        for sid, (_, how) in self.times.items():
            by_how.setdefault(how, []).append(sid)
        lines += [f"  timestamp.txt is {how}: {', '.join(sids)}" for how, sids in by_how.items()]
        lines += [f"  {w}" for w in self.warnings]
        lines += [f"  {name}: {why}" for name, why in self.problems]
        return "\n".join(lines)


@dataclass(frozen=True)
class Named:
    """What a downloaded file's name says: the student, which LMS named it, and lateness if it says."""

    student: str
    lms: str  # "canvas", "moodle", "regex" or "plain"
    late: bool | None  # None: the name says nothing of lateness


def parse_name(relpath: str, assignment: str, notebook: str, id_regex: str | None = None) -> Named:
    """What a file's name (or its folder's) says; ValueError if it carries no usable student id."""
    p = PurePosixPath(relpath)
    late = None
    if id_regex:
        for text in (p.name, relpath):
            m = re.search(id_regex, text)
            if m:
                sid = m.groupdict().get("id") or (m.group(1) if m.groups() else m.group(0))
                break
        else:
            raise ValueError(f"the file name does not match --id-regex {id_regex!r}")
        lms = "regex"
    elif (m := MOODLE.search(p.name)) or (len(p.parts) > 1 and (m := MOODLE.search(p.parent.name))):
        sid, lms = m.group("id"), "moodle"
    elif (m := CANVAS.match(p.name)) or (m := CANVAS_ANONYMOUS.match(p.name)):
        sid, lms, late = m.group("id"), "canvas", m.group("late") is not None
    elif p.stem in (notebook, assignment) and len(p.parts) > 1:
        sid, lms = p.parent.name, "plain"
    else:
        sid, lms = p.stem, "plain"
        for suffix in (notebook, assignment):
            for sep in ("_", "-", "."):
                if sid.endswith(sep + suffix) and len(sid) > len(suffix) + 1:
                    sid = sid[: -len(suffix) - 1]
    if not SAFE_ID.match(sid or ""):
        raise ValueError(f"{sid!r} is not a usable student id (letters, digits, . _ @ - only)")
    return Named(student=sid, lms=lms, late=late)


def student_id(relpath: str, assignment: str, notebook: str, id_regex: str | None = None) -> str:
    """The student id carried by a file's name (or its folder's); ValueError if there is none."""
    return parse_name(relpath, assignment, notebook, id_regex).student


def due_date(root: Path, assignment: str, db_url: str | None = None) -> dt.datetime | None:
    """The assignment's due date in nbgrader's gradebook (naive UTC), or None (no gradebook, no date).

    ``db_url`` defaults to ``sqlite:///<root>/gradebook.db`` when that file exists; nothing is
    created or changed.
    """
    if db_url is None:
        db = Path(root) / "gradebook.db"
        if not db.is_file():
            return None
        db_url = f"sqlite:///{db}"
    from nbgrader.api import Assignment
    from sqlalchemy import create_engine, select
    from sqlalchemy.exc import SQLAlchemyError

    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(Assignment.duedate).where(Assignment.name == assignment)).all()
    except SQLAlchemyError:
        return None
    finally:
        engine.dispose()
    return rows[0][0] if len(rows) == 1 else None


def _wanted(rel: str) -> bool:
    parts = PurePosixPath(rel).parts
    return rel.endswith(".ipynb") and not any(
        part.startswith(".") or part in ("__MACOSX", ".ipynb_checkpoints") for part in parts
    )


def zip_refusal(info: zipfile.ZipInfo) -> str | None:
    """Why a zip entry is never written, or None. Backslashes count as separators (Windows zips)."""
    raw = info.orig_filename
    if "\0" in raw:
        return "a NUL character in its name"
    name = raw.replace("\\", "/")
    if name.startswith("/"):
        return "an absolute path"
    if re.match(r"^[A-Za-z]:", name):
        return "a path with a drive letter"
    if ".." in name.split("/"):
        return "a path that leaves the folder (..)"
    mode = info.external_attr >> 16
    if stat.S_IFMT(mode):
        return kind_of(mode)
    return None


def _zip_entries(source: Path, report: ImportReport) -> list[tuple[str, bytes]]:
    out, total = [], 0
    try:
        z = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as exc:
        raise LMSImportError(f"{source} cannot be read as a zip file ({exc})") from None
    with z:
        infos = z.infolist()
        if len(infos) > MAX_IMPORT_ENTRIES:
            raise LMSImportError(
                f"{source} has more than {MAX_IMPORT_ENTRIES} entries, the import limit: nothing was imported"
            )
        for info in infos:
            shown = info.orig_filename.replace("\0", "\\0")
            why = zip_refusal(info)
            if why:
                report.problems.append((shown, why))
                continue
            name = info.filename.replace("\\", "/")
            if info.is_dir() or not _wanted(name):
                continue
            if info.flag_bits & 0x1:
                report.problems.append((shown, "encrypted (a password-protected zip entry)"))
                continue
            if info.file_size > MAX_FILE_BYTES:
                report.problems.append((shown, f"larger than {size_text(MAX_FILE_BYTES)}"))
                continue
            try:
                with z.open(info) as fh:
                    data = fh.read(MAX_FILE_BYTES + 1)
            except (zipfile.BadZipFile, NotImplementedError, RuntimeError, EOFError, OSError, zlib.error) as exc:
                report.problems.append((shown, f"damaged in the zip ({exc})"))
                continue
            if len(data) > MAX_FILE_BYTES:
                report.problems.append((shown, f"larger than {size_text(MAX_FILE_BYTES)}"))
                continue
            total += len(data)
            if total > MAX_IMPORT_BYTES:
                raise LMSImportError(
                    f"{source} holds more than {size_text(MAX_IMPORT_BYTES)} of notebooks, "
                    "the import limit: nothing was imported"
                )
            out.append((name, data))
    return out


def _folder_entries(source: Path, report: ImportReport) -> list[tuple[str, bytes]]:
    # The folder named by the instructor may itself be a link (their own choice); nothing inside it is followed.
    collected = read_submission(
        Path(os.path.realpath(source)),
        max_total=MAX_IMPORT_BYTES,
        max_file=MAX_FILE_BYTES,
        max_depth=MAX_DEPTH,
        max_entries=MAX_IMPORT_ENTRIES,
        select=_wanted,
    )
    if collected.refused:
        raise LMSImportError(f"{source}: {collected.refused}")
    if collected.too_large:
        raise LMSImportError(
            f"{source} is over the import limits ({size_text(MAX_IMPORT_BYTES)} of notebooks, "
            f"{MAX_IMPORT_ENTRIES} files and folders): nothing was imported"
        )
    report.problems += collected.skipped
    return list(collected.files.items())


def _entries(source: Path, report: ImportReport) -> list[tuple[str, bytes]]:
    """(relative path, bytes) of every notebook in a folder or zip; refused entries go to the report."""
    if source.is_file() and zipfile.is_zipfile(source):
        return _zip_entries(source, report)
    if source.is_dir():
        return _folder_entries(source, report)
    raise LMSImportError(f"{source} is neither a folder nor a zip file")


def _stamp(named: Named, due: dt.datetime | None, now: dt.datetime) -> tuple[str, str, bool]:
    """(timestamp.txt text, where it comes from, whether the LMS said it) for one student."""
    if named.late is not None and due is not None:
        shown = f"{due:%Y-%m-%d %H:%M:%S} UTC"
        if named.late:
            return (
                format_timestamp(due + dt.timedelta(seconds=1)),
                f"1 second after the due date {shown} (LATE in Canvas)",
                True,
            )
        return format_timestamp(due), f"the due date {shown} (on time in Canvas)", True
    if named.late is not None:
        state = "LATE" if named.late else "on time"
        return format_timestamp(now), f"the import time (Canvas says {state}; no due date is known)", False
    return format_timestamp(now), "the import time (the download does not say when it was submitted)", False


def _due(due, root: Path, assignment: str, db_url: str | None) -> dt.datetime | None:
    if due is None:
        return due_date(root, assignment, db_url)
    if isinstance(due, dt.datetime):
        return due.astimezone(dt.UTC).replace(tzinfo=None) if due.tzinfo else due
    parsed = parse_timestamp(str(due))
    if parsed is None:
        raise LMSImportError(f"the due date {due!r} is not a time nbgrader understands")
    return parsed


def _difference(dest: Path, nb_name: str, data: bytes, stamp: str | None) -> str | None:
    """How the submission already in ``dest`` differs from the download (None: it does not).

    ``stamp``: the timestamp the LMS gives, or None when it gives none (an import-time stamp never
    makes a difference)."""
    old = read_submission(dest)
    if old.files.get(nb_name) != data:
        return f"{dest / nb_name} exists with other content"
    old_stamp = old.files.get("timestamp.txt", b"").decode("utf-8", "replace")
    if stamp is not None and old_stamp != stamp:
        return (
            f"{dest / 'timestamp.txt'} holds another time ({old_stamp.strip()[:40]!r}) "
            f"than the download gives ({stamp})"
        )
    return None


def import_submissions(
    source,
    root,
    assignment: str,
    *,
    notebook: str | None = None,
    id_regex: str | None = None,
    replace: bool = False,
    due: dt.datetime | str | None = None,
    db_url: str | None = None,
) -> ImportReport:
    """Write one ``submitted/<id>/<assignment>/`` per student found in ``source`` (see the module's text).

    ``due``: the assignment's due date (a naive-UTC or aware datetime, or a string nbgrader's
    ``parse_utc`` reads); default: the gradebook's (``db_url``, default ``<root>/gradebook.db``).
    """
    source, root = Path(source), Path(root)
    notebook = notebook or assignment
    report = ImportReport()
    run = _Import(root, assignment, f"{notebook}.ipynb", replace, _due(due, root, assignment, db_url), report)
    for sid, items in sorted(_by_student(source, assignment, notebook, id_regex, report).items()):
        if len(items) > 1:
            names = ", ".join(rel for rel, _, _ in items)
            report.problems.append((names, f"several files for student {sid}: none imported"))
            continue
        run.one(sid, *items[0])
    if run.unknown_late:
        report.warnings.append(
            f"Canvas marks {', '.join(run.unknown_late)} LATE, but {assignment} has no due date here: set it "
            f"(nbgrader db assignment add {assignment} --duedate=...) and import again with --replace "
            "to record the lateness in timestamp.txt"
        )
    return report


def _by_student(
    source: Path, assignment: str, notebook: str, id_regex: str | None, report: ImportReport
) -> dict[str, list]:
    """The download's notebooks grouped by the student id their names carry."""
    by_id: dict[str, list] = {}
    for rel, data in _entries(source, report):
        try:
            named = parse_name(rel, assignment, notebook, id_regex)
        except ValueError as exc:
            report.problems.append((rel, str(exc)))
            continue
        by_id.setdefault(named.student, []).append((rel, data, named))
    return by_id


class _Import:
    """Writes one student's submission folder at a time, and remembers what it did in the report."""

    def __init__(self, root: Path, assignment: str, nb_name: str, replace: bool, due_at, report: ImportReport):
        self.root, self.assignment, self.nb_name, self.replace = root, assignment, nb_name, replace
        self.due_at, self.report = due_at, report
        self.now = dt.datetime.now(dt.UTC)
        self.unknown_late: list[str] = []

    def one(self, sid: str, rel: str, data: bytes, named) -> None:
        report = self.report
        stamp, how, from_lms = _stamp(named, self.due_at, self.now)
        if named.late:
            report.late.append(sid)
            if not from_lms:
                self.unknown_late.append(sid)
        dest = self.root / "submitted" / sid / self.assignment
        if os.path.islink(dest.parent):
            report.problems.append((rel, f"{dest.parent} is {LINK}: nothing written"))
            return
        replacing = os.path.lexists(dest)
        if replacing:
            conflict = _difference(dest, self.nb_name, data, stamp if from_lms else None)
            if conflict is None:
                report.unchanged.append(sid)
                return
            if not self.replace:
                report.problems.append((rel, f"{conflict} (use --replace; the old folder is kept)"))
                return
        try:
            if replacing:  # keep whatever was there (a link is moved, never followed)
                os.rename(dest, dest.parent / f".{self.assignment}.previous-{self.now:%Y%m%dT%H%M%S%f}")
            write_tree(dest, {self.nb_name: data, "timestamp.txt": stamp.encode()}, private=True)
        except OSError as exc:
            report.problems.append((rel, f"could not write {dest} ({exc})"))
            return
        (report.replaced if replacing else report.imported).append(sid)
        report.times[sid] = (stamp, how)

"""Import notebooks downloaded from an LMS (a folder or a zip) as nbgrader submissions.

Each notebook file belongs to one student, and its name (or its folder's
name) carries the student id. Understood out of the box:

* ``alice.ipynb``, ``alice_deep_dive.ipynb``, ``alice-deep_dive.ipynb``  ->  ``alice``
* Canvas: ``smithalice_12345_67890_deep_dive.ipynb`` (``LATE`` allowed)  ->  ``12345``
* Moodle: ``Alice Smith_12345_assignsubmission_file_/deep_dive.ipynb``     ->  ``12345``

``--id-regex`` handles anything else (the group named ``id``, or group 1).
Each student gets ``submitted/<id>/<assignment>/<notebook>.ipynb`` and a
``timestamp.txt`` (the file's time). Nothing is overwritten silently: an
identical file is left as is, a different one is a conflict unless
``replace=True``, and then the previous folder is kept beside it.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")
CANVAS = re.compile(r"^[^_]+_(?:LATE_)?(?P<id>\d+)_\d+_")
MOODLE = re.compile(r"_(?P<id>\d+)_assignsubmission_")


class LMSImportError(Exception):
    pass


@dataclass
class ImportReport:
    imported: list = field(default_factory=list)     # student ids written
    unchanged: list = field(default_factory=list)    # identical file already there
    replaced: list = field(default_factory=list)     # different file, replaced (old one kept)
    problems: list = field(default_factory=list)     # (file name, reason): nothing written for it

    def text(self) -> str:
        lines = [f"imported {len(self.imported)}, replaced {len(self.replaced)}, "
                 f"unchanged {len(self.unchanged)}, not imported {len(self.problems)}"]
        lines += [f"  {name}: {why}" for name, why in self.problems]
        return "\n".join(lines)


def student_id(relpath: str, assignment: str, notebook: str, id_regex: str | None = None) -> str:
    """The student id carried by a file's name (or its folder's); ValueError if there is none."""
    p = PurePosixPath(relpath)
    if id_regex:
        for text in (p.name, relpath):
            m = re.search(id_regex, text)
            if m:
                sid = m.groupdict().get("id") or (m.group(1) if m.groups() else m.group(0))
                break
        else:
            raise ValueError(f"the file name does not match --id-regex {id_regex!r}")
    elif (m := CANVAS.match(p.name)):
        sid = m.group("id")
    elif len(p.parts) > 1 and (m := MOODLE.search(p.parent.name)):
        sid = m.group("id")
    elif p.stem in (notebook, assignment) and len(p.parts) > 1:
        sid = p.parent.name
    else:
        sid = p.stem
        for suffix in (notebook, assignment):
            for sep in ("_", "-", "."):
                if sid.endswith(sep + suffix) and len(sid) > len(suffix) + 1:
                    sid = sid[: -len(suffix) - 1]
    if not SAFE_ID.match(sid or ""):
        raise ValueError(f"{sid!r} is not a usable student id (letters, digits, . _ @ - only)")
    return sid


def _entries(source: Path):
    """(relative path, bytes, modification time) of every notebook in a folder or zip."""
    def wanted(rel: str) -> bool:
        parts = PurePosixPath(rel).parts
        return rel.endswith(".ipynb") and not any(
            part.startswith(".") or part in ("__MACOSX", ".ipynb_checkpoints") for part in parts)

    if source.is_file() and zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as z:
            for info in z.infolist():
                if not info.is_dir() and wanted(info.filename):
                    yield info.filename, z.read(info), dt.datetime(*info.date_time, tzinfo=dt.timezone.utc)
    elif source.is_dir():
        for p in sorted(source.rglob("*.ipynb")):
            rel = p.relative_to(source).as_posix()
            if p.is_file() and wanted(rel):
                mtime = dt.datetime.fromtimestamp(p.stat().st_mtime, tz=dt.timezone.utc)
                yield rel, p.read_bytes(), mtime
    else:
        raise LMSImportError(f"{source} is neither a folder nor a zip file")


def import_submissions(source, root, assignment: str, *, notebook: str | None = None,
                       id_regex: str | None = None, replace: bool = False) -> ImportReport:
    source, root = Path(source), Path(root)
    notebook = notebook or assignment
    report = ImportReport()
    by_id: dict[str, list] = {}
    for rel, data, mtime in _entries(source):
        try:
            sid = student_id(rel, assignment, notebook, id_regex)
        except ValueError as exc:
            report.problems.append((rel, str(exc)))
            continue
        by_id.setdefault(sid, []).append((rel, data, mtime))
    for sid, items in sorted(by_id.items()):
        if len(items) > 1:
            names = ", ".join(rel for rel, _, _ in items)
            report.problems.append((names, f"several files for student {sid}: none imported"))
            continue
        rel, data, mtime = items[0]
        dest = root / "submitted" / sid / assignment
        target = dest / f"{notebook}.ipynb"
        if target.exists():
            if target.read_bytes() == data:
                report.unchanged.append(sid)
                continue
            if not replace:
                report.problems.append((rel, f"{target} exists with other content (use --replace; "
                                             "the old folder is kept)"))
                continue
            report.replaced.append(sid)
        else:
            report.imported.append(sid)
        if dest.exists():  # keep whatever was there
            stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%f")
            shutil.move(str(dest), str(dest.parent / f".{assignment}.previous-{stamp}"))
        tmp = dest.parent / f".{assignment}.importing"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        (tmp / f"{notebook}.ipynb").write_bytes(data)
        (tmp / "timestamp.txt").write_text(mtime.strftime("%Y-%m-%d %H:%M:%S.%f UTC"))
        tmp.rename(dest)
    return report

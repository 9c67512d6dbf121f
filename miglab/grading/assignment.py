"""Turn a course's ``source/<assignment>/`` into the :class:`AssignmentInfo` workers need.

The seed gradebook is made by nbgrader itself (``GenerateAssignment`` into a
temporary course), so a worker restores exactly the locked cells and hidden
tests that ``nbgrader generate_assignment`` would. The assignment *version*
is a hash of everything that decides a grade (the source files, this
grader's code, the judge); a submission is graded again only when its own
hash or this version changes.
"""

from __future__ import annotations

import fnmatch
import os
import hashlib
import json
import logging
import shutil
import tempfile
from pathlib import Path

from .model import AssignmentInfo

GRADER_VERSION = "1"


def ensure_tools_on_path() -> None:
    """nbgrader runs the ``alembic`` command when it creates a gradebook: find it beside this Python."""
    import os
    import sys

    bindir = str(Path(sys.executable).parent)
    if shutil.which("alembic") is None and bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


class AssignmentError(Exception):
    """The assignment cannot be graded as it stands (clear message for the instructor)."""


def load_course_config(root: Path) -> dict:
    """The course's nbgrader configuration (``<root>/nbgrader_config.py``) as a plain dict."""
    from traitlets.config.loader import PyFileConfigLoader

    root = Path(root)
    if not (root / "nbgrader_config.py").exists():
        return {}
    cfg = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    return _plain(cfg)


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _ignored(rel: Path, patterns) -> bool:
    return any(fnmatch.fnmatch(part, pat) for part in rel.parts for pat in patterns)


def _hash_files(h, base: Path, patterns) -> None:
    for p in sorted(base.rglob("*")):
        rel = p.relative_to(base)
        if p.is_file() and not _ignored(rel, patterns):
            h.update(rel.as_posix().encode() + b"\0" + p.read_bytes() + b"\0")


def _code_hash() -> str:
    """Hash of the code that decides a grade: this package and the judge."""
    h = hashlib.sha256(GRADER_VERSION.encode())
    pkg = Path(__file__).resolve().parent
    for name in ("execute.py", "worker.py", "feedback.py"):
        h.update((pkg / name).read_bytes())
    for name in ("judges.py", "checks.py"):
        p = pkg.parent / name
        if p.exists():
            h.update(p.read_bytes())
    return h.hexdigest()


def _generate(src: Path, tmp: Path, assignment_id: str, course_id: str, db_url: str, config: dict):
    """Run nbgrader's GenerateAssignment on a copy of ``src`` into ``db_url``; return the release folder."""
    from traitlets.config import Config

    from nbgrader.converters import GenerateAssignment
    from nbgrader.coursedir import CourseDirectory

    ensure_tools_on_path()
    shutil.copytree(src, tmp / "source" / assignment_id, dirs_exist_ok=True)
    cfg = Config(json.loads(json.dumps(config)))
    cfg.CourseDirectory.root = str(tmp)
    cfg.CourseDirectory.db_url = db_url
    cfg.CourseDirectory.course_id = course_id
    cfg.CourseDirectory.assignment_id = assignment_id
    cfg.CourseDirectory.student_id = "."
    log = logging.getLogger("miglab.grading.generate")
    log.setLevel(logging.ERROR)
    coursedir = CourseDirectory(config=cfg, log=log)
    app = GenerateAssignment(coursedir=coursedir, config=cfg, log=log)
    app.force = True
    app.create_assignment = True
    try:
        app.start()
    except Exception as exc:
        raise AssignmentError(f"nbgrader generate_assignment failed on {src}: {exc}") from exc
    return tmp / "release" / assignment_id


def prepare(root: Path, assignment_id: str, config: dict | None = None,
            course_id: str | None = None) -> AssignmentInfo:
    """Build the worker's view of ``<root>/source/<assignment_id>/``.

    The seed gradebook is cached in the temp folder under a hash of the
    source files, the configuration and nbgrader's version.
    """
    import nbformat

    root = Path(root).resolve()
    config = load_course_config(root) if config is None else config
    course_id = course_id or config.get("CourseDirectory", {}).get("course_id") or "default_course"
    src = root / "source" / assignment_id
    if not src.is_dir():
        raise AssignmentError(f"no assignment source folder {src}")
    ignore = config.get("CourseDirectory", {}).get("ignore") or [
        ".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback"]
    import nbgrader

    h = hashlib.sha256(f"{nbgrader.__version__}\0{course_id}\0{assignment_id}\0".encode())
    _hash_files(h, src, [])
    same = {k: v for k, v in config.items() if k != "CourseDirectory"}  # where the course lives changes no cell
    same["ignore"] = config.get("CourseDirectory", {}).get("ignore")
    h.update(json.dumps(same, sort_keys=True, default=str).encode())
    caches = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "miglab" / "seeds"
    caches.mkdir(parents=True, exist_ok=True)
    cache = caches / h.hexdigest()[:24]
    if (cache / "seed.db").exists() and (cache / "cells.json").exists():
        seed = (cache / "seed.db").read_bytes()
        notebooks, grade_cells = json.loads((cache / "cells.json").read_text())
        grade_cells = [tuple(g) for g in grade_cells]
    else:
        with tempfile.TemporaryDirectory(prefix="miglab-seed-") as t:
            tmp = Path(t)
            release = _generate(src, tmp, assignment_id, course_id, f"sqlite:///{tmp / 'seed.db'}", config)
            seed = (tmp / "seed.db").read_bytes()
            notebooks, grade_cells = [], []
            for path in sorted(release.glob("*.ipynb")):
                notebooks.append(path.stem)
                nb = nbformat.read(str(path), as_version=4)
                for cell in nb.cells:
                    meta = cell.metadata.get("nbgrader", {})
                    if meta.get("grade"):
                        grade_cells.append((path.stem, meta["grade_id"], float(meta.get("points", 0))))
        # a cache of nbgrader's output for this exact source and config (safe to delete)
        part = Path(tempfile.mkdtemp(prefix="new-", dir=caches))
        (part / "seed.db").write_bytes(seed)
        (part / "cells.json").write_text(json.dumps([notebooks, grade_cells]))
        try:
            part.rename(cache)
        except OSError:
            shutil.rmtree(part, ignore_errors=True)
    if not notebooks:
        raise AssignmentError(f"{src} holds no notebook")
    support = {}
    for p in sorted(src.rglob("*")):
        rel = p.relative_to(src)
        if p.is_file() and p.suffix != ".ipynb" and not _ignored(rel, ignore):
            support[rel.as_posix()] = p.read_bytes()
    judge_key = None
    key_file = src / "answer_key.json"
    if key_file.exists():
        judge_key = json.loads(key_file.read_text())
        support.pop("answer_key.json", None)
    h = hashlib.sha256(_code_hash().encode())
    _hash_files(h, src, [])
    h.update(json.dumps(config.get("OverwriteCells", {}), sort_keys=True).encode())
    return AssignmentInfo(
        assignment_id=assignment_id, course_id=course_id, notebooks=tuple(notebooks),
        seed_db=seed, support_files=support, version=h.hexdigest()[:16], config=config,
        grade_cells=tuple(grade_cells), judge_key=judge_key,
    )


def _cells(db_url: str, course_id: str, assignment_id: str):
    """What a gradebook knows of an assignment: {(notebook, cell): (kind, points/checksum)}, or None."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(db_url, course_id) as gb:
        try:
            a = gb.find_assignment(assignment_id)
        except MissingEntry:
            return None
        out = {}
        for nb in a.notebooks:
            for c in nb.grade_cells:
                out[(nb.name, c.name, "grade")] = float(c.max_score)
            for c in nb.source_cells:
                out[(nb.name, c.name, "source")] = c.checksum
        return out


def sync_gradebook(db_url: str, info: AssignmentInfo, root: Path) -> str:
    """Make the course gradebook hold the assignment exactly as in ``source/``.

    Returns "present", "created" or "updated". nbgrader refuses to drop cells
    that have grades; that refusal is passed on as an AssignmentError.
    """
    with tempfile.TemporaryDirectory(prefix="miglab-seed-") as t:
        seed_path = Path(t) / "seed.db"
        seed_path.write_bytes(info.seed_db)
        want = _cells(f"sqlite:///{seed_path}", info.course_id, info.assignment_id)
    have = _cells(db_url, info.course_id, info.assignment_id)
    if have == want:
        return "present"
    with tempfile.TemporaryDirectory(prefix="miglab-sync-") as t:
        _generate(Path(root) / "source" / info.assignment_id, Path(t), info.assignment_id,
                  info.course_id, db_url, info.config)
    return "created" if have is None else "updated"

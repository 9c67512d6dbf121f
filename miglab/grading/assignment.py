"""An assignment as data: ``source/<assignment>/`` turned into the :class:`AssignmentInfo` workers need.

Everything that decides the grades lives in the assignment's folder: the
instructor's notebook (solutions, visible and hidden tests, their inputs and
seeds), ``rules.py`` if the notebook names rules of its own, and any file
the notebook reads. :func:`prepare` makes of it

* a *seed gradebook*, by nbgrader's own ``generate_assignment`` into a
  temporary course, so a worker restores exactly the locked cells and hidden
  tests nbgrader would;
* the released cells (:class:`~miglab.grading.model.CellInfo`), to repair
  submitted notebooks against;
* the *plan* (:mod:`miglab.grading.plan`): what each test cell checks;
* a *version*: a hash of the assignment's folder, the course's nbgrader
  settings, nbgrader's version and this package's code. A submission is
  graded again when its own hash or this version changes.

``prepare`` caches its work under ``~/.cache/miglab/assignments`` keyed by
what it was made from (safe to delete).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .model import AssignmentInfo, CellInfo
from .plan import read_plan
from .rulebook import RULES_FILE

PACKAGE = Path(__file__).resolve().parents[1]  # miglab/
DEFAULT_IGNORE = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback"]
# Files of source/<a>/ that only the grader reads: never released, never next to a kernel.
PRIVATE_FILES = [RULES_FILE]


class AssignmentError(Exception):
    """The assignment cannot be graded as it stands (a clear message for the instructor)."""


def ensure_tools_on_path() -> None:
    """nbgrader runs the ``alembic`` command when it creates a gradebook: find it beside this Python."""
    bindir = str(Path(sys.executable).parent)
    if shutil.which("alembic") is None and bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


def load_course_config(root: Path) -> dict:
    """The course's nbgrader configuration (``<root>/nbgrader_config.py``) as a plain dict."""
    from traitlets.config.loader import PyFileConfigLoader

    root = Path(root)
    if not (root / "nbgrader_config.py").exists():
        return {}
    return _plain(PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config())


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def ignore_patterns(config: dict) -> list[str]:
    return list(config.get("CourseDirectory", {}).get("ignore") or DEFAULT_IGNORE)


def _ignored(rel: Path, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(part, pat) for part in rel.parts for pat in patterns)


def _hash_files(h: Any, base: Path, patterns: list[str]) -> None:
    for p in sorted(base.rglob("*")):
        rel = p.relative_to(base)
        if p.is_file() and not p.is_symlink() and not _ignored(rel, patterns):
            h.update(rel.as_posix().encode() + b"\0" + p.read_bytes() + b"\0")


# The package's code that decides a grade: the engine, the evidence and its checkers, the sandbox,
# and the lab that scenarios run in. Reports, charts, exports, the LMS import and the command line change no
# score (the command line's time limits are part of each task, and a task is regraded when they change).
GRADING_CODE = (
    "grading",
    "evidence",
    "sandbox",
    "lab/scenario.py",
    "lab/project.py",
    "lab/runner.py",
    "lab/display.py",
    "lab/template",
)
NOT_GRADING = ["__pycache__", "*.pyc", "reports.py", "chart.py", "lms.py", "export.py", "learner.py", "cli.py"]


def code_hash() -> str:
    """Hash of the package's code that decides a grade (:data:`GRADING_CODE`)."""
    h = hashlib.sha256()
    for part in GRADING_CODE:
        path = PACKAGE / part
        if path.is_file():
            h.update(part.encode() + b"\0" + path.read_bytes())
        elif path.is_dir():
            h.update(part.encode() + b"\0")
            _hash_files(h, path, NOT_GRADING)
    return h.hexdigest()


def generate(src: Path, tmp: Path, assignment_id: str, course_id: str, db_url: str, config: dict) -> Path:
    """Run nbgrader's GenerateAssignment on a copy of ``src`` into ``db_url``; return the release folder."""
    from nbgrader.converters import GenerateAssignment
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config

    ensure_tools_on_path()
    shutil.copytree(src, tmp / "source" / assignment_id, dirs_exist_ok=True)
    cfg = Config(json.loads(json.dumps(config)))
    cfg.CourseDirectory.root = str(tmp)
    cfg.CourseDirectory.db_url = db_url
    cfg.CourseDirectory.course_id = course_id
    cfg.CourseDirectory.assignment_id = assignment_id
    cfg.CourseDirectory.student_id = "."
    cfg.CourseDirectory.ignore = ignore_patterns(config) + PRIVATE_FILES
    log = logging.getLogger("miglab.grading.generate")
    log.setLevel(logging.ERROR)
    app = GenerateAssignment(coursedir=CourseDirectory(config=cfg, log=log), config=cfg, log=log)
    app.force = True
    app.create_assignment = True
    try:
        app.start()
    except Exception as exc:
        raise AssignmentError(f"nbgrader generate_assignment failed on {src}: {exc}") from exc
    return tmp / "release" / assignment_id


def prepare(root: Path, assignment_id: str, config: dict | None = None, course_id: str | None = None) -> AssignmentInfo:
    """Build the worker's view of ``<root>/source/<assignment_id>/`` (see the module docstring)."""
    import nbgrader

    root = Path(root).resolve()
    config = load_course_config(root) if config is None else config
    course_id = course_id or config.get("CourseDirectory", {}).get("course_id") or "default_course"
    src = root / "source" / assignment_id
    if not src.is_dir():
        raise AssignmentError(f"no assignment source folder {src}")
    h = hashlib.sha256(f"{nbgrader.__version__}\0{course_id}\0{assignment_id}\0{code_hash()}\0".encode())
    _hash_files(h, src, [])
    same = {k: v for k, v in config.items() if k != "CourseDirectory"}  # where the course lives changes no cell
    same["ignore"] = ignore_patterns(config)
    h.update(json.dumps(same, sort_keys=True, default=str).encode())
    version = h.hexdigest()[:16]
    made = _cached(version) or _make(src, assignment_id, course_id, config, version)
    if not made["notebooks"]:
        raise AssignmentError(f"{src} holds no notebook")
    rules_file = src / RULES_FILE
    return AssignmentInfo(
        assignment_id=assignment_id,
        course_id=course_id,
        notebooks=tuple(made["notebooks"]),
        seed_db=made["seed"],
        support_files=_support_files(src, config),
        version=version,
        config=config,
        grade_cells=tuple(tuple(g) for g in made["grade_cells"]),
        cells={nb: tuple(CellInfo(**c) for c in cells) for nb, cells in made["cells"].items()},
        plan=made["plan"],
        rules=rules_file.read_text() if rules_file.is_file() else None,
    )


def _support_files(src: Path, config: dict) -> dict[str, bytes]:
    """Files nbgrader copies next to each submission: not notebooks, not ignored, not private."""
    support = {}
    patterns = ignore_patterns(config) + PRIVATE_FILES
    for p in sorted(src.rglob("*")):
        rel = p.relative_to(src)
        if p.is_file() and not p.is_symlink() and p.suffix != ".ipynb" and not _ignored(rel, patterns):
            support[rel.as_posix()] = p.read_bytes()
    return support


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "miglab" / "assignments"


def _cached(version: str) -> dict | None:
    folder = _cache_dir() / version
    try:
        made = json.loads((folder / "made.json").read_text())
        made["seed"] = (folder / "seed.db").read_bytes()
        return made
    except (OSError, ValueError):
        return None


def _make(src: Path, assignment_id: str, course_id: str, config: dict, version: str) -> dict:
    import nbformat

    with tempfile.TemporaryDirectory(prefix="miglab-seed-") as t:
        tmp = Path(t)
        release = generate(src, tmp, assignment_id, course_id, f"sqlite:///{tmp / 'seed.db'}", config)
        made: dict = {"notebooks": [], "grade_cells": [], "cells": {}, "plan": {"cells": [], "problems": []}}
        for path in sorted(release.glob("*.ipynb")):
            made["notebooks"].append(path.stem)
            cells = released_cells(nbformat.read(str(path), as_version=4))
            made["cells"][path.stem] = [asdict(c) for c in cells]
            made["grade_cells"] += [[path.stem, c.grade_id, c.points] for c in cells if c.grade]
            plan = read_plan(src / path.name, src).to_json()
            made["plan"]["cells"] += plan["cells"]
            made["plan"]["problems"] += plan["problems"]
            made["plan"].setdefault("notes", []).extend(plan.get("notes", []))
        seed = (tmp / "seed.db").read_bytes()
    _store(version, made, seed)
    made["seed"] = seed
    return made


def _store(version: str, made: dict, seed: bytes) -> None:
    """A cache of nbgrader's output for this exact assignment and configuration."""
    caches = _cache_dir()
    caches.mkdir(parents=True, exist_ok=True)
    part = Path(tempfile.mkdtemp(prefix="new-", dir=caches))
    (part / "seed.db").write_bytes(seed)
    (part / "made.json").write_text(json.dumps(made))
    try:
        part.rename(caches / version)
    except OSError:  # another process made it first
        shutil.rmtree(part, ignore_errors=True)


def released_cells(nb: Any) -> list[CellInfo]:
    """The released notebook's nbgrader cells, in order."""
    out = []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader")
        if not isinstance(meta, dict) or "grade_id" not in meta:
            continue
        out.append(
            CellInfo(
                grade_id=str(meta["grade_id"]),
                cell_type=cell.cell_type,
                grade=bool(meta.get("grade")),
                solution=bool(meta.get("solution")),
                locked=bool(meta.get("locked")),
                points=float(meta.get("points", 0) or 0),
                source=cell.source,
            )
        )
    return out

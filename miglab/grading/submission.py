"""A submitted notebook read as data, and its nbgrader cells put right before nbgrader sees it.

nbgrader stops a whole submission (or worse, the run) on notebooks that a
student's editor or a student can easily produce: a cell pasted in
JupyterLab keeps its nbgrader ``grade_id``, so two cells share one
(nbgrader's ``add_missing_cells`` then raises ``KeyError``); a test cell
re-marked as a solution, an added graded cell or broken metadata fail its
checks. :func:`read_notebook` reads the file (size, UTF-8, JSON, nesting,
notebook format) and repairs its nbgrader cells against the released
notebook (:class:`~miglab.grading.model.CellInfo`):

* the first cell with a known ``grade_id`` keeps it; nbgrader settings that
  differ from the released ones are put back (``tampered``);
* a later cell with the same ``grade_id`` (a pasted copy) becomes an
  ordinary cell: it still runs, it is not graded (a note, not tampering);
* a cell with nbgrader settings the assignment does not have loses them
  (``tampered``): it still runs, it is not graded;
* a released cell that is missing is put back where it belongs, as released;
* duplicate or missing cell ids are made unique.

Every change is said in a note the student reads in their feedback.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from . import model
from .model import CellInfo

MAX_NOTEBOOK_BYTES = 20 * 1024 * 1024  # one notebook file; a submission has its own limit (collect.py)
MAX_NESTING = 100  # JSON nesting (notebooks need about 10)
FLAGS = ("grade", "solution", "locked")


class NotebookRefused(ValueError):
    """A file that cannot be graded as a notebook: ``status`` (malformed, too_large) and a plain reason."""

    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status = status


@dataclass
class NotebookReading:
    notebook: Any  # nbformat NotebookNode, repaired
    notes: list[Any] = field(default_factory=list)
    tampered: bool = False

    def data(self) -> bytes:
        import nbformat

        text: str = nbformat.writes(self.notebook)
        return text.encode()


def read_notebook(data: bytes, released: tuple[CellInfo, ...], name: str = "the notebook") -> NotebookReading:
    """Parse and repair one submitted notebook (see the module docstring); NotebookRefused if it is not one."""
    nb = parse(data, name)
    reading = NotebookReading(nb)
    _unique_ids(nb)
    _repair_cells(reading, released)
    return reading


def parse(data: bytes, name: str = "the notebook") -> Any:
    import nbformat

    if len(data) > MAX_NOTEBOOK_BYTES:
        raise NotebookRefused(model.TOO_LARGE, f"{name} is larger than {MAX_NOTEBOOK_BYTES // 2**20} MB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise NotebookRefused(model.MALFORMED, f"{name} is not text (not UTF-8), so it is not a notebook") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NotebookRefused(
            model.MALFORMED, f"{name} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
        ) from None
    except RecursionError:
        raise NotebookRefused(model.MALFORMED, f"{name} is JSON nested too deeply to be a notebook") from None
    if _depth(raw) > MAX_NESTING:
        raise NotebookRefused(model.MALFORMED, f"{name} is JSON nested too deeply to be a notebook")
    if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list):
        raise NotebookRefused(model.MALFORMED, f"{name} is JSON but not a notebook (no list of cells)")
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as exc:  # noqa: BLE001 - nbformat's many ways of saying "not a notebook"
        raise NotebookRefused(
            model.MALFORMED, f"{name} is JSON but not a notebook ({type(exc).__name__}: {str(exc)[:200]})"
        ) from None
    for cell in nb.cells:
        if not isinstance(cell, dict) or cell.get("cell_type") not in ("code", "markdown", "raw"):
            raise NotebookRefused(model.MALFORMED, f"{name} has a cell that is not a notebook cell")
        if not isinstance(cell.get("source", ""), str) or not isinstance(cell.get("metadata", {}), dict):
            raise NotebookRefused(model.MALFORMED, f"{name} has a cell whose source or metadata is broken")
    return nb


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_NESTING:
            return depth
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _unique_ids(nb: Any) -> None:
    seen: set[str] = set()
    for cell in nb.cells:
        cid = cell.get("id")
        if not isinstance(cid, str) or not cid or cid in seen or len(cid) > 64:
            cid = uuid.uuid4().hex[:12]
            cell["id"] = cid
        seen.add(cid)


def _repair_cells(reading: NotebookReading, released: tuple[CellInfo, ...]) -> None:
    known = {c.grade_id: c for c in released}
    seen: set[str] = set()
    for index, cell in enumerate(reading.notebook.cells):
        meta = cell.setdefault("metadata", {})
        nbg = meta.get("nbgrader")
        if nbg is None:
            continue
        gid = nbg.get("grade_id") if isinstance(nbg, dict) else None
        info = known.get(gid) if isinstance(gid, str) else None
        if info is None:
            del meta["nbgrader"]
            if isinstance(nbg, dict) and any(nbg.get(f) for f in FLAGS):
                reading.tampered = True
                reading.notes.append(
                    f"cell {index + 1} had nbgrader settings the assignment does not have "
                    f"({_name(gid)}); it ran as an ordinary cell and was not graded"
                )
            continue
        if gid in seen:  # (a known grade_id is a str)
            del meta["nbgrader"]
            reading.notes.append(
                f"cell {index + 1} is a copy of cell {gid} (pasted in JupyterLab?); the first "
                f"one was graded and the copy ran as an ordinary cell"
            )
            continue
        seen.add(info.grade_id)
        if _differs(nbg, info, cell):
            reading.tampered = True
            reading.notes.append(f"the nbgrader settings of cell {gid} were changed; they were put back")
        if cell.get("cell_type") != info.cell_type:  # a code cell turned into markdown, say: as released
            reading.notebook.cells[index] = _released_cell(info)
        else:
            meta["nbgrader"] = _released_meta(info, nbg)
    _put_back_missing(reading, released, seen)


def _name(gid: Any) -> str:
    return repr(gid)[:60] if gid is not None else "no grade_id"


def _differs(nbg: Any, info: CellInfo, cell: Any) -> bool:
    if not isinstance(nbg, dict) or cell.get("cell_type") != info.cell_type:
        return True
    if any(bool(nbg.get(f)) != getattr(info, f) for f in FLAGS):
        return True
    if info.grade:
        try:
            return float(nbg.get("points", 0)) != info.points
        except (TypeError, ValueError):
            return True
    return False


def _released_meta(info: CellInfo, nbg: Any) -> dict[str, Any]:
    meta = {
        "grade": info.grade,
        "grade_id": info.grade_id,
        "locked": info.locked,
        "schema_version": 3,
        "solution": info.solution,
    }
    if info.grade:
        meta["points"] = info.points
    if isinstance(nbg, dict) and isinstance(nbg.get("checksum"), str):
        meta["checksum"] = nbg["checksum"]
    return meta


def _put_back_missing(reading: NotebookReading, released: tuple[CellInfo, ...], present: set[str]) -> None:
    cells = reading.notebook.cells
    for position, info in enumerate(released):
        if info.grade_id in present:
            continue
        cells.insert(_after_previous(cells, released[:position]), _released_cell(info))
        present.add(info.grade_id)
        reading.notes.append(f"cell {info.grade_id} was missing; it was put back as released")


def _released_cell(info: CellInfo) -> Any:
    import nbformat

    if info.cell_type == "code":
        cell = nbformat.v4.new_code_cell(info.source, metadata={"nbgrader": _released_meta(info, None)})
    else:
        cell = nbformat.v4.new_markdown_cell(info.source, metadata={"nbgrader": _released_meta(info, None)})
    cell["id"] = uuid.uuid4().hex[:12]
    return cell


def _after_previous(cells: list[Any], earlier: tuple[CellInfo, ...]) -> int:
    """Where a missing cell goes: right after the nearest earlier released cell still present."""
    ids = [c.get("metadata", {}).get("nbgrader", {}).get("grade_id") for c in cells]
    for info in reversed(earlier):
        if info.grade_id in ids:
            return ids.index(info.grade_id) + 1
    return 0

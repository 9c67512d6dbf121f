"""A submitted notebook read as data and its nbgrader cells put right, before nbgrader sees it.

Each case is something a student's editor or a student produces easily and
that stops plain nbgrader (a KeyError, a failed metadata check) or fools it.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import nbformat
import pytest

from miglab.grading import model
from miglab.grading.assignment import released_cells
from miglab.grading.submission import MAX_NOTEBOOK_BYTES, NotebookRefused, read_notebook

ROOT = Path(__file__).resolve().parents[1]
RELEASE = nbformat.read(ROOT / "release" / "deep_dive" / "deep_dive.ipynb", as_version=4)
CELLS = tuple(released_cells(RELEASE))


def ids(nb):
    return [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]


def data(nb) -> bytes:
    return nbformat.writes(nb).encode()


def test_the_release_itself_needs_no_repair():
    reading = read_notebook(data(RELEASE), CELLS)
    assert reading.notes == [] and not reading.tampered and ids(reading.notebook) == ids(RELEASE)


def test_a_pasted_copy_is_an_ordinary_cell_and_the_original_is_graded():
    nb = copy.deepcopy(RELEASE)
    answer = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "answer_order")
    paste = copy.deepcopy(nb.cells[answer])
    paste["id"] = nb.cells[answer]["id"]  # JupyterLab's copy keeps everything, even the id at times
    nb.cells.insert(answer + 1, paste)
    reading = read_notebook(data(nb), CELLS)
    assert not reading.tampered
    assert ids(reading.notebook).count("answer_order") == 1 and ids(reading.notebook)[answer + 1] is None
    assert reading.notes == [
        f"cell {answer + 2} is a copy of cell answer_order (pasted in JupyterLab?); the first "
        "one was graded and the copy ran as an ordinary cell"
    ]
    assert len({c["id"] for c in reading.notebook.cells}) == len(reading.notebook.cells)


def test_changed_or_added_nbgrader_settings_are_put_back_and_called_tampered():
    nb = copy.deepcopy(RELEASE)
    test = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "order_basic")
    test.metadata.nbgrader.update(solution=True, locked=False, points=100)
    extra = nbformat.v4.new_code_cell(
        "print('grade me')",
        metadata={
            "nbgrader": {
                "grade": True,
                "solution": False,
                "locked": True,
                "grade_id": "bonus",
                "points": 50,
                "schema_version": 3,
            }
        },
    )
    nb.cells.append(extra)
    broken = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "leaves")
    broken.metadata.nbgrader["points"] = "lots"
    reading = read_notebook(data(nb), CELLS)
    assert reading.tampered
    fixed = {
        c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]
        for c in reading.notebook.cells
        if "nbgrader" in c.metadata
    }
    assert (
        fixed["order_basic"]["points"] == 2 and fixed["order_basic"]["grade"] and not fixed["order_basic"]["solution"]
    )
    assert fixed["leaves"]["points"] == 2 and "bonus" not in fixed
    assert any("bonus" in n and "not graded" in n for n in reading.notes)
    # nbgrader's own metadata check accepts what comes out
    from nbgrader.nbgraderformat import MetadataValidator

    MetadataValidator().validate_nb(reading.notebook)


def test_missing_cells_are_put_back_where_they_belong():
    nb = copy.deepcopy(RELEASE)
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") not in ("conflicts", "setup")]
    reading = read_notebook(data(nb), CELLS)
    assert ids(reading.notebook) == ids(RELEASE)
    assert "cell conflicts was missing; it was put back as released" in reading.notes


def test_a_test_cell_turned_into_markdown_comes_back_as_released():
    nb = copy.deepcopy(RELEASE)
    i = ids(nb).index("pending_basic")
    nb.cells[i] = nbformat.v4.new_markdown_cell("no tests here", metadata=nb.cells[i].metadata)
    reading = read_notebook(data(nb), CELLS)
    assert reading.tampered and reading.notebook.cells[i].cell_type == "code"
    assert reading.notebook.cells[i].source == RELEASE.cells[i].source


@pytest.mark.parametrize(
    "payload, status, words",
    [
        (b"\xff\xfe not text", model.MALFORMED, "not UTF-8"),
        (b'{"cells": [', model.MALFORMED, "not valid JSON"),
        (b"[" * 10_000 + b"]" * 10_000, model.MALFORMED, "nested too deeply"),
        (json.dumps({"essay": "on paper"}).encode(), model.MALFORMED, "no list of cells"),
        (
            json.dumps(
                {"cells": [{"cell_type": "rocket"}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
            ).encode(),
            model.MALFORMED,
            "not a notebook",
        ),
        (b" " * (MAX_NOTEBOOK_BYTES + 1), model.TOO_LARGE, "larger than 20 MB"),
    ],
)
def test_files_that_are_not_notebooks_are_refused_with_a_reason(payload, status, words):
    with pytest.raises(NotebookRefused) as refused:
        read_notebook(payload, CELLS, "deep_dive.ipynb")
    assert refused.value.status == status and words in str(refused.value)

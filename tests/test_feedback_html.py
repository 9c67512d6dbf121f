"""Feedback pages: HTML made once per cell text (miglab.grading.feedback) is the HTML made afresh.

Most cells of a feedback page are the same for every student, so the
exporter keeps the HTML it made from each cell's text for the next student.
A page made with that memory warm, for a notebook that differs in a few
cells (code, markdown, another language), must be exactly the page made
with it off.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import nbformat
import nbgrader
import pytest
from traitlets.config import Config

from miglab.grading import feedback

REPO = Path(__file__).resolve().parents[1]
LESSON = REPO / "notebooks" / "01_what_is_a_migration.ipynb"


def exporter():
    formgrader = Path(nbgrader.__file__).parent / "server_extensions" / "formgrader"
    cfg = Config()  # what nbgrader's GenerateFeedback sets
    cfg.HTMLExporter.template_name = "feedback"
    cfg.HTMLExporter.extra_template_basedirs = [os.fspath(formgrader / "templates")]
    css = formgrader / "static" / "node_modules" / "bootstrap" / "dist" / "css"
    cfg.HTMLExporter.extra_template_paths = [os.fspath(css)]
    return feedback.CachedTemplateHTMLExporter(config=cfg)


def page(nb) -> str:
    scores = {"notebook": "lesson", "score": 1.0, "max_score": 2.0, "late_penalty": 0.0}  # as GetGrades puts them
    return exporter().from_notebook_node(copy.deepcopy(nb), resources={"nbgrader": scores})[0]


def variants():
    first = nbformat.read(LESSON, as_version=4)
    second = copy.deepcopy(first)
    code = next(c for c in second.cells if c.cell_type == "code")
    code.source += "\nanswer = 42  # a student's own line"
    text = next(c for c in second.cells if c.cell_type == "markdown")
    text.source = "**My own** notes, with `code`.\n\n" + text.source
    third = copy.deepcopy(first)
    third.metadata.language_info.pygments_lexer = "python"  # another lexer: other HTML for the same code
    return [first, second, third]


@pytest.fixture
def memo_off(monkeypatch):
    def off():
        monkeypatch.setattr(feedback._MEMO, "get", lambda key, make: make())

    return off


def test_a_page_made_from_memory_is_the_page_made_afresh(memo_off, monkeypatch):
    monkeypatch.setattr(feedback, "_MEMO", feedback._Memo())
    notebooks = variants()
    warm = [page(nb) for nb in notebooks + notebooks]  # the second round comes from memory
    assert len(feedback._MEMO._made) > 0
    memo_off()
    fresh = [page(nb) for nb in notebooks]
    assert warm == fresh + fresh
    assert len(set(fresh)) == 3  # the variants do make different pages


def test_a_full_memory_is_emptied_and_still_gives_the_same_page(monkeypatch, memo_off):
    small = feedback._Memo()
    small.LIMIT = 5
    monkeypatch.setattr(feedback, "_MEMO", small)
    nb = variants()[1]
    warm = page(nb)
    assert len(small._made) <= 5
    memo_off()
    assert warm == page(nb)

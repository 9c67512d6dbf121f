"""The course where learners and instructors meet it: JupyterLab in a real (headless) Chromium.

* A lesson: every cell runs in the browser's kernel without an error, and the
  quiz renders as a live widget that answers a wrong pick with "Not quite" and
  the right pick with "Correct", in exactly miglab.lab.quiz's words.
* The assignment: nbgrader's lab extension is there (Validate button, Create
  Assignment panel, Nbgrader menu) and validating the untouched release
  notebook reports a failing test cell.
* The instructor's formgrader (Nbgrader menu) lists the assignment.
* Self-checks: the same checks fail on a lesson with a failing cell, without
  the widget manager, and without nbgrader's extension.

Screenshots for a human land in .screenshots/ (the path is printed at the end).
"""

from __future__ import annotations

import re

import nbformat
import pytest
from jlab import (
    CODE_CELL,
    first_quiz_question,
    menu,
    open_lab,
    open_notebook,
    prompts,
    run_all_cells_fresh,
    stderr_outputs,
)
from playwright.sync_api import Page, expect

LESSON = "notebooks/01_what_is_a_migration.ipynb"
ASSIGNMENT = "deep_dive"
RELEASE_NOTEBOOK = f"release/{ASSIGNMENT}/{ASSIGNMENT}.ipynb"
WIDGET_MANAGER = "@jupyter-widgets/jupyterlab-manager"
NBGRADER_LAB = "@jupyter/nbgrader"

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]


# ------------------------------------------------------------------ the checks


def check_lesson_runs(page: Page, server, relpath: str, shot=None) -> list[str]:
    """Run every cell of a lesson in the browser; no cell may fail or write an error."""
    open_notebook(page, server, relpath)
    n_code = page.locator(CODE_CELL).count()
    assert n_code >= 2, f"the browser shows {n_code} code cells of {relpath}"
    ran = run_all_cells_fresh(page)
    if shot:
        page.screenshot(path=shot)
    errors = stderr_outputs(page)
    assert not errors, f"a cell of {relpath} wrote an error in the browser:\n" + "\n---\n".join(errors)
    assert ran == [f"[{i}]:" for i in range(1, n_code + 1)], (
        f"not every cell of {relpath} ran once, in order (a cell failed or was skipped): {ran}"
    )
    return ran


def check_quiz_answers(page: Page, server, relpath: str, shots=(None, None), render_timeout=15_000) -> None:
    """The lesson's quiz is a live widget: a wrong pick, then the right one, each gets its feedback."""
    quiz_q = first_quiz_question(server.root / relpath)
    q = quiz_q.question
    cell = page.locator(CODE_CELL).nth(quiz_q.cell_index)
    quiz = cell.locator(".miglab-quiz")
    expect(quiz, "the quiz widget did not render (is the widget manager extension there?)").to_be_visible(
        timeout=render_timeout
    )
    expect(cell).not_to_contain_text("Error displaying widget")
    first = quiz.locator(".miglab-quiz-question").first
    feedback = first.locator(".miglab-quiz-feedback")
    expect(first.get_by_role("radio")).to_have_count(len(q.choices))

    wrong = next(i for i in range(len(q.choices)) if i != q.answer)
    for pick, word, shot in ((wrong, "Not quite", shots[0]), (q.answer, "Correct", shots[1])):
        first.get_by_role("radio", name=q.choices[pick], exact=True).check()
        first.locator(".miglab-quiz-check").click()
        expect(feedback).to_have_text(q.feedback(pick))
        expect(feedback).to_contain_text(word)
        if shot:
            feedback.scroll_into_view_if_needed()
            page.screenshot(path=shot)
    assert not stderr_outputs(page), "answering the quiz wrote an error"


def check_nbgrader_tools(page: Page, timeout=30_000) -> None:
    """nbgrader's lab extension is loaded: Validate in the notebook toolbar, the Create Assignment
    panel and the Nbgrader menu."""
    validate = page.locator(".jp-NotebookPanel-toolbar .validate-button")
    expect(validate, "nbgrader's Validate button is missing from the notebook toolbar").to_be_visible(timeout=timeout)
    expect(validate).to_have_text("Validate")
    expect(
        page.locator(".lm-TabBar-tab", has_text="Create Assignment"), "nbgrader's Create Assignment panel is missing"
    ).to_be_visible(timeout=timeout)
    expect(
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Nbgrader$")), "the Nbgrader menu is missing"
    ).to_be_visible(timeout=timeout)


# ------------------------------------------------------------------ the course


def test_lesson_runs_in_the_browser_and_its_quiz_answers(jupyter, page, screenshots):
    assert (jupyter.root / LESSON).exists(), f"{LESSON} is missing from the course"
    ran = check_lesson_runs(page, jupyter, LESSON, shot=screenshots / "browser_01_lesson_ran.png")
    check_quiz_answers(
        page,
        jupyter,
        LESSON,
        shots=(screenshots / "browser_02_quiz_wrong_answer.png", screenshots / "browser_03_quiz_right_answer.png"),
    )
    assert prompts(page) == ran, "answering the quiz must not re-run cells"


def test_release_notebook_has_nbgraders_assignment_tools(jupyter, page, screenshots):
    assert (jupyter.root / RELEASE_NOTEBOOK).exists(), f"{RELEASE_NOTEBOOK} is missing from the course"
    open_notebook(page, jupyter, RELEASE_NOTEBOOK)
    check_nbgrader_tools(page)
    page.screenshot(path=screenshots / "browser_04_release_notebook.png")

    # Validate runs nbgrader on the server: the untouched notebook fails a test cell, and says so.
    page.locator(".jp-NotebookPanel-toolbar .validate-button").click()
    dialog = page.locator(".jp-Dialog")
    expect(dialog).to_be_visible(timeout=60_000)
    expect(dialog).to_contain_text("Validation Results", timeout=60_000)
    expect(dialog.locator(".validation-failed")).to_contain_text("The following cell failed")
    page.screenshot(path=screenshots / "browser_05_validate_untouched_release.png")
    dialog.get_by_role("button", name="Ok").click()
    expect(dialog).to_have_count(0)


def test_instructor_formgrader_lists_the_assignment(jupyter, page, screenshots):
    assert (jupyter.root / "source" / ASSIGNMENT).is_dir(), f"source/{ASSIGNMENT} is missing from the course"
    open_lab(page, jupyter)
    menu(page, "Nbgrader", "Formgrader")
    frame = page.frame_locator("#formgrader-iframe iframe")
    expect(frame.get_by_role("heading", name=re.compile("Manage Assignments"))).to_be_visible(timeout=30_000)
    row = frame.locator("tr", has=frame.get_by_role("link", name=ASSIGNMENT, exact=True))
    expect(row).to_have_count(1, timeout=30_000)
    page.screenshot(path=screenshots / "browser_06_formgrader.png")


# ------------------------------------------------------------------ the checks can fail


def test_self_check_a_failing_lesson_cell_is_caught(jupyter, page):
    nb = nbformat.read(jupyter.root / LESSON, as_version=4)
    middle = len(nb.cells) // 2
    nb.cells.insert(middle, nbformat.v4.new_code_cell('raise RuntimeError("planted failure")'))
    broken = "notebooks/zz_planted_failure.ipynb"
    nbformat.write(nb, jupyter.root / broken)
    with pytest.raises(AssertionError, match="wrote an error in the browser") as caught:
        check_lesson_runs(page, jupyter, broken)
    assert "RuntimeError" in str(caught.value) and "planted failure" in str(caught.value)
    # Run All stops at the failure: the cells after it never ran.
    assert not re.fullmatch(r"\[\d+\]:", prompts(page)[-1]), prompts(page)


def test_self_check_a_quiz_without_the_widget_manager_is_caught(jupyter, page):
    # Just the lesson's quiz cell, after the imports it needs (quicker than the whole lesson).
    lesson = nbformat.read(jupyter.root / LESSON, as_version=4)
    quiz_cell = [c for c in lesson.cells if c.cell_type == "code"][
        first_quiz_question(jupyter.root / LESSON).cell_index
    ]
    nb = nbformat.v4.new_notebook(metadata=lesson.metadata)
    nb.cells = [
        nbformat.v4.new_code_cell("from miglab.lab.quiz import Quiz, Question"),
        nbformat.v4.new_code_cell(quiz_cell.source),
    ]
    quiz_only = "notebooks/zz_quiz_only.ipynb"
    nbformat.write(nb, jupyter.root / quiz_only)
    with jupyter.extensions_disabled(WIDGET_MANAGER):
        check_lesson_runs(page, jupyter, quiz_only)
        with pytest.raises(AssertionError, match="the quiz widget did not render"):
            check_quiz_answers(page, jupyter, quiz_only, render_timeout=3_000)
        # What shows instead is the quiz's plain-text form.
        first = first_quiz_question(jupyter.root / quiz_only).question
        expect(page.locator(CODE_CELL).nth(1)).to_contain_text(first.prompt)


def test_self_check_a_missing_nbgrader_extension_is_caught(jupyter, page):
    with jupyter.extensions_disabled(NBGRADER_LAB):
        open_notebook(page, jupyter, RELEASE_NOTEBOOK)
        with pytest.raises(AssertionError, match="Validate button is missing"):
            check_nbgrader_tools(page, timeout=3_000)

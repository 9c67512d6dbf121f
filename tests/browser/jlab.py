"""Driving JupyterLab 4 from Playwright, the way a person uses it: menus, buttons, radio choices.

Selectors are JupyterLab's and nbgrader's own CSS classes (checked against
JupyterLab 4.6 and nbgrader 0.9.6).
"""

from __future__ import annotations

import ast
import re
import secrets
from dataclasses import dataclass

import nbformat
from playwright.sync_api import Locator, Page, expect

NOTEBOOK = ".jp-NotebookPanel"
CODE_CELL = ".jp-Notebook .jp-CodeCell"
KERNEL_IDLE = '.jp-NotebookPanel-toolbar .jp-Notebook-ExecutionIndicator[data-status="idle"]'
STDERR = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
PROMPT_NUMBER = re.compile(r"^\[(\d+)\]:$")


def open_lab(page: Page, server) -> None:
    """Open JupyterLab itself, in a fresh workspace, and wait until its menu bar is there."""
    page.goto(f"{server.url}lab/workspaces/t{secrets.token_hex(4)}?reset&token={server.token}")
    expect(page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^File$"))).to_be_visible(timeout=60_000)


def open_notebook(page: Page, server, relpath: str, kernel_timeout: float = 60_000) -> Locator:
    """Open ``relpath`` in a workspace of its own (nothing else restored), wait until every cell
    of the file is on the page (JupyterLab adds them in batches) and the kernel is idle."""
    n_cells = len(nbformat.read(server.root / relpath, as_version=4).cells)
    server.stop_kernels()
    workspace = f"t{secrets.token_hex(4)}"
    page.goto(f"{server.url}lab/workspaces/{workspace}/tree/{relpath}?reset&token={server.token}")
    panel = page.locator(NOTEBOOK).first
    expect(panel).to_be_visible(timeout=60_000)
    expect(panel.locator(".jp-Notebook .jp-Cell")).to_have_count(n_cells, timeout=30_000)
    expect(page.locator(KERNEL_IDLE).first).to_be_attached(timeout=kernel_timeout)
    return panel


def menu(page: Page, top: str, item: str) -> None:
    """Click ``top`` in the menu bar, then ``item`` in the menu that opens."""
    page.locator(".lm-MenuBar-item", has=page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{top}$"))).click()
    page.locator(
        ".lm-Menu-item:not(.lm-mod-disabled)",
        has=page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$")),
    ).click()


# A cell's execution prompt: its input prompt, or, when the input is folded (lesson quiz cells hide
# their source), the prompt of its result. textContent, not innerText: JupyterLab skips rendering
# cells scrolled out of view (content-visibility), and innerText of those is empty.
PROMPTS_JS = """() => [...document.querySelectorAll('.jp-Notebook .jp-CodeCell')].map(cell => {
    const input = cell.querySelector('.jp-InputArea-prompt');
    const out = [...cell.querySelectorAll('.jp-OutputPrompt')].map(e => e.textContent.trim()).find(t => t);
    return ((input ? input.textContent.trim() : '') || out || '').trim();
})"""


def prompts(page: Page) -> list[str]:
    """The execution prompt of every code cell, in order: '[3]:', '[*]:' or '[ ]:'."""
    return page.evaluate(PROMPTS_JS)


def _texts(locator: Locator) -> list[str]:
    # textContent, not innerText: JupyterLab skips rendering cells scrolled out of view
    # (content-visibility), and innerText of those is empty.
    return [t.strip() for t in locator.evaluate_all("els => els.map(e => e.textContent)")]


def run_all_cells_fresh(page: Page, timeout: float = 90_000) -> list[str]:
    """Clear every output (lessons are stored with outputs), run all cells, wait until the kernel is
    idle and no cell is pending. Returns the prompts, which are [1]..[n] when every cell ran once."""
    menu(page, "Edit", "Clear Outputs of All Cells")
    expect(page.locator(f"{CODE_CELL} .jp-OutputArea-output")).to_have_count(0)
    stale = [p for p in prompts(page) if PROMPT_NUMBER.match(p)]
    assert not stale, f"clearing outputs left execution counts: {stale}"
    menu(page, "Run", "Run All Cells")
    # Started: some cell is queued/running or already numbered (all were blank after clearing).
    page.wait_for_function(
        f"() => ({PROMPTS_JS})().some(t => /\\[(\\*|\\d+)\\]/.test(t))",
        timeout=timeout,
    )
    # Finished: nothing running or queued, and the kernel says idle.
    page.wait_for_function(
        """() => {
            const p = ("""
        + PROMPTS_JS
        + """)();
            const idle = document.querySelector(
                '.jp-NotebookPanel-toolbar .jp-Notebook-ExecutionIndicator[data-status="idle"]');
            return p.length > 0 && idle && !p.some(t => t.includes('*'));
        }""",
        timeout=timeout,
    )
    return prompts(page)


def stderr_outputs(page: Page) -> list[str]:
    """Text of every error/stderr output shown (tracebacks and warnings both render this way)."""
    return _texts(page.locator(STDERR))


# ------------------------------------------------------------------ quizzes


@dataclass
class QuizQuestion:
    """The first question of a lesson's quiz, rebuilt from the cell's source with miglab's Question."""

    cell_index: int  # index among the notebook's code cells
    question: object  # miglab.lab.quiz.Question


def first_quiz_question(path) -> QuizQuestion:
    """Find the first ``Quiz([...])`` cell of a lesson and rebuild its first ``Question(...)``
    with the real class, so the test knows the right answer and the exact feedback texts."""
    from miglab.lab.quiz import Question

    nb = nbformat.read(path, as_version=4)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    for index, cell in enumerate(code_cells):
        if "Quiz(" not in cell.source:
            continue
        tree = ast.parse(cell.source)
        calls = [
            n
            for n in ast.walk(tree)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "Question"
        ]
        if not calls:
            continue
        first = min(calls, key=lambda n: (n.lineno, n.col_offset))
        code = compile(ast.Expression(first), str(path), "eval")
        return QuizQuestion(index, eval(code, {"Question": Question}))
    raise AssertionError(f"{path.name}: no cell builds a Quiz([Question(...), ...])")

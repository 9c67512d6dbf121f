"""Feedback a student may read: verdicts and notes, never hidden tests or what they could leak.

nbgrader's feedback is the autograded notebook rendered with its outputs.
Those outputs come from the kernel that ran the student's code with the
hidden tests restored, so any of them can carry a hidden test out (a hook
that prints each cell's source, an exception whose message is a stolen
input). :class:`GradingFeedback` therefore rewrites the notebook before
nbgrader's template renders it:

* a cell the trusted judge scored shows the judge's messages, nothing the
  kernel printed;
* from the first cell that carried a hidden test block on, no output of the
  grading run is shown: an error is shown by its kind only if that is a
  built-in exception's name, and the grader's own notes (a cell that did not
  run, and why) stay;
* the notes about the submission itself (cells put back, a pasted copy, a
  link skipped, a bad timestamp) open the page.

:class:`ShortTracebacks` cuts the tracebacks of test cells that ran before
any hidden test to their last line.
"""

from __future__ import annotations

import builtins
import json

from nbformat.v4 import new_markdown_cell, new_output
from nbgrader import utils
from nbgrader.preprocessors import NbGraderPreprocessor

from .execute import NOT_RUN
from .model import BY_JUDGE
from .plan import BEGIN_HIDDEN

WITHHELD = "[output of the grading run not shown: it came after hidden tests ran]"


class GradingFeedback(NbGraderPreprocessor):
    """Judge messages for judged cells; no raw output once hidden tests have run (see the module docstring)."""

    def preprocess(self, nb, resources):
        hidden_from = next(
            (i for i, c in enumerate(nb.cells) if c.cell_type == "code" and BEGIN_HIDDEN in c.source), len(nb.cells)
        )
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            verdict = cell.metadata.get("miglab", {})
            if verdict.get("scored_by") == BY_JUDGE:
                cell.outputs = [*_grader_notes(cell.outputs), _verdict_output(verdict.get("messages", []))]
            elif index >= hidden_from:
                cell.outputs = _withheld(cell.outputs)
        notes = nb.metadata.get("miglab", {}).get("notes") or []
        if notes:
            lines = "\n".join(f"* {n}" for n in notes)
            nb.cells.insert(0, new_markdown_cell(f"**Notes on your submission**\n\n{lines}"))
        return nb, resources


def _grader_notes(outputs: list) -> list:
    """The grader's own error notes (a cell that did not run, and why): trusted, kept."""
    return [o for o in outputs if o.get("output_type") == "error" and o.get("ename") == NOT_RUN]


def _verdict_output(messages: list) -> dict:
    text = "\n".join(str(m) for m in messages) or "no verdict"
    return new_output("stream", name="stdout", text=text + "\n")


def _withheld(outputs: list) -> list:
    kept = _grader_notes(outputs)
    errors = [o for o in outputs if o.get("output_type") == "error" and o.get("ename") != NOT_RUN]
    shown_any = any(o.get("output_type") != "error" and _visible(o) for o in outputs)
    out = list(kept)
    if shown_any:
        out.append(new_output("stream", name="stdout", text=WITHHELD + "\n"))
    if errors:
        name = str(errors[-1].get("ename", ""))
        kind = name if isinstance(getattr(builtins, name, None), type) and name.isidentifier() else "an exception"
        out.append(
            new_output(
                "error",
                ename=kind,
                evalue="(the message is not shown after hidden tests ran)",
                traceback=[f"This cell raised {kind} while it was graded."],
            )
        )
    return out


def _visible(output: dict) -> bool:
    """Would nbconvert show anything for this output? (Evidence records carry an empty text.)"""
    if output.get("output_type") == "stream":
        return bool(output.get("text"))
    data = output.get("data") or {}
    return any(k != "text/plain" or v for k, v in data.items() if not k.startswith("application/vnd.miglab"))


class ShortTracebacks(NbGraderPreprocessor):
    """Cut the traceback of every graded test cell to its last line (``Error: message``).

    ``ClearHiddenTests`` removes hidden tests from the cell source, but a failing
    assert still shows its own source line in the traceback. The last line
    (exception name and message) is all a student needs.
    """

    def preprocess_cell(self, cell, resources, cell_index):
        if cell.cell_type == "code" and utils.is_grade(cell) and not utils.is_solution(cell):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    message = f"{output.get('ename', 'Error')}: {output.get('evalue', '')}".rstrip(": ")
                    output["traceback"] = [message]
        return cell, resources


class _Memo:
    """HTML already made from a cell's text, by everything that decides it: most cells (instructions,
    provided code, test cells) are the same for every student, and making their HTML is most of the
    cost of a feedback page. Emptied when full."""

    LIMIT = 4_000  # texts kept (a few MB of HTML)

    def __init__(self) -> None:
        self._made: dict = {}

    def get(self, key: tuple, make):
        html = self._made.get(key)
        if html is None:
            if len(self._made) >= self.LIMIT:
                self._made.clear()
            html = self._made[key] = make()
        return html


_MEMO = _Memo()


def _key(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)


class _MemoHighlight:
    """nbconvert's ``highlight_code`` filter (a ``Highlight2HTML``), each text highlighted once per process."""

    def __init__(self, highlight):
        self.highlight = highlight
        self.settings = _key([highlight.pygments_lexer, highlight.extra_formatter_options])

    def __call__(self, source, language=None, metadata=None):
        key = ("code", self.settings, source, language, _key(metadata))
        return _MEMO.get(key, lambda: self.highlight(source, language, metadata))


def _cached_exporter_class():
    import re

    from jinja2 import pass_context
    from nbconvert.exporters import HTMLExporter
    from nbconvert.exporters.templateexporter import TemplateExporter
    from nbconvert.filters.highlight import Highlight2HTML
    from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter

    img_without_alt = re.compile(r"<img(?![^>]*\balt=)")

    class CachedTemplateHTMLExporter(HTMLExporter):
        """nbgrader's feedback exporter, made cheaper per student with the same output.

        The Jinja templates are compiled once per process, not once per student;
        and the HTML is not parsed again with BeautifulSoup: with the classic
        template nbgrader's feedback uses, that pass only adds ``alt`` text to
        images, which a regular expression does (any ``jp-`` markup falls back to
        nbconvert's own pass).
        """

        _shared: dict = {}

        @property
        def environment(self):
            key = (self.template_name, tuple(self.template_paths), tuple(self.extra_template_basedirs))
            env = self._shared.get(key)
            if env is None:
                env = self._shared[key] = self._create_environment()
            return env

        @pass_context
        def markdown2html(self, context, source):
            """nbconvert's, each text made once per process (a cell with attachments, or images to
            embed from files, is made every time: its HTML depends on more than its text)."""
            if context.get("cell", {}).get("attachments") or self.embed_images:
                return HTMLExporter.markdown2html(self, context, source)
            settings = _key([self.anchor_link_text, self.exclude_anchor_links, self.lexer_options])
            return _MEMO.get(("markdown", settings, source), lambda: HTMLExporter.markdown2html(self, context, source))

        def from_notebook_node(self, nb, resources=None, **kw):
            langinfo = nb.metadata.get("language_info", {})
            lexer = langinfo.get("pygments_lexer", langinfo.get("name", None))
            highlight_code = self.filters.get("highlight_code") or _MemoHighlight(
                Highlight2HTML(pygments_lexer=lexer, parent=self)
            )
            resources = self._init_resources(resources)
            filter_data_type = WidgetsDataTypeFilter(
                notebook_metadata=self._nb_metadata, parent=self, resources=resources
            )
            self.register_filter("highlight_code", highlight_code)
            self.register_filter("filter_data_type", filter_data_type)
            html, resources = TemplateExporter.from_notebook_node(self, nb, resources, **kw)
            if "jp-Cell-inputWrapper" in html or "jp-OutputArea-output" in html:
                return HTMLExporter.from_notebook_node(self, nb, resources, **kw)
            html = img_without_alt.sub('<img alt="No description has been provided for this image"', html)
            return html, resources

    return CachedTemplateHTMLExporter


CachedTemplateHTMLExporter = _cached_exporter_class()

"""Feedback-only preprocessing: students see which tests failed, not the hidden test code."""

from __future__ import annotations

from nbgrader import utils
from nbgrader.preprocessors import NbGraderPreprocessor


class ShortTracebacks(NbGraderPreprocessor):
    """Cut the traceback of every graded test cell to its last line (``Error: message``).

    ``ClearHiddenTests`` removes hidden tests from the cell source, but a failing
    hidden assert still shows its own source line in the traceback. The last
    line (exception name and message) is all a student needs.
    """

    def preprocess_cell(self, cell, resources, cell_index):
        if cell.cell_type == "code" and utils.is_grade(cell) and not utils.is_solution(cell):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    message = f"{output.get('ename', 'Error')}: {output.get('evalue', '')}".rstrip(": ")
                    output["traceback"] = [message]
        return cell, resources


def _cached_exporter_class():
    import re

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

        def from_notebook_node(self, nb, resources=None, **kw):
            langinfo = nb.metadata.get("language_info", {})
            lexer = langinfo.get("pygments_lexer", langinfo.get("name", None))
            highlight_code = self.filters.get("highlight_code", Highlight2HTML(pygments_lexer=lexer, parent=self))
            resources = self._init_resources(resources)
            filter_data_type = WidgetsDataTypeFilter(notebook_metadata=self._nb_metadata, parent=self,
                                                     resources=resources)
            self.register_filter("highlight_code", highlight_code)
            self.register_filter("filter_data_type", filter_data_type)
            html, resources = TemplateExporter.from_notebook_node(self, nb, resources, **kw)
            if "jp-Cell-inputWrapper" in html or "jp-OutputArea-output" in html:
                return HTMLExporter.from_notebook_node(self, nb, resources, **kw)
            html = img_without_alt.sub('<img alt="No description has been provided for this image"', html)
            return html, resources

    return CachedTemplateHTMLExporter


CachedTemplateHTMLExporter = _cached_exporter_class()

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
    from nbconvert.exporters import HTMLExporter

    class CachedTemplateHTMLExporter(HTMLExporter):
        """nbgrader's feedback exporter, compiling its Jinja templates once per process, not once per student."""

        _shared: dict = {}

        @property
        def environment(self):
            key = (self.template_name, tuple(self.template_paths), tuple(self.extra_template_basedirs))
            env = self._shared.get(key)
            if env is None:
                env = self._shared[key] = self._create_environment()
            return env

    return CachedTemplateHTMLExporter


CachedTemplateHTMLExporter = _cached_exporter_class()

"""The deep_dive data-migration scenario, as its notebook defines it, for tests and benches.

The scenario (models, the migrations around the learner's 0003, the books)
is written once, in the locked ``slug_lab`` cell of
source/deep_dive/deep_dive.ipynb; this module runs that cell to get it, so
tests judge exactly what graded students are judged on.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

from miglab.evidence import Call, runs_migration

NOTEBOOK = Path(__file__).resolve().parents[2] / "source" / "deep_dive" / "deep_dive.ipynb"
VISIBLE = ["Dune", "The Left Hand of Darkness", "Kindred"]
HIDDEN = ["Beloved", "  A Wizard of Earthsea  ", "Ça, c'est la vie!", "1984", "Never Let Me Go", "Dune"]


def _slug_lab():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    [cell] = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "slug_lab"]
    namespace: dict = {}
    exec(cell.source, namespace)
    return namespace["slug_lab"]


slug_lab = _slug_lab()


def expected(titles: list[str], step: int) -> dict:
    """What the database must hold after step 0 (forwards) or 1 (backwards)."""
    from django.utils.text import slugify

    from miglab.evidence.django_setup import ensure_django

    ensure_django()
    return {
        "books": [[t, slugify(t) if step == 0 else ""] for t in titles],
        "applied": [["0003_fill_slugs"]] if step == 0 else [],
    }


def judged(context, text: str, titles: list[str], step: int, hidden: bool = False):
    """``runs_migration``'s verdict on ``text`` with ``titles``, run by ``context``."""
    return runs_migration(
        Call(
            args=[],
            output=text,
            expect=expected(titles, step),
            params={"scenario": slug_lab(titles), "step": step},
            context=context,
            hidden=hidden,
        )
    )

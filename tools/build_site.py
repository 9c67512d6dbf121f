#!/usr/bin/env python
"""Build the course website: the lessons, as stored with their outputs, as a static site.

    make site                                       # installs the site tools, then runs this
    _site/.venv/bin/python tools/build_site.py      # the same, once the site tools are installed
    _site/.venv/bin/python tools/build_site.py --repository https://github.com/ORG/REPO
                                                    # adds "launch on Binder" buttons for that repository

Open _site/html/index.html, or publish the folder _site/html/ as it is (any static host).

What it does:

* finds the lessons (every notebooks/NN_*.ipynb, as tools/build_lessons.py does) and copies
  them into _site/src/ with two changes for a page without a kernel: the input of a cell that
  JupyterLab folds (a quiz's source holds its answers) is left out, and live-widget views are
  dropped (each widget keeps the plain-text form stored beside it);
* writes the front page, the course map, from the lessons themselves: each lesson's H1 title
  (linking to it), an italic note under it (such as the duration), its first paragraph and its
  "By the end of this lesson you can" list, after the README's first paragraph
  (site/front_page.md is the page's frame);
* writes the table of contents (_toc.yml) in lesson order and copies site/_config.yml;
* runs Jupyter Book 1 (Sphinx + myst-nb, ``execute_notebooks: "off"``: nothing is executed,
  nothing is downloaded) with warnings as errors, so a broken link between lessons fails
  the build; the result replaces _site/html/.

The site tools are not in the learner's .venv: they are pinned in requirements-site.txt and
installed by ``make site`` into _site/.venv.
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_lessons import NOTEBOOKS, WIDGET_VIEW, BuildError, lesson_files, title_of

ROOT = Path(__file__).resolve().parent.parent
SITE_CONFIG = ROOT / "site"
OUT = ROOT / "_site"
README = ROOT / "README.md"
GOALS_LEAD = re.compile(r"by the end of this lesson", re.IGNORECASE)
BULLET = re.compile(r"^\s*[-*+]\s+(.*)$")
NOTE = re.compile(r"(\*[^*]+\*|_[^_]+_)")  # a paragraph in italics only: a note such as the duration
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class SiteError(Exception):
    """The site cannot be built, with the reason in plain words."""


# ------------------------------------------------------------------ the course map


@dataclass
class LessonCard:
    """What the front page says about one lesson, read from the lesson's first cell."""

    file: str  # 01_what_is_a_migration.ipynb
    title: str  # Lesson 1 · What a migration is
    summary: str  # the first paragraph after the title, on one line
    note: str = ""  # a wholly italic line before it (``*About 20 minutes.*``), if any
    goals: list[str] = field(default_factory=list)  # the "By the end of this lesson you can" items


def _paragraphs(markdown: str) -> list[list[str]]:
    paras, current = [], []
    for line in markdown.splitlines():
        if line.strip():
            current.append(line)
        elif current:
            paras.append(current)
            current = []
    if current:
        paras.append(current)
    return paras


def _bullets(lines: list[str]) -> list[str]:
    """The items of a markdown list; continuation lines are joined to their item."""
    items: list[str] = []
    for line in lines:
        m = BULLET.match(line)
        if m:
            items.append(m.group(1).strip())
        elif items:
            items[-1] += " " + line.strip()
    return items


def lesson_card(path: Path) -> LessonCard:
    title = title_of(path)  # checks that the first cell is '# Lesson N · Title'
    first = nbformat.read(path, as_version=4).cells[0].source
    paras = _paragraphs(first)
    body = [p for p in paras if not p[0].lstrip().startswith("# ")]
    prose = [" ".join(line.strip() for line in p) for p in body if not BULLET.match(p[0])]
    notes = [text for text in prose if NOTE.fullmatch(text)]
    prose = [text for text in prose if not NOTE.fullmatch(text)]
    if not prose:
        raise SiteError(f"{path.name}: the first cell has no paragraph after its title")
    summary = prose[0]
    goals: list[str] = []
    for i, p in enumerate(body):
        lead = [line for line in p if not BULLET.match(line)]
        if any(GOALS_LEAD.search(line) for line in lead):
            items = _bullets(p[len(lead) :]) or (_bullets(body[i + 1]) if i + 1 < len(body) else [])
            goals = items
            break
    return LessonCard(file=path.name, title=title, summary=summary, goals=goals, note=notes[0] if notes else "")


def readme_intro(readme: Path = README) -> tuple[str, str]:
    """(the README's H1, its first paragraph): the course says what it is in one place."""
    paras = _paragraphs(readme.read_text()) if readme.is_file() else []
    title = next((p[0].lstrip("# ").strip() for p in paras if p[0].startswith("# ")), "Migrations Deep Dive")
    intro = next((" ".join(line.strip() for line in p) for p in paras if not p[0].startswith("#")), "")
    return title, intro


def course_map(cards: list[LessonCard]) -> str:
    """The lessons in order, as the markdown of the front page's list."""
    blocks = []
    for card in cards:
        lines = [f"### [{card.title}]({card.file})", ""] + ([card.note, ""] if card.note else []) + [card.summary]
        if card.goals:
            lines += ["", "What you will be able to do:", ""] + [f"- {g}" for g in card.goals]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def front_page(lessons: list[Path], readme: Path = README, frame: Path = SITE_CONFIG / "front_page.md") -> str:
    title, intro = readme_intro(readme)
    text = frame.read_text()
    for key, value in (
        ("{title}", title),
        ("{intro}", intro),
        ("{lessons}", course_map([lesson_card(p) for p in lessons]).rstrip("\n")),
    ):
        text = text.replace(key, value)
    return text


# ------------------------------------------------------------------ the book's sources


def for_the_web(nb):
    """A copy of a lesson for a page without a kernel: folded inputs left out, no widget views."""
    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if cell.metadata.get("jupyter", {}).get("source_hidden"):
            tags = cell.metadata.setdefault("tags", [])
            if "remove-input" not in tags:
                tags.append("remove-input")
        kept = []
        for out in cell.get("outputs", []):
            if "data" in out:
                out["data"].pop(WIDGET_VIEW, None)
                if not out["data"]:
                    continue  # a widget with no plain-text form: nothing to show without a kernel
            kept.append(out)
        cell.outputs = kept
    return nb


def toc(lessons: list[Path]) -> str:
    lines = [
        "# Generated by tools/build_site.py from the lessons on disk.",
        "format: jb-book",
        "root: index",
        "chapters:",
    ]
    lines += [f"  - file: {p.stem}" for p in lessons]
    return "\n".join(lines) + "\n"


def config(repository: str | None) -> str:
    import yaml

    conf = yaml.safe_load((SITE_CONFIG / "_config.yml").read_text())
    if repository:
        conf["repository"]["url"] = repository
        conf["launch_buttons"]["binderhub_url"] = "https://mybinder.org"
        conf["html"]["use_repository_button"] = True
    return yaml.safe_dump(conf, sort_keys=False, allow_unicode=True)


def write_sources(src: Path, lessons: list[Path], repository: str | None = None) -> None:
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    for path in lessons:
        nbformat.write(for_the_web(nbformat.read(path, as_version=4)), src / path.name)
    (src / "index.md").write_text(front_page(lessons))
    (src / "_toc.yml").write_text(toc(lessons))
    (src / "_config.yml").write_text(config(repository))


def build(out: Path = OUT, repository: str | None = None, notebooks: Path = NOTEBOOKS) -> Path:
    """Build the site into ``out``/html; return that folder."""
    lessons = lesson_files(notebooks)
    if not lessons:
        raise SiteError(f"no lessons (NN_name.ipynb) in {notebooks}")
    src, staging, html = out / "src", out / "build", out / "html"
    write_sources(src, lessons, repository)
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    if not jupyter_book.exists():
        raise SiteError(
            f"{jupyter_book} is missing: run `make site` (it installs requirements-site.txt into {out / '.venv'})"
        )
    if staging.exists():
        shutil.rmtree(staging)
    cmd = [
        str(jupyter_book),
        "build",
        str(src),
        "--path-output",
        str(staging),
        "--builder",
        "html",
        "--warningiserror",
        "--keep-going",
        "--quiet",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"})
    if proc.returncode != 0:
        output = ANSI.sub("", proc.stdout + proc.stderr)
        causes = [line for line in output.splitlines() if "WARNING" in line or "ERROR" in line]
        raise SiteError(
            f"jupyter-book build failed (exit {proc.returncode}); warnings count as errors, "
            "so that a broken link between lessons stops the build:\n" + "\n".join(causes or output.splitlines()[-40:])
        )
    if html.exists():
        shutil.rmtree(html)
    shutil.move(staging / "_build" / "html", html)
    shutil.rmtree(staging)
    (html / ".nojekyll").touch()  # GitHub Pages would otherwise hide _static/ and _images/
    return html


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=OUT, help="output folder (default: _site/; the site is in its html/)")
    ap.add_argument("--repository", help="the course's public git repository (adds Binder launch buttons)")
    args = ap.parse_args(argv)
    try:
        html = build(args.out.resolve(), args.repository)
    except (SiteError, BuildError) as err:
        print(f"build_site: {err}", file=sys.stderr)
        return 1
    pages = len(list(html.glob("*.html")))
    print(f"website: {html / 'index.html'} ({pages} pages; publish the folder {html} as it is)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The course website (`make site`) in headless Chromium, as a reader uses it.

The site is built once per session by the real `make site` (into a temporary folder) and served
from 127.0.0.1. For every lesson found on disk (none is named here), its page must show each
stored output, every picture loaded, each quiz's plain-text form without its source, and no
widget boxes; the front page must list every lesson, in order; every link of the front page and
of the lessons' navigation cells must lead to the lesson it names. Any response >= 400, any
request that leaves 127.0.0.1 and any JavaScript error fails the page.
"""

from __future__ import annotations

import functools
import http.server
import re
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest
from playwright.sync_api import Page, expect

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))

from build_lessons import lesson_files, title_of
from build_site import for_the_web

LESSONS = lesson_files()
NAV_LINK = re.compile(r"\[([^\]]+)\]\((\d\d_[a-z0-9_]+)\.ipynb\)")
WIDGET_BOXES = ", ".join(
    [
        ".jupyter-widgets",
        ".widget-area",
        ".jp-OutputArea-output",
        'script[type="application/vnd.jupyter.widget-view+json"]',
        'script[type="application/vnd.jupyter.widget-state+json"]',
    ]
)
WIDGET_TEXTS = ("Loading widget", "Error displaying widget", "Widget Javascript not detected")

pytestmark = pytest.mark.browser


# ------------------------------------------------------------------ build and serve


@pytest.fixture(scope="module")
def site_html(tmp_path_factory) -> Path:
    """The site, built by `make site` (its tools in _site/.venv, installed there on first use)."""
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        ["make", "--no-print-directory", "site", f"SITE=--out {out}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        pytest.fail(
            f"make site failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}", pytrace=False
        )
    html = out / "html"
    assert (html / "index.html").is_file(), proc.stdout
    assert (html / ".nojekyll").is_file()  # publishable on GitHub Pages as it is
    return html


@pytest.fixture(scope="module")
def site_lessons(site_html) -> list[Path]:
    """The lessons as the site was built from them (the builder's copies in <out>/src/). The pages
    are compared with these, not with notebooks/ itself, which someone may be editing meanwhile;
    that they are the lessons on disk is checked here (names) and in tests/test_course_map.py."""
    copies = lesson_files(site_html.parent / "src")
    assert [p.name for p in copies] == [p.name for p in LESSONS]
    return copies


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # the browser's listener reports what matters
        pass


@pytest.fixture(scope="module")
def site_url(site_html) -> str:
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(site_html))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class Watch:
    """What went wrong while a tab loaded pages: bad responses, requests leaving the machine, JS errors."""

    base: str
    problems: list[str] = field(default_factory=list)

    def attach(self, page: Page) -> None:
        def route(r):
            if r.request.url.startswith(self.base):
                r.continue_()
            else:
                self.problems.append(f"request to another host: {r.request.url}")
                r.abort()

        page.route("**/*", route)
        page.on(
            "response",
            lambda resp: (
                resp.status >= 400
                and not resp.url.endswith("/favicon.ico")
                and self.problems.append(f"{resp.status} for {resp.url}")
            ),
        )
        page.on("pageerror", lambda err: self.problems.append(f"JavaScript error: {err}"))

    def check(self) -> None:
        assert not self.problems, "\n".join(self.problems)


@pytest.fixture
def site_tab(page, site_url) -> tuple[Page, Watch]:
    watch = Watch(site_url)
    watch.attach(page)
    yield page, watch
    watch.check()


def heading(page: Page) -> str:
    """The page's H1 without Sphinx's '#' permalink."""
    return page.locator("article h1").first.evaluate(
        "h => [...h.childNodes].filter(n => !(n.classList && n.classList.contains('headerlink')))"
        ".map(n => n.textContent).join('').trim()"
    )


def norm(text: str) -> str:
    return " ".join(text.split())


def go(page: Page, url: str) -> None:
    response = page.goto(url)
    assert response is not None and response.ok, f"{url}: {response and response.status}"


# ------------------------------------------------------------------ the front page


def test_front_page_lists_every_lesson_and_its_links_open_them(site_tab, site_url, site_lessons, screenshots):
    page, watch = site_tab
    lessons = site_lessons
    go(page, site_url)
    assert heading(page) == "Migrations Deep Dive"
    links = page.locator("article h3 a.reference.internal")
    expect(links).to_have_count(len(lessons))
    assert [norm(t) for t in links.all_text_contents()] == [title_of(p) for p in lessons]
    assert [links.nth(i).get_attribute("href") for i in range(len(lessons))] == [f"{p.stem}.html" for p in lessons]
    page.screenshot(path=screenshots / "browser_site_front_page.png", full_page=True)
    for i, lesson in enumerate(lessons):
        with page.expect_navigation() as nav:
            page.locator("article h3 a.reference.internal").nth(i).click()
        assert nav.value is not None and nav.value.ok
        assert page.url == f"{site_url}{lesson.stem}.html"
        assert heading(page) == title_of(lesson)
        go(page, site_url)
    watch.check()


# ------------------------------------------------------------------ each lesson page


def expected_outputs(path: Path) -> list[dict]:
    """Per code cell with something to show on the web: its first text lines and picture count."""
    cells = []
    for cell in for_the_web(nbformat.read(path, as_version=4)).cells:
        if cell.cell_type != "code" or not cell.outputs:
            continue
        lines, pictures = [], 0
        for out in cell.outputs:
            text = out.get("text") if out.output_type == "stream" else out.get("data", {}).get("text/plain")
            if "image/png" in out.get("data", {}):
                pictures += 1
            elif text:
                lines.append(norm(next(line for line in text.splitlines() if line.strip())))
        cells.append(
            {
                "lines": lines,
                "pictures": pictures,
                "folded": "remove-input" in cell.metadata.get("tags", []),
                "source": cell.source,
            }
        )
    return cells


@pytest.mark.parametrize("stem", [p.stem for p in LESSONS])
def test_lesson_page_shows_its_outputs_pictures_and_quizzes(site_tab, site_url, site_lessons, stem, screenshots):
    page, watch = site_tab
    lesson = next(p for p in site_lessons if p.stem == stem)
    go(page, f"{site_url}{lesson.stem}.html")
    assert heading(page) == title_of(lesson)
    want = expected_outputs(lesson)
    outputs = page.locator("article div.cell_output")
    expect(outputs).to_have_count(len(want))
    texts = [norm(t) for t in outputs.evaluate_all("els => els.map(e => e.textContent)")]
    for i, (cell, shown) in enumerate(zip(want, texts)):
        for line in cell["lines"]:
            assert line in shown, f"output {i} of {lesson.name}: {line!r} not on the page"

    # Pictures: as many as stored, each actually loaded and decoded.
    pictures = page.locator("article div.cell_output img")
    expect(pictures).to_have_count(sum(c["pictures"] for c in want))
    for i in range(pictures.count()):
        picture = pictures.nth(i)
        picture.scroll_into_view_if_needed()
        expect(picture).to_be_visible()
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=picture.element_handle())
        assert picture.evaluate("img => img.naturalWidth") > 100

    # Quizzes (folded in JupyterLab): the plain-text form shows, the source (with the answers) does not.
    page_text = norm(page.locator("article").text_content())
    folded = [c for c in want if c["folded"]]
    for cell in folded:
        assert cell["lines"] and cell["lines"][0] in page_text
        assert norm(cell["source"].splitlines()[0]) not in page_text
    if any("Quiz(" in c["source"] for c in want):
        assert folded, f"{lesson.name}: a quiz cell that is not folded"
    # No widget boxes and no widget scripts: nothing on a static page can drive them.
    assert page.locator(WIDGET_BOXES).count() == 0
    assert not [t for t in WIDGET_TEXTS if t in page_text]

    page.screenshot(path=screenshots / f"browser_site_{lesson.stem}.png")
    watch.check()


# ------------------------------------------------------------------ links between lessons


def nav_links(path: Path) -> list[tuple[str, str]]:
    """(title, page stem) of the links in a lesson's navigation cell, as stored."""
    nb = nbformat.read(path, as_version=4)
    nav = [c for c in nb.cells if "nav" in c.get("metadata", {}).get("tags", [])]
    assert nav, f"{path.name} has no navigation cell"
    return NAV_LINK.findall(nav[-1].source)


def nav_paragraph(page: Page):
    return page.locator("article p").filter(has_text=re.compile(r"Previous:|Next:")).last


def test_navigation_cells_lead_through_the_course_and_back(site_tab, site_url, site_lessons):
    page, watch = site_tab
    lessons = site_lessons
    by_stem = {p.stem: p for p in lessons}
    go(page, f"{site_url}{lessons[0].stem}.html")
    # Forwards with every "Next" link, then backwards with every "Previous" link.
    for direction in ("Next", "Previous"):
        seen = []
        while True:
            here = lessons[[p.stem for p in lessons].index(page.url.rsplit("/", 1)[-1].removesuffix(".html"))]
            seen.append(here.stem)
            want = nav_links(here)
            links = nav_paragraph(page).locator("a")
            shown = [
                (norm(links.nth(i).text_content()), links.nth(i).get_attribute("href")) for i in range(links.count())
            ]
            assert shown == [(title, f"{stem}.html") for title, stem in want], here.name
            target = [
                (t, s) for t, s in want if (lessons.index(by_stem[s]) > lessons.index(here)) == (direction == "Next")
            ]
            if not target:
                break
            title, stem = target[0]
            with page.expect_navigation() as nav:
                nav_paragraph(page).locator("a", has_text=title).click()
            assert nav.value is not None and nav.value.ok
            assert heading(page) == title == title_of(by_stem[stem])
        order = [p.stem for p in lessons]
        assert seen == (order if direction == "Next" else order[::-1])
    watch.check()

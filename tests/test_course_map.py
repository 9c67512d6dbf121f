"""The course website's generated parts (tools/build_site.py), without building it: the front page
lists exactly the lessons on disk, the pages drop what needs a kernel, and the cloud set-ups
(binder/, .devcontainer/) point at things that exist. The built site is checked in Chromium by
tests/browser/test_site.py."""

from __future__ import annotations

import json
import re
import shutil
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

import build_site
from build_lessons import lesson_files, title_of

LESSON_HEADING = re.compile(r"^### \[(?P<title>[^\]]+)\]\((?P<file>[^)]+)\)$", re.MULTILINE)


def listed(front_page: str) -> list[tuple[str, str]]:
    return [(m["title"], m["file"]) for m in LESSON_HEADING.finditer(front_page)]


def test_front_page_lists_exactly_the_lessons_on_disk_in_order():
    lessons = lesson_files()
    assert lessons, "no lessons found"
    page = build_site.front_page(lessons)
    assert listed(page) == [(title_of(p), p.name) for p in lessons]
    assert sorted(p.name for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")) == [p.name for p in lessons]
    assert "{" not in page.split("## The lessons")[0], "a placeholder of site/front_page.md was left unfilled"


def test_each_lesson_card_says_what_the_learner_does():
    for path in lesson_files():
        card = build_site.lesson_card(path)
        first = nbformat.read(path, as_version=4).cells[0].source
        assert card.summary and card.summary.split()[0] in first
        assert card.goals, f"{path.name}: no 'By the end of this lesson you can' list found"
        for goal in card.goals:
            assert goal.split()[0] in first


def new_lesson(folder: Path, name: str, first_cell: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(first_cell), nbformat.v4.new_code_cell("1 + 1")]
    path = folder / name
    nbformat.write(nb, path)
    return path


def test_an_eighth_lesson_shows_up_without_touching_the_builder(tmp_path):
    for path in lesson_files():
        shutil.copy2(path, tmp_path / path.name)
    new_lesson(
        tmp_path,
        "08_zero_downtime.ipynb",
        "# Lesson 8 · Zero-downtime migrations\n\n*About 15 minutes.*\n\nDeploys that never lock a table.\n"
        "A second line of the same paragraph.\n\nBy the end of this lesson you can:\n\n"
        "- split a change into expand and contract steps,\n  across two deploys\n- add an index concurrently\n",
    )
    lessons = lesson_files(tmp_path)
    assert len(lessons) == len(lesson_files()) + 1
    page = build_site.front_page(lessons)
    assert listed(page)[-1] == ("Lesson 8 · Zero-downtime migrations", "08_zero_downtime.ipynb")
    assert (
        "### [Lesson 8 · Zero-downtime migrations](08_zero_downtime.ipynb)\n\n*About 15 minutes.*\n\n"
        "Deploys that never lock a table. A second line of the same paragraph."
    ) in page
    assert "- split a change into expand and contract steps, across two deploys\n- add an index concurrently" in page
    assert build_site.toc(lessons).splitlines()[-1] == "  - file: 08_zero_downtime"


def test_a_lesson_without_a_title_stops_the_build(tmp_path):
    path = new_lesson(tmp_path, "01_untitled.ipynb", "Just some text, no heading.")
    with pytest.raises(build_site.BuildError):
        build_site.lesson_card(path)


def test_toc_holds_every_lesson_in_order_after_the_front_page():
    lessons = lesson_files()
    lines = build_site.toc(lessons).splitlines()
    assert "root: index" in lines
    assert [line.removeprefix("  - file: ") for line in lines if line.startswith("  - file: ")] == [
        p.stem for p in lessons
    ]


def test_web_copy_hides_folded_quiz_sources_and_drops_widget_views():
    nb = nbformat.v4.new_notebook()
    quiz = nbformat.v4.new_code_cell("Quiz([...answers...])", metadata={"jupyter": {"source_hidden": True}})
    quiz.outputs = [
        nbformat.v4.new_output(
            "execute_result", data={"text/plain": "Quiz: 1 question", build_site.WIDGET_VIEW: {"model_id": "abc"}}
        )
    ]
    live = nbformat.v4.new_code_cell("slider")
    live.outputs = [nbformat.v4.new_output("display_data", data={build_site.WIDGET_VIEW: {"model_id": "x"}})]
    nb.cells = [quiz, live]
    nb.metadata["widgets"] = {"state": {}}
    web = build_site.for_the_web(nb)
    assert web.cells[0].metadata["tags"] == ["remove-input"]
    assert web.cells[0].outputs[0]["data"] == {"text/plain": "Quiz: 1 question"}
    assert web.cells[1].outputs == []
    assert "widgets" not in web.metadata
    assert build_site.WIDGET_VIEW in nb.cells[0].outputs[0]["data"], "the lesson itself must not change"


def test_stored_lessons_carry_no_widget_views_and_every_quiz_is_folded():
    for path in lesson_files():
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code" and "Quiz(" in cell.source:
                assert cell.metadata.get("jupyter", {}).get("source_hidden"), f"{path.name}: quiz not folded"
                assert any("text/plain" in o.get("data", {}) for o in cell.outputs), (
                    f"{path.name}: a quiz without its plain-text form"
                )


# ------------------------------------------------------------------ the cloud set-ups


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][a-z-]*):", (REPO / "Makefile").read_text(), re.MULTILINE))


def requires_python() -> tuple[int, int]:
    spec = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    major, minor = re.fullmatch(r">=\s*(\d+)\.(\d+)", spec).groups()
    return int(major), int(minor)


def test_devcontainer_sets_up_with_a_make_target_on_a_new_enough_python():
    conf = json.loads((REPO / ".devcontainer" / "devcontainer.json").read_text())
    target = re.fullmatch(r"make (\S+)", conf["postCreateCommand"]).group(1)
    assert target in make_targets()
    version = re.search(r"python:(?:\d+-)?(\d+)\.(\d+)", conf["image"]).groups()
    assert tuple(map(int, version)) >= requires_python()
    assert 8888 in conf["forwardPorts"]  # make lab's default PORT
    assert re.search(r"^PORT\s*\?=\s*8888$", (REPO / "Makefile").read_text(), re.MULTILINE)


def test_binder_installs_the_learners_pins_and_the_course_package():
    binder = REPO / "binder"
    version = re.fullmatch(r"python-(\d+)\.(\d+)\s*", (binder / "runtime.txt").read_text()).groups()
    assert tuple(map(int, version)) >= requires_python()
    includes = re.findall(r"^-r\s+(\S+)$", (binder / "requirements.txt").read_text(), re.MULTILINE)
    assert [(binder / inc).resolve() for inc in includes] == [REPO / "requirements.txt"]
    post_build = binder / "postBuild"
    assert post_build.stat().st_mode & 0o111, "postBuild must be executable"
    assert "pip install" in post_build.read_text() and "-e ." in post_build.read_text()
    # Binder needs nothing from apt for the lessons (bubblewrap is for grading only).
    assert not (binder / "apt.txt").exists()

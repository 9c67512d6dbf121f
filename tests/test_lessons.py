"""The lessons: they run, their stored outputs are current, and they have the shape a learner expects.

* every lesson runs top to bottom under nbval against its stored outputs
  (sanitized with tests/nbval_sanitize.cfg, never --nbval-lax);
* every lesson runs twice in a row in one kernel ("Run All" again) with the
  same checked output both times;
* the generated cells (setup, nav) and metadata are current;
* structure: H1, time estimate, goals, setup, practice checks, quiz, recap, nav, all eight lessons;
* practice cells (tag ``practice``) are stored without outputs, and an untouched one says "Not yet";
* quizzes: every quiz topic of the syllabus is asked somewhere, no question is asked twice
  across lessons, each quiz has scenario questions, and right answers are spread over positions;
* the quiz and practice machinery.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbval.plugin import get_sanitize_patterns

from miglab.lab.practice import verify
from miglab.lab.quiz import CORRECT, WRONG, Question, Quiz

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
BUILDER = ROOT / "tools" / "build_lessons.py"
SANITIZE = Path(__file__).resolve().parent / "nbval_sanitize.cfg"
PATTERNS = get_sanitize_patterns(SANITIZE.read_text())

EXPECTED = [
    "01_what_is_a_migration.ipynb",
    "02_plan_then_apply.ipynb",
    "03_the_migration_graph.ipynb",
    "04_data_migrations_runpython.ipynb",
    "05_escape_hatches.ipynb",
    "06_when_it_goes_wrong.ipynb",
    "07_wrap_up.ipynb",
    "08_migrations_in_production.ipynb",
]
LESSONS = sorted(p for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
IDS = [p.stem for p in LESSONS]
SKIPPED_MIMES = {"application/vnd.jupyter.widget-view+json", "image/png", "image/jpeg"}
MAX_OUTPUT_LINES = 60
PRACTICE = "practice"
MAX_SHARE_OF_ONE_POSITION = 0.4  # of a lesson's right answers


def read(path: Path):
    return nbformat.read(path, as_version=4)


def tags(cell) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def is_practice(cell) -> bool:
    return cell.cell_type == "code" and PRACTICE in tags(cell)


def sanitize(text: str) -> str:
    for regex, replace in PATTERNS:
        text = re.sub(regex, replace, text)
    return text


def checked_outputs(cell) -> list[tuple]:
    """What nbval compares in a cell's outputs, sanitized the same way."""
    found: list[tuple] = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            if found and found[-1][0] == f"stream:{out.name}":
                found[-1] = (found[-1][0], found[-1][1] + sanitize(out.text))
            else:
                found.append((f"stream:{out.name}", sanitize(out.text)))
        elif out.output_type == "error":
            found.append(("error", out.ename, sanitize(out.evalue)))
        else:
            for mime, value in sorted(out.get("data", {}).items()):
                if mime not in SKIPPED_MIMES:
                    found.append((mime, sanitize(value if isinstance(value, str) else str(value))))
    return found


def output_text(cell) -> str:
    return "\n".join(str(t[-1]) for t in checked_outputs(cell))


@pytest.fixture
def lab_env(tmp_path, monkeypatch):
    """Labs of a test run live in their own folder, so parallel runs never share one."""
    monkeypatch.setenv("MIGLAB_WORKDIR", str(tmp_path / "labs"))
    return tmp_path


# --------------------------------------------------------------- the course as a whole


def test_all_eight_lessons_exist_in_order():
    assert [p.name for p in LESSONS] == EXPECTED


def test_generated_cells_are_current():
    done = subprocess.run([sys.executable, str(BUILDER), "--check"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


QUIZ_TOPICS = {
    # topic: (the prompt mentions one of these, the right choice mentions one of these)
    "what makemigrations does": (r"\bmakemigrations\b", r"\bfiles?\b"),
    "what migrate does": (r"(?<![\w-])migrate\b(?! --fake)", r"\bappl(y|ies)\b|\bruns?\b"),
    "what dependencies point at": (r"\bdependencies\b", r"\bfirst\b|\bbefore\b|must"),
    "how Django decides the order": (r"\border\b", r"topolog"),
    "which operation transforms rows": (r"\brows?\b|\bdata\b", r"\bRunPython\b"),
    "how a data migration gets a model": (r"\bmodel\b", r"apps\.get_model"),
    "what --fake does": (r"--fake\b(?!-)", r"without|\bnot\b|\bmarks?\b"),
    "which command prints SQL only": (r"\bSQL\b", r"\bsqlmigrate\b"),
    "whether migration files are committed": (r"\bcommit|version control|\bgit\b", r"^yes|\balways\b"),
    "how to resolve two leaf migrations": (r"\bleaf|\bleaves\b|\bbranch|conflict", r"--merge\b"),
}


def quiz_questions(path: Path) -> list[tuple[str, list[str], int]]:
    """(prompt, choices, answer) of every literal Question(...) in the lesson's code cells."""
    found = []
    for cell in read(path).cells:
        if cell.cell_type != "code" or "Question(" not in cell.source:
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Question":
                q = Question(
                    *[ast.literal_eval(a) for a in node.args],
                    **{k.arg: ast.literal_eval(k.value) for k in node.keywords},
                )
                found.append((q.prompt, list(q.choices), q.answer))
    return found


@pytest.mark.parametrize("topic", list(QUIZ_TOPICS))
def test_every_syllabus_quiz_topic_is_asked(topic):
    prompt_re, right_re = QUIZ_TOPICS[topic]
    asked = [q for p in LESSONS for q in quiz_questions(p)]
    matches = [q for q in asked if re.search(prompt_re, q[0], re.I) and re.search(right_re, q[1][q[2]], re.I)]
    assert matches, f"no lesson quiz asks {topic!r} (with the right choice saying so)"


STOP_WORDS = set(
    [
        "a",
        "an",
        "the",
        "of",
        "in",
        "on",
        "to",
        "for",
        "and",
        "or",
        "is",
        "are",
        "was",
        "be",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "with",
        "by",
        "from",
        "as",
        "at",
        "what",
        "which",
        "who",
        "how",
        "does",
        "do",
        "did",
        "you",
        "your",
        "i",
        "we",
        "can",
        "will",
        "would",
        "should",
        "into",
        "than",
        "then",
        "when",
        "there",
        "their",
        "them",
        "they",
        "not",
        "no",
        "python",
        "manage",
        "py",
    ]
)


def words(text: str) -> set[str]:
    """The words that carry a text's meaning: lower case, no stop words, a plural 's' dropped."""
    found = {w for w in re.findall(r"[a-z0-9_]+", text.lower()) if w not in STOP_WORDS}
    return {w[:-1] if len(w) > 3 and w.endswith("s") else w for w in found}


def overlap(a: str, b: str) -> float:
    wa, wb = words(a), words(b)
    return len(wa & wb) / max(1, len(wa | wb))


def repeated_questions(lessons: dict[str, list[tuple[str, list[str], int]]]) -> list[str]:
    """Pairs of questions from different lessons that ask the same thing: the same prompt in other
    words (half of the meaningful words shared), or the same right answer (six words in ten)."""
    found = []
    asked = [(lesson, q) for lesson, qs in lessons.items() for q in qs]
    for i, (la, a) in enumerate(asked):
        for lb, b in asked[i + 1 :]:
            if la == lb:
                continue
            same_prompt = overlap(a[0], b[0]) >= 0.5
            same_answer = overlap(a[1][a[2]], b[1][b[2]]) >= 0.6
            if same_prompt or same_answer:
                found.append(f"{la}: {a[0]!r} / {lb}: {b[0]!r}")
    return found


def crowded_positions(questions: list[tuple[str, list[str], int]]) -> dict[str, int]:
    """Answer letters that hold more than 40% of a quiz's right answers, with their counts."""
    counts: dict[int, int] = {}
    for _, _, answer in questions:
        counts[answer] = counts.get(answer, 0) + 1
    return {chr(ord("a") + k): n for k, n in counts.items() if n > MAX_SHARE_OF_ONE_POSITION * len(questions)}


def is_scenario(prompt: str) -> bool:
    """A prompt that sets a situation first, then asks: at least one sentence before the question."""
    return prompt.rstrip().endswith("?") and len(re.findall(r"[.!?](?=\s)", prompt)) >= 1


def topic_lessons(lessons: dict[str, list[tuple[str, list[str], int]]], topic: str) -> list[str]:
    """The lessons whose quiz asks a syllabus topic (see QUIZ_TOPICS)."""
    prompt_re, right_re = QUIZ_TOPICS[topic]
    return [
        lesson
        for lesson, qs in lessons.items()
        if any(re.search(prompt_re, q[0], re.I) and re.search(right_re, q[1][q[2]], re.I) for q in qs)
    ]


def test_no_quiz_question_is_repeated_across_lessons():
    lessons = {p.stem: quiz_questions(p) for p in LESSONS}
    repeats = repeated_questions(lessons)
    repeats += [
        f"{topic!r} in {', '.join(where)}" for topic in QUIZ_TOPICS if len(where := topic_lessons(lessons, topic)) > 1
    ]
    assert not repeats, "asked in two lessons:\n" + "\n".join(repeats)


@pytest.mark.parametrize("path", LESSONS, ids=IDS)
def test_right_answers_are_spread_over_the_positions(path):
    questions = quiz_questions(path)
    assert len(questions) >= 5, "a lesson quiz asks at least five questions"
    crowded = crowded_positions(questions)
    assert not crowded, f"too many right answers at {crowded} of {len(questions)} questions"


@pytest.mark.parametrize("path", LESSONS, ids=IDS)
def test_each_quiz_has_at_least_two_scenario_questions(path):
    scenarios = [q[0] for q in quiz_questions(path) if is_scenario(q[0])]
    assert len(scenarios) >= 2, f"only {len(scenarios)} question(s) set a situation before asking"


def test_the_quiz_rules_catch_what_they_are_for():
    """The checks above on made-up quizzes: a reworded repeat, a shared right answer, a crowded letter."""
    q = lambda prompt, right, answer=0: (prompt, [right, "x", "y", "z"][:4], answer)
    assert repeated_questions(
        {
            "one": [q("Which command prints the SQL of a migration without applying it?", "sqlmigrate")],
            "two": [q("Which command shows a migration's SQL without applying it?", "sqlmigrate app name")],
        }
    )
    assert repeated_questions(
        {
            "one": [q("What does an entry in dependencies point at?", "A migration that must run before this one")],
            "two": [q("In a migration file, what does the list name?", "The migrations that must run before this one")],
        }
    )
    assert not repeated_questions(
        {
            "one": [q("What does makemigrations write?", "Python files describing model changes")],
            "two": [q("What does --fake record?", "A row in django_migrations, without running SQL")],
        }
    )
    assert crowded_positions([q("a?", "r", 1)] * 3 + [q("b?", "r", 0)] * 2) == {"b": 3}
    assert crowded_positions([q("a?", "r", k) for k in (0, 1, 2, 3, 0)]) == {}
    assert is_scenario("You edited an applied migration. What happens next?")
    assert not is_scenario("What does migrate do?")


# --------------------------------------------------------------- each lesson


@pytest.mark.parametrize("path", LESSONS, ids=IDS)
def test_lesson_structure(path):
    nb = read(path)
    cells = nb.cells
    number = int(path.name[:2])
    first = cells[0]
    assert first.cell_type == "markdown"
    m = re.match(r"# Lesson (\d+) · \S", first.source)
    assert m and int(m.group(1)) == number, f"cell 0 must start with '# Lesson {number} · Title'"
    assert re.search(r"^\*About \d+ minutes\.\*$", first.source, re.M), (
        "say near the top about how long the lesson takes: *About N minutes.*"
    )
    assert "By the end of this lesson" in first.source
    assert len(re.findall(r"^\s*[-*] ", first.source, re.M)) >= 3, "list what the learner will be able to do"
    assert cells[1].cell_type == "code" and tags(cells[1]) == ["setup"]
    assert f'lab = Lab("{path.stem}")' in cells[1].source
    assert cells[-1].cell_type == "markdown" and tags(cells[-1]) == ["nav"]
    assert sum("setup" in tags(c) for c in cells) == 1 and sum("nav" in tags(c) for c in cells) == 1

    code = [c for c in cells if c.cell_type == "code"]
    quiz = [c for c in code if "Quiz(" in c.source]
    assert quiz, "a lesson ends with a quiz"
    assert all(c.metadata.get("jupyter", {}).get("source_hidden") for c in quiz), (
        "a quiz cell's code (which holds the answers) is folded in JupyterLab"
    )
    assert all(re.match(r"[^\n]*\bquiz: \d+ questions? \(run this cell", output_text(c), re.I) for c in quiz), (
        "the quiz must be its cell's last expression"
    )
    assert any(is_practice(c) and "verify(" in c.source for c in code), "a practice cell with a visible check"
    recap = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and re.search(r"\brecap\b", c.source, re.I)]
    assert recap and recap[-1] >= len(cells) - 3, "a short recap comes right before the navigation"
    assert max(i for i, c in enumerate(cells) if c in quiz) < recap[-1], "the recap follows the quiz"


@pytest.mark.parametrize("path", LESSONS, ids=IDS)
def test_stored_outputs_are_clean_and_readable(path):
    """Stored by the builder: every code cell ran, no errors, no walls of plumbing."""
    nb = read(path)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or is_practice(cell):
            continue
        assert cell.execution_count is not None, f"cell {i} has no stored output: build the lesson"
        assert "execution" not in cell.metadata, f"cell {i} stores timings"
        for out in cell.outputs:
            assert out.output_type != "error", f"cell {i} stored an error: {out.get('ename')}"
            assert not set(out.get("data", {})) & {"application/vnd.jupyter.widget-view+json"}, (
                f"cell {i} stores a widget id that points at nothing"
            )
        raw = "\n".join(
            out.get("text", "") + "".join(v for v in out.get("data", {}).values() if isinstance(v, str))
            for out in cell.outputs
        )
        # A lab error folded to its last line is fine; a stack of frames is plumbing.
        assert not re.search(r'^\s*File "[^"]+", line \d+', raw, re.M), f"cell {i} prints traceback frames"
        assert not re.search(r"site-packages|/work/|/home/|/tmp/| object at 0x", raw), (
            f"cell {i} prints machine details (paths, addresses):\n{raw[:500]}"
        )
        assert raw.count("\n") <= MAX_OUTPUT_LINES, f"cell {i} prints {raw.count(chr(10))} lines: a wall"
    assert "widgets" not in nb.metadata


@pytest.mark.parametrize("path", LESSONS, ids=IDS)
def test_practice_cells_are_stored_without_outputs(path):
    """A practice or predict-first cell must not give its answer away in the stored lesson."""
    cells = read(path).cells
    practice = [i for i, c in enumerate(cells) if is_practice(c)]
    assert practice, "a lesson has practice cells"
    for i in practice:
        assert cells[i].outputs == [] and cells[i].execution_count is None, (
            f"practice cell {i} is stored with outputs: build the lesson"
        )
        assert "verify(" in cells[i].source, f"practice cell {i} has no visible check"
    for i, c in enumerate(cells):
        if c.cell_type == "code" and ("verify(" in c.source or "✏️" in c.source):
            assert is_practice(c), f"cell {i} asks the learner for something: tag it {PRACTICE!r}"


@pytest.mark.slow
@pytest.mark.parametrize("path", LESSONS, ids=IDS)
def test_lesson_passes_nbval(path, lab_env):
    """`pytest --nbval` re-runs the lesson in a fresh kernel and compares every output."""
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "--nbval",
        "--nbval-current-env",
        "--nbval-sanitize-with",
        str(SANITIZE),
        "-p",
        "no:cacheprovider",
        "-o",
        "addopts=",
        "-q",
        "--rootdir",
        str(ROOT),
        str(path),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    code_cells = sum(c.cell_type == "code" for c in read(path).cells)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert re.search(rf"\b{code_cells} passed\b", done.stdout), done.stdout[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("path", LESSONS, ids=IDS)
def test_lesson_runs_twice_in_a_row_with_the_same_output(path, lab_env):
    """Run All, then Run All again in the same kernel: both match the stored outputs."""
    stored = read(path)
    want = [checked_outputs(c) for c in stored.cells if c.cell_type == "code"]
    nb = read(path)
    client = NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
        record_timing=False,
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
    )
    runs = []
    with client.setup_kernel():
        for _ in range(2):
            for i, cell in enumerate(nb.cells):
                if cell.cell_type == "code":
                    cell.outputs = []
                    client.execute_cell(cell, i)
            runs.append([checked_outputs(c) for c in nb.cells if c.cell_type == "code"])
    practice = [is_practice(c) for c in stored.cells if c.cell_type == "code"]
    for n, got in enumerate(runs, 1):
        for k, (g, w) in enumerate(zip(got, want)):
            if practice[k]:
                # Stored empty; untouched, it runs without an error and every check says "Not yet".
                text = "\n".join(str(t[-1]) for t in g)
                assert not any(t[0] == "error" for t in g), f"run {n}, practice cell {k} raised: {text}"
                assert "✗ Not yet" in text and "✓ " not in text, (
                    f"run {n}, practice cell {k}: an untouched practice cell must say 'Not yet':\n{text}"
                )
            else:
                assert g == w, f"run {n}, code cell {k}: output differs from the stored one"


def test_a_cycle_message_is_compared_whatever_order_it_names_the_migrations_in():
    """Lesson 3 prints Django's CircularDependencyError; the order of its names depends on the hash seed."""
    one = sanitize("CircularDependencyError: library.0001_initial, loans.0001_initial\n")
    other = sanitize("CircularDependencyError: loans.0001_initial, library.0001_initial\n")
    assert one == other == "CircularDependencyError: <the migrations on the loop>\n"
    assert sanitize("exit status: 1\n") == "exit status: 1\n"


# --------------------------------------------------------------- the builder


@pytest.mark.slow
def test_builder_check_catches_stale_navigation_and_fixes_it_idempotently(tmp_path, lab_env):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    for name, title in [("01_first.ipynb", "Lesson 1 · First"), ("02_second.ipynb", "Lesson 2 · Second")]:
        nb = nbformat.v4.new_notebook(
            cells=[
                nbformat.v4.new_markdown_cell(f"# {title}\n\nBy the end of this lesson you can:\n- a\n- b\n- c"),
                nbformat.v4.new_code_cell("1 + 1"),
            ]
        )
        nbformat.write(nb, folder / name)
    paths = sorted(folder.glob("*.ipynb"))
    run = lambda *a: subprocess.run(
        [sys.executable, str(BUILDER), *a, *map(str, paths)], capture_output=True, text=True, cwd=ROOT
    )
    assert run("--check").returncode == 1
    assert run().returncode == 0
    first = read(paths[0])
    assert tags(first.cells[1]) == ["setup"] and 'Lab("01_first")' in first.cells[1].source
    assert first.cells[-1].source.endswith("Next: [Lesson 2 · Second](02_second.ipynb) →")
    assert first.cells[2].outputs[0]["data"]["text/plain"] == "2"
    snapshot = [p.read_bytes() for p in paths]
    checked = run("--check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert run().returncode == 0 and [p.read_bytes() for p in paths] == snapshot, "a second build changed files"

    # A new lesson makes the neighbour's navigation stale; --no-execute repairs it without running.
    nb = read(paths[1])
    nb.cells[0].source = nb.cells[0].source.replace("Second", "Second, renamed")
    nbformat.write(nb, paths[1])
    assert run("--check").returncode == 1
    assert run("--no-execute").returncode == 0
    assert "Second, renamed" in read(paths[0]).cells[-1].source
    assert run("--check").returncode == 0


@pytest.mark.slow
def test_builder_runs_practice_cells_but_stores_them_without_outputs(tmp_path, lab_env):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    path = folder / "01_practice.ipynb"
    practice = nbformat.v4.new_code_cell('answer = None  # ✏️\nprint("ran", answer)')
    practice.metadata["tags"] = [PRACTICE]
    nbformat.write(
        nbformat.v4.new_notebook(
            cells=[
                nbformat.v4.new_markdown_cell("# Lesson 1 · Practice"),
                practice,
                nbformat.v4.new_code_cell("answer"),  # the practice cell really ran before this one
            ]
        ),
        path,
    )
    run = lambda *a: subprocess.run(
        [sys.executable, str(BUILDER), *a, str(path)], capture_output=True, text=True, cwd=ROOT
    )
    assert run().returncode == 0
    cells = read(path).cells
    assert tags(cells[2]) == [PRACTICE] and cells[2].outputs == [] and cells[2].execution_count is None
    assert cells[3].execution_count is not None and cells[3].outputs == [], "None shows no result"
    checked = run("--check")
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # A practice cell saved with an output (say, from JupyterLab) is stale; --no-execute clears it.
    nb = read(path)
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", name="stdout", text="ran 0001_initial\n")]
    nb.cells[2].execution_count = 4
    nbformat.write(nb, path)
    stale = run("--check")
    assert stale.returncode == 1 and "practice cells [2] store outputs" in stale.stdout
    assert run("--no-execute").returncode == 0 and read(path).cells[2].outputs == []


@pytest.mark.slow  # several seconds: left out of make test-fast's quick loop
def test_builder_refuses_to_save_a_lesson_whose_cell_fails(tmp_path, lab_env):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    path = folder / "01_broken.ipynb"
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("# Lesson 1 · Broken"),
            nbformat.v4.new_code_cell("1 / 0"),
        ]
    )
    nbformat.write(nb, path)
    before = path.read_bytes()
    done = subprocess.run([sys.executable, str(BUILDER), str(path)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 1
    assert "a cell failed, so the notebook was not saved" in done.stderr and "ZeroDivisionError" in done.stderr
    assert path.read_bytes() == before


def test_builder_explains_a_lesson_without_a_title(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    path = folder / "01_untitled.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")]), path)
    done = subprocess.run([sys.executable, str(BUILDER), "--check", str(path)], capture_output=True, text=True)
    assert done.returncode == 1 and "first cell must be markdown" in done.stderr


# --------------------------------------------------------------- quiz and practice machinery


def make_quiz() -> Quiz:
    return Quiz(
        [
            Question(
                "Which file does makemigrations write?",
                ["a table", "a Python file", "nothing"],
                answer=1,
                why="It records the change as code.",
                hints={0: "Tables come later."},
            ),
            Question("Is 2 even?", ["yes", "no"], answer=0, why="It divides by two."),
        ]
    )


def test_quiz_answer_gives_right_and_wrong_feedback_with_the_reason():
    quiz = make_quiz()
    right = quiz.answer(0, 1)
    assert right.startswith(CORRECT) and "It records the change as code." in right
    wrong = quiz.answer(0, 0)
    assert wrong.startswith(WRONG) and "Tables come later." in wrong and "It records the change as code." in wrong
    assert "divides by two" not in wrong, "feedback must not talk about another question"
    assert quiz.answer(0, 2).startswith(WRONG)
    assert "Pick one" in quiz.answer(1, None)
    assert quiz.score == 0  # question 0 was last answered wrong, question 1 not at all
    quiz.answer(1, 0)
    assert quiz.score == 1


def test_quiz_check_button_runs_the_same_logic_as_answer():
    quiz = make_quiz()
    question_boxes = [c for c in quiz.children if "miglab-quiz-question" in c._dom_classes]
    assert len(question_boxes) == 2 and "miglab-quiz" in quiz._dom_classes
    _, radio, row, feedback = question_boxes[0].children
    button = row.children[0]
    assert "miglab-quiz-check" in button._dom_classes and "miglab-quiz-feedback" in feedback._dom_classes
    button.click()
    assert "Pick one" in feedback.value
    radio.value = 1
    button.click()
    assert CORRECT in feedback.value and quiz.results == [True, None]
    radio.value = 2
    button.click()
    assert WRONG in feedback.value and quiz.results == [False, None]


def test_quiz_text_form_lists_questions_and_choices_but_no_answers():
    quiz = make_quiz()
    text = quiz._repr_mimebundle_()["text/plain"]
    assert text == repr(quiz)
    assert text.splitlines() == [
        "Quiz: 2 questions (run this cell in JupyterLab to answer them)",
        "1. Which file does makemigrations write?",
        "   a) a table",
        "   b) a Python file",
        "   c) nothing",
        "2. Is 2 even?",
        "   a) yes",
        "   b) no",
    ]
    assert "records the change" not in text and "answer" not in text.lower().replace("answer them", "")


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(prompt="Q", choices=["only one"], answer=0), "at least two choices"),
        (dict(prompt="Q", choices=["a", "b"], answer=2), "answer must be the index"),
        (dict(prompt="Q", choices=["a", "a"], answer=0), "same text"),
        (dict(prompt="", choices=["a", "b"], answer=0), "needs a prompt"),
        (dict(prompt="Q", choices=["a", "b"], answer=0, hints={0: "x"}), "hints are for wrong choices"),
    ],
)
def test_a_badly_written_question_is_refused_with_a_clear_error(bad, message):
    with pytest.raises(ValueError, match=message):
        Question(**bad)


def test_quiz_rejects_a_question_number_that_does_not_exist():
    with pytest.raises(IndexError, match="questions 0 to 1"):
        make_quiz().answer(5, 0)
    with pytest.raises(ValueError, match="Question"):
        Quiz([])


def test_check_prints_a_tick_or_a_hint_and_never_raises(capsys):
    assert verify(2 + 2 == 4, "arithmetic works") == True  # noqa: E712
    assert capsys.readouterr().out == "✓ arithmetic works\n"
    assert verify(None, "filled in", hint="replace None") == False  # noqa: E712
    assert capsys.readouterr().out == "✗ Not yet: replace None\n"
    answer = None
    assert not verify(lambda: answer.lower() == "yes", "right", hint="type yes")
    out = capsys.readouterr().out
    assert out.startswith("✗ Not yet: type yes (AttributeError:")
    assert not verify(lambda: 1 / 0, "never")
    assert capsys.readouterr().out.startswith("✗ Not yet: ZeroDivisionError")
    assert bool(verify(lambda: [1], "a non-empty list counts")) is True

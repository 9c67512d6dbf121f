"""Multiple-choice quizzes with instant feedback, for the end of each lesson.

In a lesson::

    Quiz([
        Question("What does makemigrations write?",
                 ["SQL tables", "Python files describing model changes", "Nothing"],
                 answer=1,
                 why="It compares models.py with the migration files and records the difference."),
    ])

As the last expression of a cell this shows, per question, radio buttons, a
"Check" button and a feedback line that says whether the pick is right and
why. Outside a live kernel (a saved notebook, a test run) it shows as plain
text: the questions and their choices, never the answers.

Tests drive exactly the logic the button uses: ``quiz.answer(0, 1)`` returns
the feedback text the learner would see.
"""

from __future__ import annotations

import html
import string
from dataclasses import dataclass

import ipywidgets as widgets

CORRECT = "Correct"
WRONG = "Not quite"
NO_PICK = "Pick one of the choices first, then press Check."

LETTERS = string.ascii_lowercase


@dataclass(frozen=True)
class Question:
    """One multiple-choice question.

    ``answer`` is the index of the right choice in ``choices``; ``why`` is the
    reason, shown after every check. ``hints`` optionally maps a wrong choice's
    index to a nudge about that particular mistake.
    """

    prompt: str
    choices: list[str] | tuple[str, ...]
    answer: int
    why: str = ""
    hints: dict[int, str] | None = None

    def __post_init__(self):
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise ValueError("a Question needs a prompt (a non-empty string)")
        choices = tuple(self.choices)
        if len(choices) < 2 or not all(isinstance(c, str) and c.strip() for c in choices):
            raise ValueError(f"question {self.prompt!r}: give at least two choices, each a non-empty string")
        if len(choices) > len(LETTERS):
            raise ValueError(f"question {self.prompt!r}: at most {len(LETTERS)} choices")
        if len(set(choices)) != len(choices):
            raise ValueError(f"question {self.prompt!r}: two choices have the same text")
        object.__setattr__(self, "choices", choices)
        if isinstance(self.answer, bool) or not isinstance(self.answer, int) or not 0 <= self.answer < len(choices):
            raise ValueError(
                f"question {self.prompt!r}: answer must be the index of the right choice, "
                f"0 to {len(choices) - 1} (got {self.answer!r})"
            )
        for i in self.hints or {}:
            if not (isinstance(i, int) and 0 <= i < len(choices)) or i == self.answer:
                raise ValueError(f"question {self.prompt!r}: hints are for wrong choices; {i!r} is not one")

    def feedback(self, choice: int | None) -> str:
        """What the learner sees after picking ``choice`` (an index, or None for no pick)."""
        if choice is None:
            return NO_PICK
        if isinstance(choice, bool) or not isinstance(choice, int) or not 0 <= choice < len(self.choices):
            raise ValueError(f"choice must be an index from 0 to {len(self.choices) - 1}, got {choice!r}")
        why = f" {self.why.strip()}" if self.why.strip() else ""
        if choice == self.answer:
            return f"{CORRECT}!{why}"
        hint = (self.hints or {}).get(choice, "")
        hint = f" {hint.strip()}" if hint.strip() else ""
        return f"{WRONG}: “{self.choices[choice]}” is not the right answer.{hint}{why}"


class Quiz(widgets.VBox):
    """A column of questions, each with radio buttons, a Check button and feedback."""

    def __init__(self, questions: list[Question], title: str = "Quiz"):
        questions = list(questions)
        if not questions or not all(isinstance(q, Question) for q in questions):
            raise ValueError("Quiz takes a non-empty list of Question(...) objects")
        self.questions = questions
        self.title = title
        self.results: list[bool | None] = [None] * len(questions)
        self._choices: list[widgets.RadioButtons] = []
        self._feedback: list[widgets.HTML] = []
        self._score = widgets.HTML(self._score_html())
        self._score.add_class("miglab-quiz-score")
        boxes = [widgets.HTML(f"<h3>{html.escape(title)}</h3>")]
        for i, q in enumerate(questions):
            boxes.append(self._question_box(i, q))
        boxes.append(self._score)
        super().__init__(boxes)
        self.add_class("miglab-quiz")

    def _question_box(self, i: int, q: Question) -> widgets.VBox:
        prompt = widgets.HTML(f"<b>{i + 1}. {html.escape(q.prompt)}</b>")
        prompt.add_class("miglab-quiz-prompt")
        choices = widgets.RadioButtons(
            options=[(c, k) for k, c in enumerate(q.choices)],
            value=None,
            layout=widgets.Layout(width="auto"),
        )
        choices.add_class("miglab-quiz-choices")
        button = widgets.Button(description="Check", button_style="primary")
        button.add_class("miglab-quiz-check")
        feedback = widgets.HTML("")
        feedback.add_class("miglab-quiz-feedback")
        button.on_click(lambda _button, i=i: self._on_check(i))
        self._choices.append(choices)
        self._feedback.append(feedback)
        box = widgets.VBox([prompt, choices, widgets.HBox([button]), feedback])
        box.add_class("miglab-quiz-question")
        return box

    # ---- the logic (the Check button calls this; tests call it directly)

    def answer(self, i: int, choice: int | None) -> str:
        """Check ``choice`` (an index into question ``i``'s choices) and return the feedback text."""
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(self.questions):
            raise IndexError(f"this quiz has questions 0 to {len(self.questions) - 1}, not {i!r}")
        q = self.questions[i]
        text = q.feedback(choice)
        if choice is not None:
            self.results[i] = choice == q.answer
        colour = {True: "#1a7f37", False: "#b35900", None: "#555"}[self.results[i] if choice is not None else None]
        self._feedback[i].value = f'<span style="color:{colour}">{html.escape(text)}</span>'
        self._score.value = self._score_html()
        return text

    def _on_check(self, i: int) -> None:
        self.answer(i, self._choices[i].value)

    @property
    def score(self) -> int:
        """How many questions were last answered correctly."""
        return sum(r is True for r in self.results)

    def _score_html(self) -> str:
        checked = sum(r is not None for r in self.results)
        if not checked:
            return "<i>Pick an answer and press Check: feedback appears under each question.</i>"
        return f"<i>Right so far: {self.score} of {len(self.questions)}.</i>"

    # ---- how it shows where there is no live widget (saved notebooks, tests)

    def __repr__(self) -> str:
        lines = [
            f"{self.title}: {len(self.questions)} question{'s' if len(self.questions) != 1 else ''}"
            " (run this cell in JupyterLab to answer them)"
        ]
        for i, q in enumerate(self.questions):
            lines.append(f"{i + 1}. {q.prompt}")
            lines += [f"   {LETTERS[k]}) {c}" for k, c in enumerate(q.choices)]
        return "\n".join(lines)

    def _repr_mimebundle_(self, **kwargs):
        bundle = super()._repr_mimebundle_(**kwargs) or {}
        bundle["text/plain"] = repr(self)  # the whole text: ipywidgets cuts it at 110 characters
        return bundle

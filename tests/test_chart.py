"""The grading chart (miglab/grading/chart.py): its numbers exactly, and a real PNG, quickly."""

from __future__ import annotations

import struct
import time

import pytest

from miglab.grading.chart import QuestionSummary, question_summary, total_histogram, write_chart

# A class of four: q_easy everyone gets; q_hard nobody gets fully; q_mid and q_tie are equally hard
# on average, but q_tie has fewer students at full marks, so it counts as harder; q_free is worth
# nothing and is left out; bob has no score at all for q_mid (counts as 0).
QUESTIONS = ["q_easy", "q_mid", "q_hard", "q_tie", "q_free"]
MAX = {"q_easy": 1, "q_mid": 2, "q_hard": 4, "q_tie": 2, "q_free": 0, "total": 9}
SCORES = {
    "ann": {"q_easy": 1, "q_mid": 2, "q_hard": 3, "q_tie": 1},
    "bob": {"q_easy": 1, "q_hard": 1, "q_tie": 1},
    "cid": {"q_easy": 1, "q_mid": 2, "q_hard": 0, "q_tie": 1},
    "dee": {"q_easy": 1, "q_mid": 0, "q_hard": 2, "q_tie": 1},
}


def rows_of(scores: dict[str, dict[str, float]]) -> list[dict]:
    return [
        {"student_id": s, **{q: float(v) for q, v in qs.items()}, "total": float(sum(qs.values()))}
        for s, qs in scores.items()
    ]


def test_summary_is_hardest_first_with_exact_means_and_full_shares():
    got = question_summary(QUESTIONS, rows_of(SCORES), MAX)
    assert got == [
        QuestionSummary("q_hard", max_score=4, mean=1.5, mean_share=0.375, full_share=0.0, students=4),
        QuestionSummary("q_tie", max_score=2, mean=1.0, mean_share=0.5, full_share=0.0, students=4),
        QuestionSummary("q_mid", max_score=2, mean=1.0, mean_share=0.5, full_share=0.5, students=4),
        QuestionSummary("q_easy", max_score=1, mean=1.0, mean_share=1.0, full_share=1.0, students=4),
    ]
    assert [s.level for s in got] == ["hard", "so-so", "so-so", "fine"]


def test_equal_questions_keep_the_notebook_order():
    rows = rows_of({"ann": {"a": 1, "b": 1, "c": 1}, "bob": {"a": 0, "b": 0, "c": 0}})
    got = question_summary(["c", "a", "b"], rows, {"a": 1, "b": 1, "c": 1})
    assert [s.question for s in got] == ["c", "a", "b"]


def test_question_without_a_maximum_is_out_of_the_best_score_and_empty_class_is_all_zero():
    rows = rows_of({"ann": {"x": 3}, "bob": {"x": 1}})
    assert question_summary(["x"], rows, {}) == [
        QuestionSummary("x", max_score=3, mean=2.0, mean_share=2 / 3, full_share=0.5, students=2)
    ]
    assert question_summary(["x"], [], {"x": 2}) == [
        QuestionSummary("x", max_score=2, mean=0.0, mean_share=0.0, full_share=0.0, students=0)
    ]


def test_total_histogram_bands_cover_zero_to_full_marks():
    edges, counts = total_histogram([0, 4.5, 5, 46, 47, 47], 47)
    assert edges == [0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50]
    assert counts == [2, 1, 0, 0, 0, 0, 0, 0, 0, 3]
    assert total_histogram([3, 3], 3) == ([0, 1, 2, 3], [0, 0, 2])  # full marks in the last band


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR", "not a PNG"
    return struct.unpack(">II", data[16:24])


def big_class(n_students: int = 50, n_questions: int = 40) -> tuple[list[str], list[dict], dict]:
    questions = [f"question_{i:02d}" for i in range(n_questions)]
    max_scores = {q: 1 + i % 3 for i, q in enumerate(questions)}
    rows = []
    for s in range(n_students):
        row = {q: float((s * 7 + i * 3) % (max_scores[q] + 1)) for i, q in enumerate(questions)}
        row["total"] = sum(row.values())
        rows.append(row)
    max_scores["total"] = sum(max_scores.values())
    return questions, rows, max_scores


def test_chart_is_one_png_of_sensible_size_drawn_in_under_a_second(tmp_path):
    questions, rows, max_scores = big_class()
    write_chart(tmp_path / "warm.png", questions[:2], rows[:2], max_scores, "warm-up")  # imports matplotlib
    start = time.perf_counter()
    path = write_chart(tmp_path / "reports" / "scores.png", questions, rows, max_scores, "deep_dive: 50 students")
    took = time.perf_counter() - start
    assert path == tmp_path / "reports" / "scores.png"
    data = path.read_bytes()
    width, height = png_size(data)
    # One figure, wide enough for labels, bars and the histogram; tall enough for 40 rows of 8 pt labels.
    assert 900 <= width <= 1600 and 900 <= height <= 1600, (width, height)
    assert 20_000 < len(data) < 1_000_000
    assert sorted(p.name for p in path.parent.iterdir()) == ["scores.png"]  # no temporary file left
    assert took < 1.0, f"write_chart took {took:.2f} s for 50 students x 40 questions"


@pytest.mark.parametrize("n_students", [0, 1])
def test_chart_of_a_tiny_class(tmp_path, n_students):
    questions, rows, max_scores = big_class(n_students, 3)
    width, height = png_size(write_chart(tmp_path / "s.png", questions, rows, max_scores, "tiny").read_bytes())
    assert width > 600 and height >= 400

"""The class at a glance: one chart of which questions were hard, beside the spread of totals.

Left: one horizontal bar per question, the class's mean score as a share of that question's
points, hardest at the top, each with the share of students who got full marks. Right: how many
students reached each band of the total. The numbers come from :func:`question_summary`, a pure
function (the tests check it exactly); :func:`write_chart` only draws them.
"""

from __future__ import annotations

import itertools
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

# Below these shares of the points a bar is drawn as "hard" (red) or "so-so" (amber).
HARD, SO_SO = 0.5, 0.8
COLOURS = {"hard": "#c44e52", "so-so": "#dd8452", "fine": "#4c72b0"}
FULL_EPS = 1e-9  # a score within this of the maximum counts as full marks
READING = (
    "How to read it: a bar is the class's mean score on\n"
    "a question, as a share of its points (red: under 50%,\n"
    "amber: under 80%); 'full' is the share of students\n"
    "who got all its points. The histogram counts the\n"
    "students in each band of the total; the black line\n"
    "is the class's mean total."
)


@dataclass(frozen=True)
class QuestionSummary:
    question: str
    max_score: float
    mean: float  # the class's mean points
    mean_share: float  # mean / max_score, 0..1
    full_share: float  # share of students with full marks, 0..1
    students: int

    @property
    def level(self) -> str:
        return "hard" if self.mean_share < HARD else "so-so" if self.mean_share < SO_SO else "fine"


def _max_of(question: str, rows: list[dict], max_scores: dict[str, float]) -> float:
    if question in max_scores:
        return float(max_scores[question])
    return max((float(r.get(question, 0.0) or 0.0) for r in rows), default=0.0)


def question_summary(questions: list[str], rows: list[dict], max_scores: dict[str, float]) -> list[QuestionSummary]:
    """One summary per question worth points, hardest first.

    Hardest = lowest mean share of the points; ties go to the lower share of full marks, then
    to the question's place in ``questions``. A missing score counts as 0; a question missing from
    ``max_scores`` is out of the best score anyone got; questions worth no points are left out.
    """
    n = len(rows)
    out = []
    for question in questions:
        top = _max_of(question, rows, max_scores)
        if top <= 0:
            continue
        scores = [float(r.get(question, 0.0) or 0.0) for r in rows]
        mean = sum(scores) / n if n else 0.0
        full = sum(1 for s in scores if s >= top - FULL_EPS)
        out.append(
            QuestionSummary(
                question=question,
                max_score=top,
                mean=mean,
                mean_share=mean / top,
                full_share=full / n if n else 0.0,
                students=n,
            )
        )
    order = {q: i for i, q in enumerate(questions)}
    return sorted(out, key=lambda s: (s.mean_share, s.full_share, order[s.question]))


def total_histogram(totals: list[float], max_total: float, bins: int = 10) -> tuple[list[float], list[int]]:
    """(band edges, students per band) for the totals: about ``bins`` bands of whole points (at
    least one point wide) from 0 until the maximum is covered. A band holds [left, right); the
    last one also its right edge, and any total above it."""
    if max_total <= 0:
        edges = [0.0, 1.0]
    else:
        width = max(1, math.ceil(max_total / bins))
        edges = [float(width * i) for i in range(max(1, math.ceil(max_total / width)) + 1)]
    counts = [0] * (len(edges) - 1)
    for t in totals:
        counts[next((k for k in range(len(counts)) if t < edges[k + 1]), len(counts) - 1)] += 1
    return edges, counts


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def write_chart(path: Path, questions: list[str], rows: list[dict], max_scores: dict[str, float], title: str) -> Path:
    """Draw the chart as a PNG at ``path`` (written whole or not at all); return ``path``."""
    from .reports import pyplot  # the one place that picks the file-only Agg backend

    plt = pyplot()
    summary = question_summary(questions, rows, max_scores)
    max_total = float(max_scores.get("total", sum(s.max_score for s in summary)))
    totals = [float(r.get("total", 0.0) or 0.0) for r in rows]
    layout = _Layout(summary)
    fig = plt.figure(figsize=(layout.width, layout.height))
    _question_bars(fig.add_axes(layout.bars), summary, bool(rows))
    _totals(fig.add_axes(layout.histogram), totals, max_total)
    fig.text(*layout.reading, READING, fontsize=8, va="top", ha="left", color="#444444", linespacing=1.5)
    fig.suptitle(title, fontsize=11, x=0.2 / layout.width, ha="left", y=1 - 0.2 / layout.height, va="top")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return path


class _Layout:
    """Fixed sizes in inches (no tight_layout: measuring text costs most of a second for 40 labels)."""

    def __init__(self, summary: list) -> None:
        n_q = max(len(summary), 1)
        label_w = 0.4 + 0.068 * max((len(f"{s.question} ({s.max_score:g} pt)") for s in summary), default=8)
        bar_w, gap, hist_w, right = 4.6, 1.25, 3.6, 0.3
        top_in, bottom_in, bars_h, hist_h, reading_h = 0.95, 0.65, max(1.2, 0.24 * n_q), 3.0, 1.2
        self.height = h = top_in + max(bars_h, hist_h + 0.7 + reading_h) + bottom_in
        self.width = w = label_w + bar_w + gap + hist_w + right
        self.bars = (label_w / w, 1 - (top_in + bars_h) / h, bar_w / w, bars_h / h)
        self.histogram = ((label_w + bar_w + gap) / w, 1 - (top_in + hist_h) / h, hist_w / w, hist_h / h)
        self.reading = ((label_w + bar_w + gap) / w, 1 - (top_in + hist_h + 0.75) / h)


def _question_bars(ax, summary: list, any_rows: bool) -> None:
    """Mean share per question, hardest on top, with the share at full marks beside each bar."""
    ys = list(range(len(summary)))
    ax.barh(ys, [s.mean_share for s in summary], height=0.7, color=[COLOURS[s.level] for s in summary])
    ax.set_yticks(ys, [f"{s.question} ({s.max_score:g} pt)" for s in summary], fontsize=8)
    ax.set_ylim(len(summary) - 0.5, -0.5)
    ax.set_xlim(0, 1)
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1], ["0", "25%", "50%", "75%", "100%"], fontsize=8)
    ax.grid(axis="x", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    ax.set_xlabel("class mean, as a share of the question's points", fontsize=8)
    for y, s in zip(ys, summary):
        inside = s.mean_share > 0.85  # near 100% the label goes inside the bar, clear of the "full" column
        ax.text(
            s.mean_share + (-0.01 if inside else 0.01),
            y,
            _pct(s.mean_share),
            va="center",
            ha="right" if inside else "left",
            fontsize=7,
            color="white" if inside else "#555555",
        )
        ax.text(
            1.02,
            y,
            f"{_pct(s.full_share)} full",
            va="center",
            ha="left",
            fontsize=7.5,
            transform=ax.get_yaxis_transform(),
            color="#333333",
        )
    ax.text(1.02, 1.005, "at full\nmarks", va="bottom", ha="left", fontsize=7, color="#666666", transform=ax.transAxes)
    ax.set_title("Hardest questions first", fontsize=10, loc="left")
    if not any_rows:
        ax.text(0.5, 0.5, "no students", transform=ax.transAxes, ha="center", va="center", fontsize=12)


def _totals(hx, totals: list[float], max_total: float) -> None:
    """The distribution of totals, the mean marked."""
    edges, counts = total_histogram(totals, max_total)
    hx.bar(
        [(a + b) / 2 for a, b in itertools.pairwise(edges)], counts, width=(edges[1] - edges[0]) * 0.92, color="#8172b2"
    )
    hx.set_xlim(0, edges[-1])
    hx.set_xlabel(f"total points (of {max_total:g})", fontsize=8)
    hx.set_ylabel("students", fontsize=8)
    hx.tick_params(labelsize=8)
    hx.yaxis.get_major_locator().set_params(integer=True)
    if totals:
        mean = sum(totals) / len(totals)
        hx.axvline(mean, color="#222222", linewidth=1.2)
        hx.set_title(
            f"Totals: mean {mean:.1f}, median {statistics.median(totals):g} (of {max_total:g})", fontsize=10, loc="left"
        )
    else:
        hx.set_title("Totals", fontsize=10, loc="left")

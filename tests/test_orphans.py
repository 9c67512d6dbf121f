"""No process of the grading command outlives it, even when it is killed with SIGKILL.

The coordinator is killed the hard way while its pool's fork server, workers,
sandboxed kernels and judge sandboxes are all busy; a few seconds later none
of the processes that descended from it is alive, and a rerun finishes the
class with the same grades as a run that was never interrupted.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from test_grading import grade_command, gradebook_scores, make_course

from miglab.grading.lms import import_submissions

pytestmark = [pytest.mark.slow, pytest.mark.sandbox]


def descendants(pid: int) -> set[int]:
    """Every process whose chain of parents reaches ``pid`` (read from /proc)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pids: set[int]) -> set[int]:
    out = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                    out.add(pid)
        except OSError:
            continue
    return out


def test_a_coordinator_killed_with_sigkill_leaves_no_process_behind(tmp_path):
    downloads, expected = make_course(tmp_path)
    import_submissions(downloads, tmp_path, "tiny")
    slow = tmp_path / "submitted" / "slowpoke" / "tiny"
    slow.mkdir(parents=True)
    (slow / "tiny.ipynb").write_bytes((tmp_path / "submitted" / "infinite_loop" / "tiny" / "tiny.ipynb").read_bytes())
    cmd = grade_command(tmp_path, "-j", "2")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    seen: set[int] = set()
    deadline = time.time() + 120
    kernels = False
    while time.time() < deadline and proc.poll() is None:
        tree = descendants(proc.pid)
        seen |= tree
        kernels = kernels or any(_cmdline(p).count("miglab.sandbox.kernel") for p in tree)
        if kernels and _recorded(tmp_path) >= 2:
            break
        time.sleep(0.1)
    assert proc.poll() is None and kernels, "the run should be killed while kernels run"
    seen |= descendants(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    end = time.time() + 10
    while alive(seen) and time.time() < end:
        time.sleep(0.2)
    left = {pid: _cmdline(pid)[:120] for pid in alive(seen)}
    assert left == {}, left
    # the rerun finishes the class with the grades an uninterrupted run gives
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    book = gradebook_scores(tmp_path)
    assert {k: v for k, v in book.items() if k != "slowpoke"} == {k: v["scores"] for k, v in expected.items()}


def _recorded(course: Path) -> int:
    try:
        with sqlite3.connect(course / "gradebook.db") as con:
            return con.execute("SELECT COUNT(*) FROM miglab_results").fetchone()[0]
    except sqlite3.Error:
        return 0


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""

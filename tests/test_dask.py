"""Grading on Dask distributed, for real: a LocalCluster of worker processes (no threads, no dashboard).

The same per-submission work as the local pool runs on Dask workers, which
get every submission and its assignment as bytes; results come back as
plain data and the coordinator alone writes the course and the gradebook.

* the tiny class and the sample class grade to their exact expected scores
  and statuses (the ones the local pool must give: tests/test_grading.py);
* the hostile corpus grades to the same scores and statuses on the cluster
  as in the local pool, in the same test;
* a worker process killed with SIGKILL while it grades loses nothing: its
  students are graded elsewhere, once each, with the same grades, and
  nothing it started (kernel launchers, sandboxes) outlives it;
* the command line's ``--dask ADDRESS`` grades a class on a cluster it did
  not start, and refuses when a worker cannot isolate.

Every cluster started here is closed by its fixture: tests/conftest.py fails
the session if a nanny, worker or scheduler outlives it.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from test_grading import LIMITS, SAMPLE_CLASS, grade_command, gradebook_scores, make_course
from test_orphans import _cmdline, alive, descendants

from miglab.grading import TimeLimits, grade_assignment, model
from miglab.grading.cluster import DaskExecutor
from miglab.grading.coordinator import default_kernel
from miglab.grading.gradebook import check_integrity
from miglab.grading.lms import import_submissions
from miglab.grading.pool import stop_fork_server

pytestmark = [pytest.mark.slow, pytest.mark.sandbox, pytest.mark.timeout(1800)]
PY = sys.executable


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40) as lc,
        Client(lc) as client,
    ):
        yield lc, client
    # The cluster's worker processes were started through multiprocessing, whose resource tracker
    # (a child of this process) outlives them: ended here, as the pool ends its own.
    stop_fork_server()


@pytest.fixture
def executor(cluster):
    ex = DaskExecutor(cluster[1])
    yield ex
    for fut in ex._assignments.values():
        fut.release()


def outcomes(summary) -> dict:
    """{student: (status, {grade id: score})} of a grading run."""
    return {r.student_id: (r.status, {s.grade_id: s.score for s in r.scores}) for r in summary.results}


def expected_outcomes(expected: dict) -> dict:
    return {k: (v["status"], v["scores"]) for k, v in expected.items()}


def results_rows(course: Path) -> list[str]:
    with sqlite3.connect(course / "gradebook.db") as con:
        return [r[0] for r in con.execute("SELECT student FROM miglab_results")]


def submitted_rows(course: Path) -> list[str]:
    with sqlite3.connect(course / "gradebook.db") as con:
        return [r[0] for r in con.execute("SELECT student_id FROM submitted_assignment")]


def test_the_tiny_class_grades_on_the_cluster_to_the_exact_expected_results(tmp_path, executor):
    downloads, expected = make_course(tmp_path)
    import_submissions(downloads, tmp_path, "tiny")
    summary = grade_assignment(
        tmp_path, "tiny", executor=executor, limits=LIMITS, kernel=default_kernel(), progress=False
    )
    assert summary.workers == 2
    assert outcomes(summary) == expected_outcomes(expected)
    assert gradebook_scores(tmp_path) == {k: v["scores"] for k, v in expected.items()}
    assert sorted(results_rows(tmp_path)) == sorted(expected)
    assert check_integrity(f"sqlite:///{tmp_path / 'gradebook.db'}", "tinycourse", "tiny", tmp_path) == []


def test_the_sample_class_grades_on_the_cluster_to_the_exact_expected_scores(tmp_path, executor):
    from miglab.grading.cli import make_sample_course

    course = make_sample_course(SAMPLE_CLASS, tmp_path / "course")
    expected = json.loads((SAMPLE_CLASS / "expected.json").read_text())
    summary = grade_assignment(
        course,
        "deep_dive",
        executor=executor,
        limits=TimeLimits(cell_timeout=10, interrupt_grace=3),
        kernel=default_kernel(),
        progress=False,
    )
    assert outcomes(summary) == expected_outcomes(expected)
    assert {r.student_id for r in summary.results if r.judged} == {
        k for k, v in expected.items() if v["status"] != "malformed"
    }
    assert check_integrity(f"sqlite:///{course / 'gradebook.db'}", "migrations-deep-dive", "deep_dive", course) == []
    assert sorted(results_rows(course)) == sorted(expected)


@pytest.mark.slow
def test_the_hostile_corpus_grades_on_the_cluster_as_in_the_local_pool(tmp_path, executor, hostile_class):
    """Every attack of tests/submissions/hostile/, beside honest students, graded on the cluster with the
    limits the command line used for tests/test_hostile.py's run: each student gets the same status
    and scores as that run on the local pool."""
    import test_hostile as hostile

    students = hostile_class["students"]
    course = tmp_path / "dask"
    hostile.write_course(course, students)
    limits = TimeLimits(cell_timeout=hostile.HOSTILE_CELL_TIMEOUT, wall=hostile.HOSTILE_WALL)
    summary = grade_assignment(
        course, "deep_dive", executor=executor, workers=2, limits=limits, kernel=default_kernel(), progress=False
    )
    runs = {
        "dask": outcomes(summary),
        "pool": {k: (hostile_class["statuses"][k], v) for k, v in hostile_class["scores"].items()},
    }
    assert hostile.scores(course, students) == {k: v[1] for k, v in runs["dask"].items()}
    assert sorted(results_rows(course)) == sorted(students)
    # The memory bomb fills 4 GiB before Python's MemoryError ends its cell: on a loaded machine that
    # can take past the 10 s cell limit, so its status is 'ok' or 'timeout' by load (its scores are not).
    load_dependent = {"hostile_memory_bomb": {model.OK, model.TIMEOUT}}
    for student, allowed in load_dependent.items():
        assert {runs["dask"][student][0], runs["pool"][student][0]} <= allowed, student
        for where in runs:
            runs[where][student] = ("ok or timeout", runs[where][student][1])
    assert runs["dask"] == runs["pool"]
    blank = runs["dask"]["blank"][1]
    assert set(blank.values()) == {0.0} and set(runs["dask"]["perfect"][1].values()) != {0.0}
    for attack in hostile.ATTACKS:
        assert runs["dask"][f"hostile_{attack}"][1] == blank, attack


# ------------------------------------------------------------------ a worker killed mid-run


def _worker_pids(client) -> dict[str, int]:
    return client.run(os.getpid)


def _kill_a_busy_worker(client, killed: list, stop: threading.Event) -> None:
    """Once a worker has been grading a student for a second with a kernel running, SIGKILL its process."""
    busy_since: dict[str, float] = {}
    while not stop.is_set():
        pids = _worker_pids(client)
        for addr, keys in client.processing().items():
            grading = [k for k in keys if str(k).startswith("grade-")]
            if not grading:
                busy_since.pop(addr, None)
                continue
            busy_since.setdefault(addr, time.monotonic())
            tree = descendants(pids[addr]) if addr in pids else set()
            if time.monotonic() - busy_since[addr] > 1.0 and any("miglab.sandbox.kernel" in _cmdline(p) for p in tree):
                os.kill(pids[addr], signal.SIGKILL)
                killed.append((addr, pids[addr], tree))
                return
        time.sleep(0.1)


def test_a_worker_killed_mid_run_loses_nothing(tmp_path, cluster, executor):
    client = cluster[1]
    downloads, expected = make_course(tmp_path)
    import_submissions(downloads, tmp_path, "tiny")
    killed: list = []
    stop = threading.Event()
    killer = threading.Thread(target=_kill_a_busy_worker, args=(client, killed, stop), daemon=True)
    killer.start()
    try:
        summary = grade_assignment(
            tmp_path, "tiny", executor=executor, limits=LIMITS, kernel=default_kernel(), progress=False
        )
    finally:
        stop.set()
        killer.join(30)
    assert killed, "a worker should have been killed while it graded"
    [(_, pid, tree)] = killed
    assert len(summary.results) == len(expected)  # each student once
    assert outcomes(summary) == expected_outcomes(expected)
    assert gradebook_scores(tmp_path) == {k: v["scores"] for k, v in expected.items()}
    assert sorted(results_rows(tmp_path)) == sorted(expected)  # no duplicate rows
    assert sorted(submitted_rows(tmp_path)) == sorted(expected)
    # nothing the killed worker started outlives it (its kernel launcher notices within a second)
    end = time.monotonic() + 15
    while alive(tree | {pid}) and time.monotonic() < end:
        time.sleep(0.2)
    assert {p: _state(p) for p in alive(tree | {pid})} == {}
    client.wait_for_workers(2, timeout=60)  # the nanny started a new worker process


def _state(pid: int) -> str:
    """A process's command line, parent, state and where it waits: for a failure's message."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        wchan = Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return "gone"
    return f"{_cmdline(pid)[:100]} (parent {fields[1]}, state {fields[0]}, waiting in {wchan})"


# --------------------------------------------------------------------------- the command line


def test_the_command_line_grades_on_a_cluster_it_did_not_start(tmp_path, cluster):
    lc = cluster[0]
    downloads, expected = make_course(tmp_path)
    import_submissions(downloads, tmp_path, "tiny")
    done = subprocess.run(
        grade_command(tmp_path, "--dask", lc.scheduler_address),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0 and "with 2 workers" in done.stdout, done.stdout + done.stderr[-3000:]
    assert gradebook_scores(tmp_path) == {k: v["scores"] for k, v in expected.items()}

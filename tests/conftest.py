"""Shared fixtures, markers, and a last check: the test suite leaves no process behind.

Every process the suite starts inherits ``MIGLAB_TEST_SESSION`` (a value
unique to this run). When the session ends, any such process still alive a
few seconds later (a grading pool's fork server, a worker, a kernel
launcher, a lab helper) fails the run, with its command line.
"""

import asyncio
import os
import time
import uuid

import pytest

from miglab import Lab

SESSION = f"tests-{uuid.uuid4().hex[:12]}"
os.environ["MIGLAB_TEST_SESSION"] = SESSION
GRACE = 15.0  # seconds a process may take to notice its parent is gone


@pytest.fixture(scope="session")
def hostile_class(tmp_path_factory):
    """The hostile corpus graded once for the session (tests/test_hostile.py, compared in test_dask.py)."""
    import test_hostile

    return test_hostile.grade_the_corpus(tmp_path_factory)


@pytest.fixture
def lab_root(tmp_path):
    return tmp_path / "labs"


@pytest.fixture
def lab(lab_root):
    return Lab("t", root=lab_root)


def _ours() -> dict[int, str]:
    """Processes of this test session still alive (not zombies), but this one."""
    found = {}
    marker = f"MIGLAB_TEST_SESSION={SESSION}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if marker not in f.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                found[int(entry)] = f.read().replace(b"\0", b" ").decode(errors="replace")[:160]
        except OSError:
            continue
    return found


def pytest_sessionfinish(session, exitstatus):
    if not os.path.isdir("/proc"):
        return
    # A server that nothing uses any more (the lab's PostgreSQL) is stopped by its own reaper; the
    # lab's fork-server helpers end when this process's pipes close, which is only at exit: close them.
    from miglab.lab import runner

    if runner._server is not None:
        runner._server.close()
    end = time.monotonic() + GRACE
    left = _ours()
    while left and time.monotonic() < end:
        time.sleep(0.5)
        left = _ours()
    left = {pid: cmd for pid, cmd in left.items() if "postgres" not in cmd}  # its server and reaper
    if left:
        lines = "\n".join(f"  {pid}: {cmd}" for pid, cmd in sorted(left.items()))
        session.config.get_terminal_writer().line(f"\nprocesses left behind by the tests:\n{lines}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(autouse=True)
def _no_event_loop_left_running(request):
    """Playwright's sync API runs an event loop in the main thread while a browser is open; left open
    past tests/browser, it makes Django refuse every database call of later tests as "async"."""
    if "browser" not in request.node.path.parts:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            pytest.fail("an event loop is running in the main thread (a browser fixture outlived tests/browser)")

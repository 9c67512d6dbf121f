"""Fixtures for the end-to-end browser tests.

They start a real JupyterLab on a throwaway copy of the course (lessons are
stored with outputs, so the browser must never save over the tracked files)
and drive it with Playwright in Debian's headless Chromium. Chromium is
installed by tools/install_browser.sh when it is missing; if that fails the
tests fail (they never skip). Servers, kernels and the lab's helper processes
are stopped at the end, also when a test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
INSTALLER = REPO / "tools" / "install_browser.sh"
SCREENSHOTS = REPO / ".screenshots"
# What the course needs to run and to be graded, copied into the server's root.
COURSE_PARTS = ("notebooks", "release", "source", "nbgrader_config.py", "grader_config.py")
# This machine has no internet: Chromium must not try to phone home, and gets a fresh profile.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERVER_START_TIMEOUT = 60


# ------------------------------------------------------------------ chromium

_install_failure: list[str] = []  # tried once per session, not once per test


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium, installed on first use. Fails (never skips) if it cannot be had."""
    if not CHROMIUM.exists() and not _install_failure:
        try:
            proc = subprocess.run(["bash", str(INSTALLER)], capture_output=True, text=True)
            detail = f"exit {proc.returncode}):\n{proc.stderr.strip()}"
        except OSError as err:
            detail = f"could not run it: {err})"
        if not CHROMIUM.exists():
            _install_failure.append(detail)
    if _install_failure:
        pytest.fail(
            "Chromium is needed for the browser tests and could not be installed "
            f"(tools/install_browser.sh {_install_failure[0]}",
            pytrace=False,
        )
    return CHROMIUM


# ------------------------------------------------------------------ the course copy


@pytest.fixture(scope="module")
def course_root(tmp_path_factory) -> Path:
    """A throwaway copy of the course: running cells and nbgrader write only here."""
    root = tmp_path_factory.mktemp("course")
    for part in COURSE_PARTS:
        src = REPO / part
        if src.is_dir():
            shutil.copytree(src, root / part, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        elif src.is_file():
            shutil.copy2(src, root / part)
    return root


# ------------------------------------------------------------------ jupyterlab


@dataclass
class Server:
    url: str  # http://127.0.0.1:<port>/
    token: str
    root: Path
    log: Path
    config_dir: Path

    @contextlib.contextmanager
    def extensions_disabled(self, *names: str):
        """Pages loaded inside this block come without these lab extensions (JupyterLab reads
        labconfig/page_config.json on every page load): for showing that the checks notice."""
        page_config = self.config_dir / "labconfig" / "page_config.json"
        page_config.parent.mkdir(parents=True, exist_ok=True)
        page_config.write_text(json.dumps({"disabledExtensions": {name: True for name in names}}))
        try:
            yield
        finally:
            page_config.unlink()

    def lab_url(self, path: str = "") -> str:
        return f"{self.url}lab/tree/{path}?token={self.token}"

    def page_url(self, path: str) -> str:
        return f"{self.url}{path.lstrip('/')}?token={self.token}"

    def api(self, path: str, method: str = "GET") -> tuple[int, dict | list | None]:
        req = urllib.request.Request(
            f"{self.url}api/{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                body = resp.read()
                return resp.status, (json.loads(body) if body else None)
        except urllib.error.HTTPError as err:
            return err.code, None

    def stop_kernels(self) -> None:
        """End every kernel session, so the next notebook opened starts a fresh kernel."""
        status, sessions = self.api("sessions")
        assert status == 200, f"GET /api/sessions answered {status}"
        for session in sessions or []:
            self.api(f"sessions/{session['id']}", method="DELETE")

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pids_with_marker(marker: str) -> list[int]:
    """Processes whose environment carries this run's marker: the server, its kernels and
    everything they started (kernels and the lab's fork server run in sessions of their own,
    so a process-group kill would miss them)."""
    needle = f"MIGLAB_BROWSER_RUN={marker}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            env = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in env.split(b"\0"):
            pids.append(int(entry.name))
    return pids


def _stop(proc: subprocess.Popen, server: Server | None, marker: str) -> None:
    if server is not None and proc.poll() is None:
        try:
            server.api("shutdown", method="POST")  # stops kernels too
        except OSError:
            pass  # not answering: terminated below
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    deadline = time.monotonic() + 5
    while (left := _pids_with_marker(marker)) and time.monotonic() < deadline:
        for pid in left:
            try:
                os.kill(pid, signal.SIGTERM if time.monotonic() < deadline - 2 else signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.2)


@pytest.fixture(scope="module")
def jupyter(course_root, tmp_path_factory) -> Server:
    """JupyterLab (with nbgrader's extensions, as installed) serving the course copy on localhost."""
    home = tmp_path_factory.mktemp("jupyter_home")
    port, token, marker = _free_port(), secrets.token_hex(16), secrets.token_hex(8)
    env = dict(os.environ)
    env.update(
        # A clean Jupyter: no user settings, workspaces or kernelspecs from ~/.jupyter.
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        MIGLAB_WORKDIR=str(home / "labs"),  # the lessons' scratch Django projects
        MIGLAB_BROWSER_RUN=marker,
        # nbgrader runs `alembic` by name when it creates the gradebook.
        PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        PYTHONUNBUFFERED="1",
    )
    # No "get notified about Jupyter news?" prompt (and no fetching it: there is no internet here).
    notification = home / "config" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True)
    (notification / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    log = home / "jupyter.log"
    jupyter_bin = Path(sys.executable).with_name("jupyter")
    cmd = [
        str(jupyter_bin),
        "lab",
        "--no-browser",
        "--allow-root",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--port-retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={course_root}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=course_root, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    server = Server(url=f"http://127.0.0.1:{port}/", token=token, root=course_root, log=log, config_dir=home / "config")
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"JupyterLab exited with status {proc.returncode} while starting:\n{server.log_tail()}",
                    pytrace=False,
                )
            try:
                if server.api("status")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"JupyterLab did not answer within {SERVER_START_TIMEOUT} s:\n{server.log_tail()}", pytrace=False
                )
            time.sleep(0.2)
        yield server
    finally:
        _stop(proc, server, marker)


# ------------------------------------------------------------------ the browser


@pytest.fixture(scope="module")
def browser_context(chromium, tmp_path_factory):
    """Headless Debian Chromium with a fresh profile, driven by Playwright."""
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium_profile")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(chromium),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        context.set_default_timeout(30_000)
        try:
            yield context
        finally:
            context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture
def page(browser_context, request):
    """A new tab. If the test fails, what the tab showed is saved as .screenshots/browser_FAILED_<test>.png."""
    from playwright.sync_api import Error as PlaywrightError

    tab = browser_context.new_page()
    yield tab
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        SCREENSHOTS.mkdir(exist_ok=True)
        shot = SCREENSHOTS / f"browser_FAILED_{request.node.name}.png"
        # Best effort: the page may be gone or time out, or the file be unwritable; the test's own error
        # matters more, so these are only reported.
        try:
            tab.screenshot(path=shot)
            print(f"screenshot of the failure: {shot}")
        except (PlaywrightError, OSError) as err:
            print(f"no screenshot of the failure: {err}")
    tab.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """Where the pictures for a human go (git-ignored); the path is printed in the test summary."""
    SCREENSHOTS.mkdir(exist_ok=True)
    for old in SCREENSHOTS.glob("browser_*.png"):
        old.unlink()
    _taken.append(True)
    return SCREENSHOTS


_taken: list[bool] = []  # set once this session's browser tests take pictures


def pytest_terminal_summary(terminalreporter):
    shots = sorted(SCREENSHOTS.glob("browser_*.png")) if _taken and SCREENSHOTS.is_dir() else []
    if shots:
        terminalreporter.write_line(f"browser screenshots ({len(shots)}): {SCREENSHOTS}/")

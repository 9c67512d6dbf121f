"""Run ``python manage.py ...`` fast, with the real behaviour of a fresh process.

A cold ``python manage.py`` spends most of its half second importing Django.
The :class:`ForkServer` pays that once: it starts a helper process that imports
Django's modules (but nothing of any project), then forks one child per
command. The child is a brand-new process as far as the project is concerned:
it changes into the project folder, runs the project's real ``manage.py`` as
``__main__``, imports settings, models and migration files from disk, and
exits with Django's own exit status. Nothing a command imports survives it.

Set ``MIGLAB_FORK=0`` to run every command as a plain subprocess instead.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

# Modules that import without settings and make up most of a command's start-up.
PRELOAD = (
    "django.core.management",
    "django.core.management.base",
    "django.core.checks",
    "django.db.models",
    "django.db.migrations.autodetector",
    "django.db.migrations.executor",
    "django.db.migrations.loader",
    "django.db.migrations.writer",
    "django.db.migrations.questioner",
    "django.db.backends.sqlite3.base",
    "django.db.backends.sqlite3.schema",
    "django.core.management.commands.migrate",
    "django.core.management.commands.makemigrations",
    "django.core.management.commands.showmigrations",
    "django.core.management.commands.sqlmigrate",
    "django.core.management.commands.squashmigrations",
    "django.core.management.commands.shell",
)


@dataclass
class ProcessResult:
    """What one command did: its exit status and everything it printed."""

    returncode: int
    stdout: str
    stderr: str
    timed_out: bool = False


def command_env(extra: dict | None = None) -> dict:
    """The environment of a manage.py command: ours, minus anything that asks for colour
    (a Jupyter kernel sets FORCE_COLOR), so output reads the same in a notebook and a test."""
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "CLICOLOR_FORCE", "DJANGO_SETTINGS_MODULE")}
    env.update({"NO_COLOR": "1", "PYTHON_COLORS": "0", "PYTHONHASHSEED": "0"})
    env.update(extra or {})
    return env


def fork_enabled() -> bool:
    return os.environ.get("MIGLAB_FORK", "1") != "0" and hasattr(os, "fork")


def run_subprocess(cwd: Path, argv: list[str], stdin: str | None, env: dict, timeout: float) -> ProcessResult:
    """The plain way: a new interpreter for every command."""
    try:
        p = subprocess.run(
            [sys.executable, *argv],
            cwd=cwd,
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            env=command_env(env),
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
        return ProcessResult(-9, out, err, timed_out=True)
    return ProcessResult(p.returncode, p.stdout, p.stderr)


class ForkServer:
    """Client side: owns one warm helper process and sends it commands."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def _ensure(self) -> subprocess.Popen:
        if self._proc is None or self._proc.poll() is not None:
            env = command_env()
            self._proc = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__)],  # by path: no package import
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
                start_new_session=True,  # a notebook interrupt does not kill it
            )
        return self._proc

    def run(self, cwd: Path, argv: list[str], stdin: str | None, env: dict, timeout: float) -> ProcessResult:
        with self._lock, tempfile.TemporaryDirectory(prefix="miglab-run-") as tmp:
            files = {name: os.path.join(tmp, name) for name in ("stdin", "stdout", "stderr", "modules")}
            Path(files["stdin"]).write_text(stdin or "")
            Path(files["stdout"]).touch()
            Path(files["stderr"]).touch()
            request = {"cwd": str(cwd), "argv": argv, "env": env, "timeout": timeout, **files}
            for _attempt in (1, 2):
                proc = self._ensure()
                try:
                    proc.stdin.write(json.dumps(request) + "\n")
                    proc.stdin.flush()
                    line = proc.stdout.readline()
                except (BrokenPipeError, OSError):
                    line = ""
                if line:
                    break
                self.close()  # the helper died: start a new one and retry once
            else:
                return run_subprocess(cwd, argv, stdin, env, timeout)
            reply = json.loads(line)
            read = lambda n: Path(files[n]).read_text(errors="replace")
            return ProcessResult(reply["returncode"], read("stdout"), read("stderr"), reply["timed_out"])

    def close(self) -> None:
        if self._proc is not None:
            try:
                self._proc.kill()
                self._proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired) as exc:  # already gone, or stuck: forget it
                print(f"miglab: the lab's helper did not stop cleanly ({exc})", file=sys.stderr)
            self._proc = None


_server: ForkServer | None = None


def run_manage(
    cwd: Path, args: list[str], stdin: str | None = None, env: dict | None = None, timeout: float = 120
) -> ProcessResult:
    """Run ``python manage.py *args`` in ``cwd`` and return what happened."""
    global _server
    argv = ["manage.py", *args]
    env = dict(env or {})
    if not fork_enabled():
        return run_subprocess(cwd, argv, stdin, env, timeout)
    if _server is None:
        _server = ForkServer()
    return _server.run(cwd, argv, stdin, env, timeout)


# ---------------------------------------------------------------- server side


def _child(req: dict) -> None:
    """In the forked child: become ``python manage.py ...`` and never return."""
    import io
    import runpy

    code = 1
    try:
        os.setsid()
        for fd, name, flags in ((0, "stdin", os.O_RDONLY), (1, "stdout", os.O_WRONLY), (2, "stderr", os.O_WRONLY)):
            f = os.open(req[name], flags)
            os.dup2(f, fd)
            os.close(f)
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", line_buffering=True)
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8", line_buffering=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.chdir(req["cwd"])
        os.environ.update(req["env"])
        if sys.flags.safe_path:  # nothing was put first for us: put the project first
            sys.path.insert(0, req["cwd"])
        else:
            sys.path[0] = req["cwd"]
        sys.argv = list(req["argv"])
        try:
            runpy.run_path(req["argv"][0], run_name="__main__")
            code = 0
        except SystemExit as e:
            if e.code is None:
                code = 0
            elif isinstance(e.code, int):
                code = e.code
            else:
                print(e.code, file=sys.stderr)
                code = 1
        except BaseException as e:  # noqa: BLE001 - the child is manage.py: it reports anything, as Python would
            import traceback

            # Print it as `python manage.py` would: from manage.py down, without our frames.
            tb = e.__traceback__
            while tb is not None and tb.tb_frame.f_code.co_filename in (__file__, "<frozen runpy>"):
                tb = tb.tb_next
            traceback.print_exception(type(e), e, tb)
            code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            _report_library_modules(req.get("modules"))
        finally:
            os._exit(code)


_LIBRARY_DIRS = tuple({os.path.realpath(p) + os.sep for p in (sys.prefix, sys.base_prefix)})


_baseline: set[str] = set()  # every module the server has imported


def _report_library_modules(path: str | None) -> None:
    """Tell the server which library modules (Django, stdlib; never the project's) this command
    imported that the server has not."""
    if not path:
        return
    new = []
    for name in set(sys.modules) - _baseline:
        file = getattr(sys.modules.get(name), "__file__", None)
        if file and os.path.realpath(file).startswith(_LIBRARY_DIRS):
            new.append(name)
    with open(path, "w") as f:
        f.write("\n".join(sorted(new)))


def _learn(names: list[str], failed: set[str]) -> None:
    """Import, in the server, library modules a command needed: the next command starts warmer.

    Only modules that import without any project settings succeed; the rest are remembered and
    left to the children. Project modules are never imported here.
    """
    import importlib

    if not names:
        return
    for name in names:
        if name in sys.modules or name in failed:
            continue
        try:
            importlib.import_module(name)
        except BaseException:  # noqa: BLE001 - anything that needs settings stays in the children
            failed.add(name)
            for partial in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
                sys.modules.pop(partial, None)
    _baseline.update(sys.modules)


def preload() -> None:
    """Import the library modules most commands need (never anything of a project)."""
    import importlib

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a module that will not import here only costs speed
            continue
    _baseline.update(sys.modules)


def fork_and_wait(req: dict) -> tuple[int, bool]:
    """Run one request as ``python manage.py ...`` in a forked child; (exit status, timed out).

    The child is killed (its whole process group) when ``req["timeout"]`` passes.
    """
    import gc
    import select

    sys.stdout.flush()
    gc.freeze()  # keep the warm heap shared with the children (no copy-on-write by the collector)
    pid = os.fork()
    if pid == 0:
        _child(req)
    # Wait for the child to exit (a pidfd wakes us at once), or kill it at the deadline.
    pidfd = os.pidfd_open(pid)
    try:
        timed_out = not select.select([pidfd], [], [], float(req.get("timeout") or 120))[0]
    finally:
        os.close(pidfd)
    if timed_out:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), timed_out


def _serve() -> None:
    """Answer requests (one JSON line each) until stdin closes: the lessons' warm helper.

    Each request names files for the command's stdin, stdout and stderr and
    one where the child lists the library modules it imported, which the
    helper then imports itself so the next command starts warmer. (The
    grading sandbox has its own, hardened server: :mod:`miglab.sandbox.server`.)
    """
    preload()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    failed: set[str] = set()
    for line in sys.stdin:
        req = json.loads(line)
        code, timed_out = fork_and_wait(req)
        try:
            needed = Path(req["modules"]).read_text().split() if req.get("modules") else []
        except OSError:
            needed = []
        sys.stdout.write(json.dumps({"returncode": code, "timed_out": timed_out}) + "\n")
        sys.stdout.flush()
        _learn(needed, failed)


if __name__ == "__main__":
    _serve()

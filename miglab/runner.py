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
class Completed:
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


def run_subprocess(cwd: Path, argv: list[str], stdin: str | None, env: dict, timeout: float) -> Completed:
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
        return Completed(-9, out, err, timed_out=True)
    return Completed(p.returncode, p.stdout, p.stderr)


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

    def run(self, cwd: Path, argv: list[str], stdin: str | None, env: dict, timeout: float) -> Completed:
        with self._lock, tempfile.TemporaryDirectory(prefix="miglab-run-") as tmp:
            files = {name: os.path.join(tmp, name) for name in ("stdin", "stdout", "stderr", "modules")}
            Path(files["stdin"]).write_text(stdin or "")
            Path(files["stdout"]).touch()
            Path(files["stderr"]).touch()
            request = {"cwd": str(cwd), "argv": argv, "env": env, "timeout": timeout, **files}
            for attempt in (1, 2):
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
            read = lambda n: Path(files[n]).read_text(errors="replace")  # noqa: E731
            return Completed(reply["returncode"], read("stdout"), read("stderr"), reply["timed_out"])

    def close(self) -> None:
        if self._proc is not None:
            try:
                self._proc.kill()
                self._proc.wait(timeout=5)
            except Exception:
                pass
            self._proc = None


_server: ForkServer | None = None


def run_manage(cwd: Path, args: list[str], stdin: str | None = None, env: dict | None = None,
               timeout: float = 120) -> Completed:
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
        except BaseException as e:
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


def _serve(sandboxed: bool = False) -> None:
    """Answer requests (one JSON line each) until stdin closes.

    ``sandboxed``: the server runs inside a grading sandbox (``miglab.grading.sandbox.Session``)
    and the commands run learner code, so it trusts nothing they leave behind. It makes
    itself undumpable (no same-uid process may ptrace it or open its pipes through /proc),
    writes each command's output in its private /tmp and sends it back in the reply (capped),
    never learns modules from a command, and before each reply kills every other process
    of the sandbox: between two commands nothing of the learner's runs.
    """
    import gc
    import importlib
    import select

    if sandboxed:
        _harden()
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:  # pragma: no cover - a missing module only costs speed
            pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _baseline.update(sys.modules)
    failed: set[str] = set()
    proto_in = sys.stdin
    proto_out = sys.stdout
    for line in proto_in:
        req = json.loads(line)
        if sandboxed and req.get("reset"):
            _kill_the_rest_or_exit()
            _wipe_private_space()
            proto_out.write(json.dumps({"reset": True}) + "\n")
            proto_out.flush()
            continue
        scratch = None
        if sandboxed:
            scratch = tempfile.mkdtemp(prefix="miglab-cmd-")
            req.update({name: os.path.join(scratch, name) for name in ("stdin", "stdout", "stderr")})
            req["modules"] = None
            Path(req["stdin"]).write_text(req.pop("input", "") or "")
            Path(req["stdout"]).touch()
            Path(req["stderr"]).touch()
        proto_out.flush()
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
        code = os.waitstatus_to_exitcode(status)
        reply = {"returncode": code, "timed_out": timed_out}
        if sandboxed:
            _kill_the_rest_or_exit()
            cap = int(req.get("max_output") or 1 << 20)
            reply.update(stdout=_read_capped(req["stdout"], cap), stderr=_read_capped(req["stderr"], cap))
            import shutil

            shutil.rmtree(scratch, ignore_errors=True)
            needed = []
        else:
            try:
                needed = Path(req["modules"]).read_text().split() if req.get("modules") else []
            except OSError:
                needed = []
        proto_out.write(json.dumps(reply) + "\n")
        proto_out.flush()
        _learn(needed, failed)


def _in_sandbox() -> bool:
    """Are we a sandbox's unprivileged process, in its own pid namespace (bubblewrap is pid 1)?"""
    try:
        with open("/proc/1/comm") as f:
            init = f.read().strip()
    except OSError:
        return False
    return os.getuid() != 0 and os.geteuid() != 0 and init == "bwrap"


def _harden() -> None:
    """Sandboxed server: refuse to run elsewhere, and let no other process of our uid ptrace us."""
    import ctypes

    if not _in_sandbox():
        raise SystemExit("runner --sandboxed runs only inside a grading sandbox")
    PR_SET_DUMPABLE = 4
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise SystemExit("runner --sandboxed: prctl(PR_SET_DUMPABLE) failed")


def _kill_the_rest_or_exit() -> None:
    """Kill every process of the sandbox but us and its init (what a command left running).

    If one will not die within a second, the server exits without answering: the trusted
    side then kills the whole sandbox and reads nothing a learner's process could still touch.
    """
    import time

    if not _in_sandbox():  # never on a host: kill(-1) would reach far more than the sandbox
        os._exit(3)
    me = os.getpid()
    for _ in range(200):
        try:
            os.kill(-1, signal.SIGKILL)  # all we may signal here, except ourselves and pid 1
        except ProcessLookupError:
            pass
        left = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, me)]
        alive = []
        for pid in left:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rsplit(")", 1)[-1].split()[0] != "Z":
                        alive.append(pid)
            except OSError:
                pass
        if not alive:
            return
        time.sleep(0.005)
    os._exit(3)


def _wipe_private_space() -> None:
    """Empty the sandbox's own writable folders (its /tmp, home and /dev/shm), so that the next
    learner whose commands run in this sandbox finds them as a new sandbox would."""
    import shutil

    if not _in_sandbox():
        return
    for folder in ("/tmp", os.environ.get("HOME") or "/home/student", "/dev/shm"):
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            path = os.path.join(folder, name)
            try:
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.unlink(path)
            except OSError:
                pass


def _read_capped(path: str, cap: int) -> str:
    """A command's output file, at most ``cap`` bytes; whatever it was turned into (a link, a
    pipe, a huge file) reads as what it holds up to the cap, or as nothing."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return ""
    try:
        import stat

        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        return os.read(fd, cap).decode("utf-8", "replace")
    finally:
        os.close(fd)


if __name__ == "__main__":
    _serve(sandboxed="--sandboxed" in sys.argv[1:])

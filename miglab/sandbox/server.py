"""The grading sandbox's command server: many ``manage.py`` commands, one warm Django, nothing trusted.

Started inside a sandbox by :class:`miglab.sandbox.session.Session` as
``python -m miglab.sandbox.server``. Like the lessons' helper
(:mod:`miglab.lab.runner`) it imports Django once and forks a fresh child per
command, but the commands run learner code, so it trusts nothing they leave
behind:

* it refuses to run outside a sandbox, and makes itself undumpable (no
  process of its uid may ptrace it or open its pipes through ``/proc``);
* each command's output goes to files in the sandbox's private ``/tmp`` and
  comes back in the reply, capped;
* it never learns modules from a command;
* before each reply it kills every other process of the sandbox: between two
  commands nothing of the learner's runs, so the trusted side reads the
  project exactly as the command left it; if one will not die, the server
  exits without answering and the whole sandbox is killed;
* ``{"reset": true}`` also empties the private ``/tmp``, home and ``/dev/shm``
  for the next learner.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import sys
import tempfile
import time
from pathlib import Path

from miglab.lab import runner


def serve() -> None:
    """Answer requests (one JSON line each) until stdin closes."""
    _harden()
    runner.preload()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for line in sys.stdin:
        req = json.loads(line)
        if req.get("reset"):
            _kill_the_rest_or_exit()
            _wipe_private_space()
            _reply({"reset": True})
            continue
        _reply(_run_one(req))


def _run_one(req: dict) -> dict:
    scratch = tempfile.mkdtemp(prefix="miglab-cmd-")
    try:
        files = {name: os.path.join(scratch, name) for name in ("stdin", "stdout", "stderr")}
        Path(files["stdin"]).write_text(req.get("input", "") or "")
        Path(files["stdout"]).touch()
        Path(files["stderr"]).touch()
        command = {
            "cwd": req["cwd"],
            "argv": req["argv"],
            "env": req.get("env") or {},
            "timeout": req.get("timeout"),
            "modules": None,
            **files,
        }
        code, timed_out = runner.fork_and_wait(command)
        _kill_the_rest_or_exit()
        cap = int(req.get("max_output") or 1 << 20)
        return {
            "returncode": code,
            "timed_out": timed_out,
            "stdout": _read_capped(files["stdout"], cap),
            "stderr": _read_capped(files["stderr"], cap),
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _reply(reply: dict) -> None:
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()


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
        raise SystemExit("miglab.sandbox.server runs only inside a grading sandbox")
    PR_SET_DUMPABLE = 4
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise SystemExit("miglab.sandbox.server: prctl(PR_SET_DUMPABLE) failed")


def _kill_the_rest_or_exit() -> None:
    """Kill every process of the sandbox but us and its init (what a command left running).

    If one will not die within a second, the server exits without answering: the trusted
    side then kills the whole sandbox and reads nothing a learner's process could still touch.
    """
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
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        return os.read(fd, cap).decode("utf-8", "replace")
    finally:
        os.close(fd)


if __name__ == "__main__":
    serve()

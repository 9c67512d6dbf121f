"""Several ``manage.py`` commands of learner code in one warm sandbox (the judge's migrations).

:class:`Session` starts one sandbox running :mod:`miglab.sandbox.server` and
sends it commands; :func:`manage_untrusted` runs one cold command in a
sandbox of its own. Both remove symbolic links a command made in the
project before the trusted side reads it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .bwrap import (
    DEFAULT_LIMITS,
    HOME,
    Prepared,
    SandboxError,
    SandboxLimits,
    SandboxRun,
    Spec,
    _tools_missing,
    available,
    host_env,
    kill_tree,
    run,
)


def _links(project: Path) -> set:
    return {p for p in project.rglob("*") if p.is_symlink()}


def _remove_new_links(project: Path, before: set) -> None:
    # The trusted side reads files here next (the SQLite database): links the learner's
    # code made (db.sqlite3 -> the gradebook, say) are removed so it never reads through them.
    for p in project.rglob("*"):
        if p.is_symlink() and p not in before:
            p.unlink()


def manage_untrusted(project, args: list[str], timeout: float = 60) -> SandboxRun:
    """``python manage.py ARGS`` in ``project`` (a lab holding learner code), sandboxed.

    Same shape as ``the judge's migration runners``: one cold command in a
    sandbox of its own. Only ``project`` is writable. (The judge uses a
    :class:`Session` instead: several commands in one sandbox, Django warm.)
    """
    project = Path(project)
    links_before = _links(project)
    done = run(
        [sys.executable, "manage.py", *args],
        cwd=project,
        writable=[project],
        env={"PYTHONHASHSEED": "0", "MIGLAB_FORK": "0"},
        timeout=timeout,
    )
    _remove_new_links(project, links_before)
    return done


class Session:
    """One sandbox that runs several ``manage.py`` commands, one after another, in projects under ``root``.

    Inside, :mod:`miglab.sandbox.server` imports Django once and forks a
    fresh child per command (each child reads settings, models and migration
    files from disk, as a new ``python manage.py`` would). A cold sandboxed
    command costs a sandbox and a Python with Django (about 0.3 s) every
    time; here that is paid once per session.

    Between two commands nothing of the learner's code runs: before the
    server answers, it has killed every other process in the sandbox, and
    it cannot itself be traced by them (it is undumpable). So when
    :meth:`manage` returns, the trusted side may read the project (the
    SQLite database) exactly as the command left it. Output comes back in
    the reply, capped at ``max_output`` bytes per stream.

    ``root`` is the only host folder the sandbox may write, and only where
    it was given: a project is handed to the sandbox uid just before its
    first command (so a project the trusted side sets up later is not the
    sandbox's until then), new symbolic links in it are removed after every
    command, and everything is given back to root at the end. The sandbox
    starts with the first command and ends with :meth:`close`.

    ``readonly`` names more host folders the sandbox sees, read-only, as
    ``(host, inside)`` pairs: a PostgreSQL server's socket folder, so that
    commands can connect to it (a read-only bind is enough to connect; the
    folder holds nothing else). A command's ``env`` is added to its
    environment (where that server is and which role to log in as).
    """

    def __init__(
        self,
        root,
        *,
        limits: SandboxLimits = DEFAULT_LIMITS,
        max_output: int = 1 << 20,
        startup: float = 60.0,
        readonly: tuple = (),
    ):
        self.root = Path(root)
        self.limits, self.max_output, self.startup = limits, max_output, startup
        self.readonly = tuple((str(host), str(inside)) for host, inside in readonly)
        self._prep: Prepared | None = None
        self._proc: subprocess.Popen | None = None
        self._log = None
        self._buffer = b""
        self._given: set[Path] = set()
        self.dead = ""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _start(self) -> None:
        if not sys.platform.startswith("linux") or os.geteuid() != 0 or _tools_missing():
            raise SandboxError(available()[1])
        self._prep = Prepared(limits=self.limits)
        os.chmod(self.root, 0o711)  # root's, not the sandbox's: only the projects in it are given
        spec = Spec(
            argv=[sys.executable, "-m", "miglab.sandbox.server"],
            cwd=HOME,
            writable=[str(self.root)],
            readonly=list(self.readonly),
            limits=self.limits,
            env={"PYTHONHASHSEED": "0", "MIGLAB_FORK": "0", "PYTHONSAFEPATH": "1"},
        )
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - the server's stderr for its life; close() closes it
        self._proc = subprocess.Popen(
            self._prep.command(spec),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            start_new_session=True,
            close_fds=True,
            env=host_env(),
        )
        self._started = time.monotonic()

    def _read_reply(self, deadline: float) -> dict | None:
        import select

        fd = self._proc.stdout.fileno()
        limit = 12 * self.max_output + (64 << 10)  # two capped streams, JSON-escaped (up to 6 bytes a byte)
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or len(self._buffer) > limit:
                return None
            if not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            reply = json.loads(line)
        except ValueError:
            return None
        return reply if isinstance(reply, dict) else None

    def _server_log(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read(4000).decode("utf-8", "replace").strip()

    def manage(
        self, project, args: list[str], timeout: float = 60, stdin: str = "", env: dict | None = None
    ) -> SandboxRun:
        """``python manage.py ARGS`` in ``project``, a folder under the session's root (the same
        signature as :func:`manage_untrusted`), with ``env`` added to the command's environment."""
        project = Path(project)
        if project.is_symlink() or not project.resolve().is_relative_to(self.root.resolve()):
            raise ValueError(f"this session runs commands in folders under {self.root}, not in {project}")
        started = time.monotonic()
        if self.dead:
            return SandboxRun(1, "", self.dead, False, 0.0)
        first = self._proc is None
        links_before = _links(project)
        if first:
            self._start()
        if project not in self._given:
            # The folders on the way stay root's (so nothing in the sandbox can move a project or
            # put a link in its place), traversable; the project itself becomes the sandbox's.
            for folder in reversed(project.resolve().relative_to(self.root.resolve()).parents):
                os.chmod(self.root / folder, 0o711)
            self._prep.give(project)
            self._given.add(project)
        request = {
            "cwd": str(project),
            "argv": ["manage.py", *args],
            "timeout": timeout,
            "env": {str(k): str(v) for k, v in (env or {}).items()},
            "input": stdin,
            "max_output": self.max_output,
        }
        try:
            self._proc.stdin.write((json.dumps(request) + "\n").encode())
            self._proc.stdin.flush()
        except OSError:
            pass
        # The server enforces ``timeout`` itself; the extra is for its start-up (first command)
        # and its own clean-up. If it does not answer by then, the sandbox is killed.
        reply = self._read_reply(time.monotonic() + timeout + 10 + (self.startup if first else 0))
        if reply is None:
            timed_out = self._proc.poll() is None
            kill_tree(self._proc)
            self._proc.wait()
            self.dead = (
                "the sandbox stopped answering" if timed_out else f"the sandbox ended (exit {self._proc.returncode})"
            )
            log = self._server_log()
            self.dead += f": {log[-1500:]}" if log and not timed_out else ""
            _remove_new_links(project, links_before)
            return SandboxRun(-9 if timed_out else 1, "", self.dead, timed_out, time.monotonic() - started)
        _remove_new_links(project, links_before)

        def text(key):
            v = reply.get(key)
            return v[: self.max_output] if isinstance(v, str) else ""

        code = reply.get("returncode")
        return SandboxRun(
            code if type(code) is int else 1,
            text("stdout"),
            text("stderr"),
            reply.get("timed_out") is True,
            time.monotonic() - started,
        )

    def reset(self) -> bool:
        """Make the sandbox fit for another learner's commands: every process but the server
        killed, its private /tmp, home and /dev/shm emptied. False (and the session closed)
        if that could not be done; a session that never started is already clean."""
        if self._proc is None:
            return not self.dead
        try:
            self._proc.stdin.write(b'{"reset": true}\n')
            self._proc.stdin.flush()
        except OSError:
            pass
        reply = self._read_reply(time.monotonic() + 30)
        if not reply or reply.get("reset") is not True:
            self.close()
            self.dead = "the sandbox could not be reset"
            return False
        self._given.clear()
        return True

    @property
    def age(self) -> float:
        """Seconds since the sandbox started (0 before the first command)."""
        return time.monotonic() - self._started if self._proc is not None else 0.0

    def close(self) -> None:
        if self._proc is not None:
            kill_tree(self._proc)
            self._proc.wait()
            for f in (self._proc.stdin, self._proc.stdout):
                try:
                    f.close()
                except OSError:
                    pass
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._prep is not None:
            if self.root.exists():
                for p in [self.root, *self.root.rglob("*")]:
                    try:
                        os.lchown(p, os.geteuid(), os.getegid())
                    except OSError:
                        pass
            self._prep.close()
            self._prep = None


_migration_cache: dict = {}

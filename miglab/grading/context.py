"""How the judge's rules run a student's code: the one way to run a migration scenario, one cache.

A rule such as :func:`miglab.evidence.checkers.runs_migration` asks its
context to run a scenario (:mod:`miglab.lab.scenario`) with the student's
migration text. :class:`JudgeContext` is that context for one student:
each scenario runs once per answer text, in the worker's judge sandbox
(:class:`JudgeSandbox`), or with the grader's own rights under ``--unsafe``
(:func:`local_runner`). It remembers whether a hidden call has run code yet,
so that a visible call run afterwards is not quoted back (the student's code
could have kept a hidden call's rows somewhere in between).

A PostgreSQL scenario (``db="postgresql"``) runs on the course's server
(:mod:`miglab.lab.postgres`), in a database and as a login role made for that
one run and dropped after it (:class:`miglab.lab.scenario.ScenarioDatabase`):
never as the superuser, never in another run's database. The judge's sandbox
then sees one more folder, read-only: the server's socket folder, at
:data:`PG_SOCKET` (the server has no TCP port, and the sandbox no network);
the role's name and password reach the commands in their environment only.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from ..evidence.convert import digest
from ..lab.postgres import PostgresUnavailable
from ..lab.scenario import Scenario, run_scenario, trusted_manage

ScenarioRunner = Callable[[Scenario, str], dict]
PG_SOCKET = "/run/postgresql"  # where a judge sandbox sees the PostgreSQL server's socket folder


class JudgeContext:
    """One student's scenarios (see the module docstring)."""

    def __init__(self, runner: ScenarioRunner):
        self._runner = runner
        self._cache: dict[tuple[str, str], dict] = {}
        self._hidden_seen = False

    def run_scenario(self, scenario: dict, answer: str) -> dict:
        key = (digest(scenario), digest(answer))
        if key not in self._cache:
            try:
                result = self._runner(Scenario.from_dict(scenario), answer)
            except PostgresUnavailable as exc:  # the grader's machine, not the student's answer
                result = {"error": f"the grader could not run this check: {str(exc).splitlines()[0]}"}
            except Exception as exc:  # noqa: BLE001 - a lab the student's code left unreadable: a failed check
                result = {"error": f"the migration left the lab unreadable ({type(exc).__name__}: {exc})"}
            self._cache[key] = {**result, "after_hidden": self._hidden_seen}
        return self._cache[key]

    def saw_hidden(self) -> None:
        self._hidden_seen = True


def local_runner(scenario: Scenario, answer: str) -> dict:
    """``--unsafe``: the student's migration forks from the lab's warm Django, with the grader's rights."""
    return run_scenario(scenario, answer, manage=trusted_manage)


class JudgeSandbox:
    """The sandbox a grading worker runs students' migrations in, kept from one student to the next.

    Its start-up (a sandbox and a Python with Django, about 0.2 s) is paid once
    per worker, not once per student, but only as far as that is safe: between
    two commands nothing of a student runs (:class:`miglab.sandbox.session.Session`),
    after each student the sandbox is reset (every process but the server
    killed, its private /tmp, home and /dev/shm emptied) and that student's labs
    are removed; the next student's labs are handed to the sandbox only when
    their commands run. A session that died, could not be reset, or has lived
    half its wall-clock limit is replaced.
    """

    def __init__(self) -> None:
        self._session = None
        self._lock = threading.Lock()  # one student's commands at a time (Dask runs tasks in threads)
        atexit.register(self.close)
        # A process-pool worker ends without running atexit handlers: multiprocessing's finalizers run.
        from multiprocessing import util

        util.Finalize(self, self.close, exitpriority=10)

    def runner(self, scenario: Scenario, answer: str) -> dict:
        if scenario.db == "postgresql":
            from ..lab import postgres

            server = postgres.server()  # a lease for as long as this worker lives
            session = self._get(((str(server.socket_dir), PG_SOCKET),))
            return run_scenario(scenario, answer, manage=session.manage, root=session.root, pg_socket=PG_SOCKET)
        session = self._get(())
        return run_scenario(scenario, answer, manage=session.manage, root=session.root)

    def student(self) -> _StudentTurn:
        """``with sandbox.student():`` one student's scenarios, then a reset."""
        return _StudentTurn(self)

    def _get(self, readonly: tuple):
        """The session, new if there is none, it died, it is old, or it sees other folders than
        ``readonly`` (a PostgreSQL scenario's socket folder is bound only where one needs it)."""
        from ..sandbox.session import Session

        s = self._session
        if s is None or s.dead or s.age > s.limits.wall / 2 or s.readonly != readonly:
            self.close()
            self._session = Session(Path(tempfile.mkdtemp(prefix="miglab-judge-")), readonly=readonly)
        return self._session

    def _done(self) -> None:
        if self._session is not None and not self._session.reset():
            self.close()

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            shutil.rmtree(self._session.root, ignore_errors=True)
            self._session = None


class _StudentTurn:
    def __init__(self, sandbox: JudgeSandbox):
        self.sandbox = sandbox

    def __enter__(self) -> JudgeContext:
        self.sandbox._lock.acquire()
        return JudgeContext(self.sandbox.runner)

    def __exit__(self, *exc: object) -> None:
        try:
            self.sandbox._done()
        finally:
            self.sandbox._lock.release()


_worker_sandbox: JudgeSandbox | None = None


def worker_sandbox() -> JudgeSandbox:
    """This process's judge sandbox (made on first use)."""
    global _worker_sandbox
    if _worker_sandbox is None:
        _worker_sandbox = JudgeSandbox()
    return _worker_sandbox

"""Grading on a Dask cluster (``grade --dask ADDRESS``): the same work as the local pool, on other machines.

:class:`DaskExecutor` wraps a ``dask.distributed.Client`` in the shape the
coordinator uses (``submit(fn, task)`` returning a future with
``add_done_callback``). Nothing is shared but bytes:

* each assignment travels once per cluster, as the result of a task of its
  own (``miglab-assignment-<version>``): the scheduler keeps what made it, so
  if the worker holding it dies, it is made again elsewhere;
* each submission travels as a :class:`~miglab.grading.model.Task` (its
  files as bytes) without its assignment, joined with it on the worker;
* a :class:`~miglab.grading.model.Result` comes back as plain data; the
  coordinator alone writes it to the course and the gradebook.

A worker process that dies takes nothing with it: the scheduler runs its
tasks again on another worker (a task whose workers keep dying ends as
``KilledWorker``, which the coordinator retries once under a new key, then
records as the grader's error). Every task has a key of its own, never the
hash of its arguments, so a retried student is really run again.

A worker that runs other code than the coordinator's would grade by other
rules than the assignment version says: it answers with the grader's error
instead. Workers warm up once (imports, Django) when they join
(:class:`WarmWorker`). Kernels on a worker are sandboxed as on the
coordinator's own machine; a worker that cannot isolate starts no kernel
(the submission's status says so), and ``grade --dask`` refuses to start when
a worker it sees cannot isolate (:meth:`DaskExecutor.check_isolation`).
"""

from __future__ import annotations

import dataclasses
import functools
import time
import uuid
from typing import Any

from . import model
from .model import AssignmentInfo, Result, Task

try:
    from distributed import WorkerPlugin
except ImportError:  # pragma: no cover - only --dask needs distributed
    WorkerPlugin = object  # type: ignore[misc,assignment]


class WarmWorker(WorkerPlugin):
    """Run on every worker that joins: the imports and Django set-up a pool worker does in its fork server."""

    name = "miglab-grading"

    def setup(self, worker: Any = None) -> None:
        from .pool import warm_worker

        warm_worker()
        _loaded_code()


def _assignment(info: AssignmentInfo) -> AssignmentInfo:
    """The task that holds an assignment on the cluster (its argument is its result)."""
    return info


@functools.lru_cache(maxsize=1)
def _loaded_code() -> str:
    """The hash of this process's grading code, taken once, when it first grades (the code it loaded)."""
    from .assignment import code_hash

    return code_hash()


def grade_on_worker(fn: Any, task: Task, assignment: AssignmentInfo, code: str) -> Result:
    """On a Dask worker: the task joined with its assignment, graded by ``fn`` (``grade_submission``)."""
    from .worker import zero_result

    full = dataclasses.replace(task, assignment=assignment)
    mine = _loaded_code()
    if mine != code:
        return zero_result(
            full,
            model.ERROR,
            f"this Dask worker runs other miglab code ({mine}) than the "
            f"coordinator ({code}): install the same version on every machine",
            time.monotonic(),
        )
    return fn(full)


class DaskExecutor:
    """A ``dask.distributed.Client`` as the coordinator's executor (see the module docstring)."""

    def __init__(self, client: Any):
        from .assignment import code_hash

        self.client = client
        self.code = code_hash()
        self._assignments: dict[str, Any] = {}
        client.register_plugin(WarmWorker(), name=WarmWorker.name)

    @classmethod
    def connect(cls, address: str) -> DaskExecutor:
        from distributed import Client

        return cls(Client(address))

    @property
    def workers(self) -> int:
        """Tasks the cluster runs at once (its worker threads), at least 1."""
        return max(1, sum(self.client.nthreads().values()))

    def submit(self, fn: Any, task: Task) -> Any:
        info = self._assignment_future(task.assignment)
        slim = dataclasses.replace(task, assignment=None)
        key = f"grade-{task.student_id}-{uuid.uuid4().hex[:12]}"
        return self.client.submit(grade_on_worker, fn, slim, info, self.code, key=key, pure=False)

    def _assignment_future(self, info: AssignmentInfo) -> Any:
        if info.version not in self._assignments:
            self._assignments[info.version] = self.client.submit(
                _assignment, info, key=f"miglab-assignment-{info.version}-{uuid.uuid4().hex[:8]}", pure=False
            )
        return self._assignments[info.version]

    @staticmethod
    def lost(exc: BaseException) -> bool:
        """Did the task fail because its worker was lost (not because of what it ran)?"""
        from distributed.scheduler import KilledWorker

        return isinstance(exc, KilledWorker)

    def check_isolation(self) -> dict[str, str]:
        """``{worker address: why not}`` for every worker that cannot run sandboxed kernels."""
        from ..sandbox.bwrap import available

        answers = self.client.run(available)
        return {addr: why for addr, (ok, why) in answers.items() if not ok}

    def close(self) -> None:
        for fut in self._assignments.values():
            fut.release()
        self._assignments.clear()
        self.client.close()

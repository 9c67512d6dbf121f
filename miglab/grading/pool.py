"""The local process pool that grades students in parallel, and how its processes end.

Workers are forked from a ``multiprocessing`` fork server that has already
imported and warmed everything grading needs (:func:`warm_up`, run by
``miglab.grading.preload`` in the server), so no worker pays for it on its
first student.

No process of the pool outlives the grading command: the fork server and
every worker ask the kernel to kill them when their parent dies
(``PR_SET_PDEATHSIG``), so a coordinator killed with SIGKILL takes the fork
server with it, the fork server takes its workers, and each worker's
sandboxed kernels and judge sandbox notice their grader is gone
(:mod:`miglab.sandbox.kernel`, bubblewrap's ``--die-with-parent``).
"""

from __future__ import annotations

import ctypes
import importlib
import multiprocessing
import os
import signal
import tempfile
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

PR_SET_PDEATHSIG = 1

# Modules a worker imports lazily while grading its first student (nbgrader's preprocessors, the
# kernel machinery, the feedback page, the judge's Django parts).
WARM_MODULES = (
    "nbgrader.preprocessors",
    "nbgrader.converters",
    "nbconvert.exporters.html",
    "nbconvert.filters",
    "jupyter_client.manager",
    "jupyter_client.asynchronous.client",
    "pygments.lexers.python",
    "pygments.formatters.html",
    "django.db.migrations.graph",
    "django.db.migrations.optimizer",
    "django.db.migrations.state",
    "django.db.migrations.operations",
    "django.utils.text",
    "networkx",
    "miglab.grading.worker",
    "miglab.grading.judge",
    "miglab.grading.feedback",
    "miglab.grading.context",
    "miglab.sandbox.session",
    "miglab.sandbox.kernel",
    "miglab.evidence",
    "miglab.lab.scenario",
)


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent ends (a no-op elsewhere)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: nothing to ask for
        return


def warm_up() -> None:
    """Do once, before any student, what every worker would otherwise do on its first one.

    Imports and Django's set-up, about a second of CPU, done in the pool's
    fork server while the coordinator prepares the assignment. Never raises:
    a module that will not import only costs the speed it would have saved.
    """
    if getattr(warm_up, "done", False):
        return
    for name in WARM_MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - only speed is lost; the worker imports it again when needed
            continue
    from ..evidence.django_setup import ensure_django

    ensure_django()
    warm_up.done = True  # type: ignore[attr-defined]


def warm_worker() -> None:
    """What any grading process (a pool worker, a Dask worker) does before its first student."""
    warnings.filterwarnings("ignore", module="nbgrader")
    warnings.filterwarnings("ignore", module="nbformat")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    from .autograde import fast_scratch_sqlite

    fast_scratch_sqlite()
    warm_up()


def quiet_worker() -> None:
    """Process-pool initializer: die with the pool, write chatter to a log file, start warm."""
    die_with_parent()
    path = Path(tempfile.gettempdir()) / f"miglab-grading-worker-{os.getpid()}.log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    warm_worker()


def _forkserver_context() -> multiprocessing.context.BaseContext:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["miglab.grading.preload"])
    return ctx


def warm_up_workers() -> None:
    """Start the fork server now: it imports nbgrader, nbconvert and the judge while we prepare."""
    _forkserver_context()
    from multiprocessing import forkserver

    forkserver.ensure_running()


def local_executor(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=workers, mp_context=_forkserver_context(), initializer=quiet_worker)


def stop_workers(executor: ProcessPoolExecutor) -> None:
    """End a pool now: its workers killed, pending work cancelled."""
    for p in list((getattr(executor, "_processes", None) or {}).values()):
        try:
            p.kill()
        except (OSError, AttributeError):
            continue
    executor.shutdown(wait=False, cancel_futures=True)


def stop_fork_server() -> None:
    """End the pool's fork server once its pool is gone (a library caller's process outlives its grading
    runs; the next run starts a new one), and multiprocessing's resource tracker with it when no other
    process of ours still needs it. Both are private parts of ``multiprocessing``; without them: no-op."""
    from multiprocessing import forkserver, resource_tracker

    stop = getattr(getattr(forkserver, "_forkserver", None), "_stop", None)
    if stop is not None:
        stop()
    tracker = getattr(resource_tracker, "_resource_tracker", None)
    if tracker is not None and not multiprocessing.active_children() and getattr(tracker, "_fd", None) is not None:
        tracker._stop()

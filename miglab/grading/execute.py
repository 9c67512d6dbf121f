"""nbgrader's Execute preprocessor, made to survive bad submissions.

Plain nbgrader gives up on a whole submission when the kernel dies, and a
kernel that ignores the interrupt costs one full cell timeout per remaining
cell. :class:`ResilientExecute` keeps nbgrader's behaviour for everything
that goes well and, when something goes badly, keeps what already ran:

* a cell that runs past its timeout is interrupted (as in nbgrader); if the
  kernel does not answer within ``interrupt_grace`` seconds it is killed;
* a kernel that dies, is killed, or passes the submission's ``deadline``
  stops the run; every code cell that did not run gets an error output
  saying why, so nbgrader scores it 0 and the cells that ran keep their
  credit.

What happened is reported through :func:`outcome` under ``run_key``.

Grading starts and stops one kernel per submission, so the idle waits
jupyter_client builds into both ends are trimmed here: the start-up wait no
longer reads iopub until it has been quiet for 0.2 s
(:meth:`ResilientExecute.async_start_new_kernel_client`), and
:class:`FastStopMixin` watches a killed kernel every few milliseconds instead
of every 0.1 s. :class:`FastCheckCellMetadata` is nbgrader's metadata check
with its JSON schema compiled once per process instead of once per cell.
"""

from __future__ import annotations

import threading
import time
import traceback
from queue import Empty

import jsonschema
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import ensure_async
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbclient.util import run_sync
from nbformat import ValidationError as NbformatValidationError
from nbformat.notebooknode import NotebookNode, from_dict
from nbgrader.nbgraderformat import MetadataValidator, ValidationError
from nbgrader.nbgraderformat.common import BaseMetadataValidator, SchemaTooNewError, SchemaTooOldError
from nbgrader.preprocessors import CheckCellMetadata, Execute
from traitlets import Dict, Float, Unicode

from ..sandbox.kernel import ZMQ_MAX_MESSAGE, FastStopMixin
from . import model
from .plan import BEGIN_HIDDEN, without_expected_answers

_OUTCOMES: dict[str, list[dict]] = {}
_LOCK = threading.Lock()


def outcome(run_key: str) -> list[dict]:
    """What happened to each notebook run under ``run_key`` (and forget it)."""
    with _LOCK:
        return _OUTCOMES.pop(run_key, [])


def _report(run_key: str, entry: dict) -> None:
    with _LOCK:
        _OUTCOMES.setdefault(run_key, []).append(entry)


NOT_RUN = "CellNotRun"
DROPPED = "[the grader dropped a message from the kernel that is not a valid notebook output]\n"
IOPUB_TIMEOUT = "Timeout waiting for IOPub output"  # nbclient's CellTimeoutError once a cell's outputs stop


def not_run_output(reason: str) -> NotebookNode:
    return from_dict(
        {
            "output_type": "error",
            "ename": NOT_RUN,
            "evalue": reason,
            "traceback": [f"{NOT_RUN}: {reason}"],
        }
    )


# Start-up wait (see ResilientExecute._async_wait_for_kernel).
READY_POLL = 0.1  # seconds between checks that a kernel still starting is alive
READY_RESEND = 1.0  # a kernel_info request unanswered this long is sent again
IOPUB_CONFIRM = 0.2  # once the kernel answered, how long its first iopub message may take


class FastKernelManager(FastStopMixin, AsyncKernelManager):
    """jupyter_client's default kernel manager for plain local kernels, with :class:`FastStopMixin`."""


class _CompiledSchemaValidator(BaseMetadataValidator):
    """nbgrader's per-cell schema check with the schema compiled once.

    ``BaseMetadataValidator.validate_cell`` calls ``jsonschema.validate``,
    which checks the schema against its meta-schema and builds a new
    validator for every cell: most of the time nbgrader spends checking a
    notebook. This makes the same schema-version checks and raises what
    ``jsonschema.validate`` would (the ``best_match`` of the validator's
    errors), with one validator built when the schema is loaded.
    """

    def __init__(self) -> None:
        super().__init__()
        kind = jsonschema.validators.validator_for(self.schema)
        kind.check_schema(self.schema)
        self._schema_validator = kind(self.schema)

    def validate_cell(self, cell: NotebookNode) -> None:
        if "nbgrader" not in cell.metadata:
            return
        meta = cell.metadata["nbgrader"]
        version = meta.get("schema_version", 0)
        if version < self.schema_version:
            raise SchemaTooOldError(
                f"Outdated schema version: {version} (expected {self.schema_version})", version, self.schema_version
            )
        if version > self.schema_version:
            raise SchemaTooNewError(
                f"Schema version is too new: {version} (expected {self.schema_version})", version, self.schema_version
            )
        error = jsonschema.exceptions.best_match(self._schema_validator.iter_errors(meta))
        if error is not None:
            raise error


class _FastMetadataValidator(MetadataValidator, _CompiledSchemaValidator):
    """nbgrader's current validator, whose own checks (grade ids, points, cell kinds, duplicate
    ids) run unchanged: only its ``super().validate_cell`` lands on
    :class:`_CompiledSchemaValidator` instead of ``BaseMetadataValidator``."""


_VALIDATOR: list[_FastMetadataValidator] = []  # one per process, made when first needed


class FastCheckCellMetadata(CheckCellMetadata):
    """nbgrader's ``CheckCellMetadata`` (same checks, errors and log lines) with one validator per
    process: nbgrader's reads three schema files per notebook and re-checks the schema per cell."""

    def preprocess(self, nb: NotebookNode, resources: dict):
        if not _VALIDATOR:
            _VALIDATOR.append(_FastMetadataValidator())
        try:
            _VALIDATOR[0].validate_nb(nb)
        except ValidationError:
            self.log.error(traceback.format_exc())
            msg = "Notebook failed to validate; the nbgrader metadata may be corrupted."
            self.log.error(msg)
            raise ValidationError(msg) from None
        return nb, resources


class ResilientExecute(Execute):
    deadline = Float(0.0, help="Wall-clock time (time.time()) after which no cell may run; 0: none").tag(config=True)
    interrupt_grace = Float(5.0, help="Seconds an interrupted kernel has to answer before it is killed").tag(
        config=True
    )
    run_key = Unicode("", help="Key under which the outcome is reported").tag(config=True)
    manager_kwargs = Dict({}, help="Extra keyword arguments for the kernel manager").tag(config=True)

    def create_kernel_manager(self):
        km = super().create_kernel_manager()
        for name, value in self.manager_kwargs.items():
            setattr(km, name, value)
        return km

    async def async_start_new_kernel_client(self):
        """nbclient's, without the heartbeat channel (aliveness comes from the kernel manager, and
        stopping a heartbeat thread costs about a second per kernel) and with our own start-up
        wait (:meth:`_async_wait_for_kernel`)."""
        try:
            self.kc = self.km.client()
            self.kc.start_channels(hb=False)
            await self._async_wait_for_kernel()
        except Exception:
            await self._async_cleanup_kernel()
            raise
        self.kc.allow_stdin = False
        return self.kc

    start_new_kernel_client = run_sync(async_start_new_kernel_client)

    async def _async_wait_for_kernel(self) -> None:
        """Return once the kernel answers on shell and its iopub messages reach us.

        jupyter_client's ``wait_for_ready`` does this, then reads iopub until
        it has been quiet for 0.2 s: 0.2 s per kernel spent throwing away
        start-up messages that nbclient would skip anyway, since it only takes
        iopub messages whose parent is the request of the cell it runs
        (``NotebookClient._async_poll_output_msg``). Leftover kernel_info
        replies on shell are skipped the same way (``_async_poll_for_reply``
        and :meth:`_async_responsive` match the parent's msg_id).

        iopub is a subscription, and a message published before it is in
        place is lost: a kernel_info reply alone does not prove the first
        cell's outputs would arrive. Any iopub message does (ipykernel
        welcomes each new subscriber, and publishes busy/idle around the
        request); without one within ``IOPUB_CONFIRM`` the request is sent
        again, which publishes again. The kernel manager says whether the
        kernel is still alive (there is no heartbeat channel), checked every
        ``READY_POLL`` seconds so a kernel that dies while starting fails fast.
        """
        kc, km = self.kc, self.km
        deadline = time.monotonic() + self.startup_timeout
        asked: set[str] = set()
        while True:
            asked.add(kc.kernel_info())
            resend = min(deadline, time.monotonic() + READY_RESEND)
            reply = None
            while reply is None and time.monotonic() < resend:
                try:
                    msg = await kc.shell_channel.get_msg(timeout=READY_POLL)
                except Empty:
                    if not await ensure_async(km.is_alive()):
                        raise RuntimeError("Kernel died before replying to kernel_info") from None
                    continue
                if (
                    msg.get("msg_type") == "kernel_info_reply"
                    and (msg.get("parent_header") or {}).get("msg_id") in asked
                ):
                    reply = msg
            if reply is not None:
                try:
                    await kc.iopub_channel.get_msg(timeout=IOPUB_CONFIRM)
                except Empty:
                    pass  # not subscribed yet: ask again
                else:
                    kc._handle_kernel_info_reply(reply)  # the protocol version to speak, as jupyter_client does
                    return
            if not await ensure_async(km.is_alive()):
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() >= deadline:
                raise RuntimeError(f"Kernel didn't respond in {self.startup_timeout:g} seconds")

    def _remaining(self) -> float | None:
        if not self.deadline:
            return None
        return self.deadline - time.time()

    def _get_timeout(self, cell):
        timeout = super()._get_timeout(cell)
        remaining = self._remaining()
        if remaining is not None:
            cut = max(0.5, remaining)
            if timeout is None or cut < timeout:
                self._cut_by_deadline = True
                return cut
            self._cut_by_deadline = False
        return timeout

    async def _async_handle_timeout(self, timeout, cell=None):
        self._timed_out = True
        return await super()._async_handle_timeout(timeout, cell)

    async def _async_responsive(self, grace: float) -> bool:
        """Does the kernel answer a kernel_info request within ``grace`` seconds?"""
        msg_id = self.kc.kernel_info()
        end = time.monotonic() + grace
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return False
            try:
                msg = await self.kc.shell_channel.get_msg(timeout=left)
            except Exception:  # noqa: BLE001 - no reply, a closed channel or a dead kernel: not responsive
                return False
            if msg.get("parent_header", {}).get("msg_id") == msg_id:
                return True

    _responsive = run_sync(_async_responsive)

    async def _async_iopub_answers(self, grace: float) -> bool:
        """Does a kernel_info request's busy status reach us on iopub within ``grace`` seconds? (No once
        the kernel sent a message bigger than the channel takes: the channel then drops the connection.)"""
        msg_id = self.kc.kernel_info()
        end = time.monotonic() + grace
        while (left := end - time.monotonic()) > 0:
            try:
                msg = await self.kc.iopub_channel.get_msg(timeout=left)
            except Exception:  # noqa: BLE001 - nothing came, or the channel is closed: no answer
                return False
            if (msg.get("parent_header") or {}).get("msg_id") == msg_id:
                return True
        return False

    _iopub_answers = run_sync(_async_iopub_answers)

    def process_message(self, msg, cell, cell_index):
        """nbclient's, for a kernel that may send anything: a message no notebook output can be made
        of (nbformat refuses it, or it lacks its fields) is dropped, with a note in the cell, instead of
        stopping the run as a grader failure."""
        try:
            return super().process_message(msg, cell, cell_index)
        except (NbformatValidationError, KeyError, TypeError, AttributeError, ValueError) as exc:
            if not any(o.get("name") == "stderr" and DROPPED in o.get("text", "") for o in cell.outputs):
                cell.outputs.append(from_dict({"output_type": "stream", "name": "stderr", "text": DROPPED}))
            self.log.warning("dropped an invalid %r message from the kernel: %s", msg.get("msg_type"), exc)
            return None

    def preprocess_cell(self, cell, resources, index):
        """Run a cell; a test cell's hidden blocks reach the kernel without their expected answers
        (:func:`miglab.grading.plan.without_expected_answers`), and the notebook keeps its source."""
        original = cell.source
        if cell.cell_type == "code" and BEGIN_HIDDEN in original:
            cell.source = without_expected_answers(original)
        try:
            return super().preprocess_cell(cell, resources, index)
        finally:
            cell.source = original

    def preprocess(self, nb, resources=None, km=None):
        """Run every code cell; whatever goes wrong, keep what ran and say why the rest did not."""
        from nbclient.client import NotebookClient

        NotebookClient.__init__(self, nb, km)
        self.reset_execution_trackers()
        self._check_assign_resources(resources)
        run = _Run(path=(resources or {}).get("metadata", {}).get("path", ""))
        try:
            with self.setup_kernel():
                info_msg = self.wait_for_reply(self.kc.kernel_info())
                self.nb.metadata["language_info"] = info_msg["content"]["language_info"]
                run.kernel_start = time.monotonic() - run.started
                self._run_cells(run, resources)
        except DeadKernelError:
            run.fail(model.DEAD_KERNEL, "the kernel died")  # between cells, or while being shut down
        except Exception as exc:  # the kernel could not be started
            if run.kernel_start or run.failure:
                raise
            run.fail(model.KERNEL_FAILED, f"no kernel could be started: {type(exc).__name__}: {exc}")
            self._not_run(0, run.failure)
        run.finish(self.timeout)
        self.set_widgets_metadata()
        _report(self.run_key, run.entry())
        return self.nb, self.resources

    def _run_cells(self, run: _Run, resources) -> None:
        for index, cell in enumerate(self.nb.cells):
            if cell.cell_type != "code" or not cell.source.strip():
                continue
            remaining = self._remaining()
            if remaining is not None and remaining <= 0:
                run.fail(model.WALL_LIMIT, f"the submission reached its wall-clock limit before cell {index + 1}")
                self._not_run(index, run.failure)
                return
            if not self._run_cell(run, cell, resources, index):
                cell.outputs.append(not_run_output(run.failure))
                self._not_run(index + 1, run.failure)
                return
            if getattr(self.kc.iopub_channel, "over_budget", False):
                budget = self.kc.iopub_channel.output_budget
                run.fail(
                    model.OUTPUT_LIMIT,
                    f"the notebook sent more than {budget >> 20} MB of output by the end of cell {index + 1}, "
                    "so the grader stopped it there",
                )
                self.shutdown_kernel = "immediate"
                self._not_run(index + 1, run.failure)
                return

    def _run_cell(self, run: _Run, cell, resources, index: int) -> bool:
        """Run one cell; False when the run must stop there (the reason is in ``run``)."""
        self._timed_out = self._cut_by_deadline = False
        t0 = time.monotonic()
        try:
            self.preprocess_cell(cell, resources, index)
        except CellTimeoutError as exc:
            if self._timed_out or IOPUB_TIMEOUT not in str(exc):  # interrupted, and the kernel never went idle
                self._timed_out = True
            elif not self._iopub_answers(self.interrupt_grace):  # the cell ran, but its outputs stopped coming
                run.cell_seconds += time.monotonic() - t0
                run.fail(
                    model.OUTPUT_LIMIT,
                    f"the notebook's output stopped reaching the grader in cell {index + 1} (one message "
                    f"may hold at most {ZMQ_MAX_MESSAGE >> 20} MB), so the grader stopped it there",
                )
                self.shutdown_kernel = "immediate"
                return False
        except DeadKernelError:
            run.cell_seconds += time.monotonic() - t0
            run.fail(model.DEAD_KERNEL, f"the kernel died while running cell {index + 1}")
            return False
        run.cell_seconds += time.monotonic() - t0
        if not self._timed_out:
            return True
        if self._cut_by_deadline:
            run.fail(model.WALL_LIMIT, f"the submission reached its wall-clock limit in cell {index + 1}")
        elif self._responsive(self.interrupt_grace):
            run.timed_out_cells.append(index + 1)
            return True
        else:
            run.fail(
                model.HUNG,
                f"cell {index + 1} ran past the {self.timeout:g} s limit and the kernel ignored "
                "the interrupt, so it was stopped",
            )
        self.shutdown_kernel = "immediate"
        return False

    def _not_run(self, start: int, reason: str) -> None:
        """Every code cell from ``start`` on gets an error output saying why it did not run."""
        for cell in self.nb.cells[start:]:
            if cell.cell_type == "code" and cell.source.strip():
                cell.outputs = [not_run_output(reason)]
                cell.execution_count = None


class _Run:
    """What happened while one notebook ran: for :func:`outcome`."""

    def __init__(self, path: str):
        self.path, self.started = path, time.monotonic()
        self.status, self.failure = model.OK, ""
        self.kernel_start = self.cell_seconds = 0.0
        self.timed_out_cells: list[int] = []

    def fail(self, status: str, reason: str) -> None:
        if not self.failure:
            self.status, self.failure = status, reason

    def finish(self, timeout: float) -> None:
        if not self.failure and self.timed_out_cells:
            cells = ", ".join(map(str, self.timed_out_cells))
            self.status = model.TIMEOUT
            self.failure = f"cell {cells} ran past the {timeout:g} s limit and was interrupted"

    def entry(self) -> dict:
        return {
            "path": self.path,
            "status": self.status,
            "reason": self.failure,
            "kernel_start": self.kernel_start,
            "cell_seconds": self.cell_seconds,
        }

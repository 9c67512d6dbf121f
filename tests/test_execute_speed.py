"""The grader's shortcuts around kernels keep their behaviour (miglab.grading.execute, miglab.sandbox.kernel).

Starting and stopping a kernel per submission used to idle in jupyter_client
(0.2 s reading start-up messages nobody uses, 0.1 s polls while a killed
kernel goes away), the sandboxed kernel imported debugpy for a debugger
nobody attaches, and nbgrader re-checked its metadata schema for every cell.
These tests say what must not change: a kernel is ready when the first cell
runs and that cell's outputs are its own, dead and silent kernels are still
noticed, stopped kernels are gone, and the metadata check accepts and rejects
exactly what nbgrader's does. Nothing here measures time.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from nbgrader.nbgraderformat import MetadataValidator, SchemaTooNewError, SchemaTooOldError, ValidationError
from nbgrader.preprocessors import CheckCellMetadata

from miglab.grading import model
from miglab.grading.execute import (
    FastCheckCellMetadata,
    FastKernelManager,
    ResilientExecute,
    _FastMetadataValidator,
    outcome,
)
from miglab.sandbox.kernel import FastStopMixin, SandboxKernelManager, grading_kernel

REPO = Path(__file__).resolve().parents[1]
_keys = itertools.count()


def grade(cells: list[str], folder: Path, sandboxed: bool, **traits) -> tuple[nbformat.NotebookNode, dict]:
    """Run ``cells`` through ResilientExecute as the grader does; the notebook and what happened."""
    nb = new_notebook(cells=[new_code_cell(c) for c in cells])
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    key = f"speed-{os.getpid()}-{next(_keys)}"
    if sandboxed:
        options = model.KernelOptions(**grading_kernel())
        traits.setdefault("kernel_name", options.kernel_name)
        traits.setdefault("kernel_manager_class", options.manager_class.replace(":", "."))
        traits.setdefault("manager_kwargs", dict(options.manager_kwargs))
    else:
        traits.setdefault("kernel_manager_class", FastKernelManager)
    traits.setdefault("timeout", 20)
    ex = ResilientExecute(run_key=key, shutdown_kernel="immediate", interrupt_grace=3, **traits)
    ex.preprocess(nb, {"metadata": {"path": str(folder)}})
    [run] = outcome(key)
    return nb, run


def stream(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


# ------------------------------------------------------------------ start-up wait


@pytest.mark.parametrize("sandboxed", [False, True], ids=["local", "sandboxed"])
def test_first_cell_runs_right_after_start_with_only_its_own_outputs(tmp_path, sandboxed):
    for _ in range(3):  # a fresh kernel each time: the start-up races, if any, get three chances
        nb, run = grade(["print('first')\n1 + 1", "print('second')"], tmp_path, sandboxed)
        assert run["status"] == model.OK, run
        first = nb.cells[0]
        assert [o.output_type for o in first.outputs] == ["stream", "execute_result"]
        assert first.outputs[0].text == "first\n" and first.outputs[1].data["text/plain"] == "2"
        assert first.execution_count == 1
        assert [o.output_type for o in nb.cells[1].outputs] == ["stream"] and stream(nb.cells[1]) == "second\n"
        assert nb.metadata.language_info.name == "python"


class ExitingKernelManager(FastKernelManager):
    """A "kernel" that exits at once, without ever answering."""

    def format_kernel_cmd(self, extra_arguments=None):
        return [sys.executable, "-c", "import sys; sys.exit(3)"]


class SilentKernelManager(FastKernelManager):
    """A "kernel" that stays alive and never answers."""

    def format_kernel_cmd(self, extra_arguments=None):
        return [sys.executable, "-c", "import time; time.sleep(120)"]


def test_a_kernel_that_dies_while_starting_is_reported_dead(tmp_path):
    nb, run = grade(
        ["print('never')"], tmp_path, sandboxed=False, kernel_manager_class=ExitingKernelManager, startup_timeout=60
    )
    assert run["status"] == model.KERNEL_FAILED
    assert "died before replying" in run["reason"]
    assert nb.cells[0].outputs[0].ename == "CellNotRun"


def test_a_kernel_that_never_answers_fails_after_the_startup_timeout_and_is_stopped(tmp_path):
    started = []

    class Watched(SilentKernelManager):
        async def _async_post_start_kernel(self, **kw):
            started.append(self.provisioner.process)
            await super()._async_post_start_kernel(**kw)

    _nb, run = grade(["print('never')"], tmp_path, sandboxed=False, kernel_manager_class=Watched, startup_timeout=2)
    assert run["status"] == model.KERNEL_FAILED
    assert "didn't respond in 2 seconds" in run["reason"]
    [proc] = started
    assert proc.poll() is not None  # the silent kernel was killed and reaped


def test_a_kernel_that_dies_in_a_cell_is_still_detected(tmp_path):
    nb, run = grade(["print('ok')", "import os\nos._exit(1)", "print('never')"], tmp_path, sandboxed=False)
    assert run["status"] == model.DEAD_KERNEL
    assert stream(nb.cells[0]) == "ok\n"
    assert nb.cells[2].outputs[0].ename == "CellNotRun"


# ------------------------------------------------------------------ sandboxed kernel without debugpy


def test_sandboxed_kernel_starts_without_debugpy_and_still_works(tmp_path):
    nb, run = grade(
        [
            "import sys, json, ipykernel.debugger\n"
            "print(json.dumps({'loaded': 'debugpy' in sys.modules, 'blocked': sys.modules.get('debugpy', 0) is None,\n"
            "                  'available': ipykernel.debugger._is_debugpy_available,\n"
            "                  'features': get_ipython().kernel.kernel_info.get('supported_features', [])}))",
            "import time\ntime.sleep(60)",
            "print('after the interrupt', 6 * 7)",
            "import debugpy\nprint(bool(debugpy.__file__))",
        ],
        tmp_path,
        sandboxed=True,
        timeout=3,
    )
    facts = json.loads(stream(nb.cells[0]))
    assert facts == {"loaded": False, "blocked": False, "available": False, "features": facts["features"]}
    assert "debugger" not in facts["features"]
    assert run["status"] == model.TIMEOUT  # the sleeping cell was interrupted, the kernel lived on
    assert any(o.output_type == "error" and o.ename == "KeyboardInterrupt" for o in nb.cells[1].outputs)
    assert stream(nb.cells[2]) == "after the interrupt 42\n"
    assert stream(nb.cells[3]) == "True\n"  # a notebook may still import it itself


# ------------------------------------------------------------------ stopping kernels


def in_own_loop(make_coro):
    """Run a coroutine in a fresh event loop on a thread of its own: earlier tests in the same
    process (nbclient, Playwright) may leave an event loop running in the main thread."""
    import threading

    out: dict = {}

    def target():
        try:
            out["value"] = asyncio.run(make_coro())
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            out["error"] = exc

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


@pytest.mark.parametrize("now", [True, False], ids=["kill", "graceful"])
def test_fast_kernel_manager_stops_the_kernel_and_reaps_it(tmp_path, now):
    async def run():
        km = FastKernelManager(kernel_name="python3")
        await km.start_kernel(cwd=str(tmp_path))
        proc = km.provisioner.process
        assert await km.is_alive()
        await km.shutdown_kernel(now=now)
        assert not await km.is_alive() and not km.has_kernel
        return proc

    proc = in_own_loop(run)
    assert proc.returncode is not None  # exited and reaped
    with pytest.raises(ProcessLookupError):
        os.kill(proc.pid, 0)


@pytest.mark.slow  # several seconds: left out of make test-fast's quick loop
def test_grader_managers_use_the_fast_stop(tmp_path):
    from miglab.grading.autograde import nbgrader_config

    assert issubclass(SandboxKernelManager, FastStopMixin) and issubclass(FastKernelManager, FastStopMixin)
    from miglab.grading.assignment import load_course_config, prepare

    info = prepare(REPO, "deep_dive", config=load_course_config(REPO))

    def config(kernel):
        task = model.Task(student_id="s", assignment=info, files={}, submission_hash="h", kernel=kernel)
        return nbgrader_config(task, tmp_path, "sqlite://", "k", 0.0)

    cfg = config(model.KernelOptions())  # --unsafe: plain local kernels
    assert cfg.ResilientExecute.kernel_manager_class == "miglab.grading.execute.FastKernelManager"
    assert FastCheckCellMetadata in cfg.Autograde.autograde_preprocessors
    assert CheckCellMetadata not in cfg.Autograde.autograde_preprocessors
    # nbgrader's sanitize pass keeps its preprocessors, in order, with the faster check
    from nbgrader.converters import Autograde

    default = Autograde.class_traits()["sanitize_preprocessors"].default()
    assert cfg.Autograde.sanitize_preprocessors == [
        FastCheckCellMetadata if p is CheckCellMetadata else p for p in default
    ]
    assert cfg.Exporter.optimistic_validation is True
    cfg = config(model.KernelOptions(manager_class="miglab.sandbox.kernel:SandboxKernelManager"))
    assert cfg.ResilientExecute.kernel_manager_class == "miglab.sandbox.kernel.SandboxKernelManager"


# ------------------------------------------------------------------ metadata check


def course_notebooks() -> list[Path]:
    found = [
        REPO / "source" / "deep_dive" / "deep_dive.ipynb",
        REPO / "release" / "deep_dive" / "deep_dive.ipynb",
        *sorted((REPO / "tests" / "submissions").rglob("*.ipynb")),
    ]
    return [p for p in found if p.exists()]


def read(path: Path):
    try:
        return nbformat.read(str(path), as_version=4)
    except Exception:  # noqa: BLE001 - hostile files: any failure to read is a non-notebook
        return None


def verdict(check, nb) -> tuple[str, str]:
    try:
        check(nb)
    except Exception as exc:  # noqa: BLE001 - the verdict compared is whatever was raised
        return type(exc).__name__, str(exc)
    return "ok", ""


def assert_same(nb) -> tuple[str, str]:
    """nbgrader's validator and ours agree (error type and message); so do the two preprocessors."""
    ours = verdict(_FastMetadataValidator().validate_nb, copy.deepcopy(nb))
    theirs = verdict(MetadataValidator().validate_nb, copy.deepcopy(nb))
    assert ours == theirs
    pp_ours = verdict(lambda n: FastCheckCellMetadata().preprocess(n, {}), copy.deepcopy(nb))
    pp_theirs = verdict(lambda n: CheckCellMetadata().preprocess(n, {}), copy.deepcopy(nb))
    assert pp_ours == pp_theirs
    return ours


@pytest.mark.slow  # several seconds: left out of make test-fast's quick loop
def test_metadata_check_accepts_the_course_notebooks_as_nbgrader_does():
    notebooks = [nb for nb in map(read, course_notebooks()) if nb is not None]
    assert len(notebooks) >= 8
    accepted = [nb for nb in notebooks if assert_same(nb) == ("ok", "")]
    assert len(accepted) >= 8
    FastCheckCellMetadata().preprocess(read(REPO / "source" / "deep_dive" / "deep_dive.ipynb"), {})


def graded_cells(nb):
    return [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]


def mutations():
    """(name, function changing a copy of the source notebook) pairs nbgrader must reject or accept."""

    def dup(nb):
        a, b = graded_cells(nb)[:2]
        b.metadata.nbgrader.grade_id = a.metadata.nbgrader.grade_id

    def meta(key, value):
        def change(nb):
            m = graded_cells(nb)[0].metadata.nbgrader
            if value is KeyError:
                del m[key]
            else:
                m[key] = value

        return change

    def markdown(**flags):
        def change(nb):
            nb.cells.append(
                new_markdown_cell(
                    "answer here",
                    metadata={
                        "nbgrader": dict(
                            {
                                "schema_version": 3,
                                "grade": False,
                                "solution": False,
                                "locked": False,
                                "grade_id": "md_x",
                                "points": 1,
                            },
                            **flags,
                        )
                    },
                )
            )

        return change

    def code_task(nb):
        nb.cells.append(
            new_code_cell(
                "x = 1",
                metadata={
                    "nbgrader": {"schema_version": 3, "grade": False, "solution": False, "locked": False, "task": True}
                },
            )
        )

    def plain(nb):
        nb.cells.append(
            new_code_cell(
                "x = 1",
                metadata={"nbgrader": {"schema_version": 3, "grade": False, "solution": False, "locked": False}},
            )
        )

    def retyped(nb):
        graded_cells(nb)[0].metadata.nbgrader["cell_type"] = "markdown"

    return {
        "duplicate_grade_id": (dup, "ValidationError"),
        "missing_points": (meta("points", KeyError), "ValidationError"),
        "points_not_a_number": (meta("points", "ten"), "ValidationError"),
        "negative_points": (meta("points", -1), "ValidationError"),
        "bad_grade_id": (meta("grade_id", "no spaces!"), "ValidationError"),
        "empty_grade_id": (meta("grade_id", ""), "ValidationError"),
        "missing_grade_id": (meta("grade_id", KeyError), "ValidationError"),
        "missing_locked": (meta("locked", KeyError), "ValidationError"),
        "grade_not_boolean": (meta("grade", "yes"), "ValidationError"),
        "extra_key": (meta("surprise", 1), "ValidationError"),
        "short_checksum": (meta("checksum", "abc"), "ValidationError"),
        "schema_too_old": (meta("schema_version", 2), SchemaTooOldError.__name__),
        "schema_too_new": (meta("schema_version", 4), SchemaTooNewError.__name__),
        "markdown_grade_not_solution": (markdown(grade=True), "ValidationError"),
        "markdown_solution_not_grade": (markdown(solution=True), "ValidationError"),
        "task_on_a_code_cell": (code_task, "ValidationError"),
        "markdown_grade_and_solution": (markdown(grade=True, solution=True), "ok"),
        "plain_nbgrader_cell": (plain, "ok"),
        "changed_cell_type": (retyped, "ok"),
    }


@pytest.mark.parametrize("name", list(mutations()))
def test_metadata_check_rejects_what_nbgrader_rejects(name):
    change, expected = mutations()[name]
    nb = read(REPO / "source" / "deep_dive" / "deep_dive.ipynb")
    change(nb)
    kind, message = assert_same(nb)
    assert kind == expected, message
    if expected == "ValidationError":
        with pytest.raises(ValidationError, match="the nbgrader metadata may be corrupted"):
            FastCheckCellMetadata().preprocess(nb, {})

"""A student's set-up, on a machine that has nothing of the repository but what the student receives.

The instructor side: a copy of the course releases deep_dive into its own exchange, and
``tools/student_package.py`` (``make student-package``) builds the student package from it. The
student side: a home of its own, the package folder only, and the one documented command
``sh install.sh VENV``; then ``nbgrader fetch_assignment deep_dive`` with no flags (the package's
nbgrader settings name the course and the exchange), and the fetched notebook executed with nbclient
in that environment's own kernel: its first cell, then every visible check, on an untouched copy and
on a solved one. Nothing of the checkout is on that environment's path (no editable install, no
PYTHONPATH, a working folder outside the checkout).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
BIN = Path(PY).parent
A = "deep_dive"

RUN_NOTEBOOK = r"""
import json, sys
import nbformat
from nbclient import NotebookClient

path, out, extra = sys.argv[1], sys.argv[2], sys.argv[3]
nb = nbformat.read(path, as_version=4)
nb.cells.append(nbformat.v4.new_code_cell(extra))
NotebookClient(nb, kernel_name="python3", timeout=180, allow_errors=True,
               resources={"metadata": {"path": sys.argv[4]}}).execute()
nbformat.write(nb, out)
"""

WHERE = "import json, sys, miglab, django; print(json.dumps([sys.executable, miglab.__file__, django.__version__]))"


def run(args, cwd, env=None, timeout=900):
    out = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{args}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    base = tmp_path_factory.mktemp("student-setup")
    # the instructor: a course of its own, released into its own exchange, and the student package
    course = base / "course"
    course.mkdir()
    for name in ("nbgrader_config.py", "grader_config.py"):
        shutil.copy2(REPO / name, course / name)
    for name in ("source", "release"):
        shutil.copytree(REPO / name, course / name)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    run([BIN / "nbgrader", "release_assignment", A], course, env)
    package = base / "package"
    run([PY, REPO / "tools" / "student_package.py", "--course", course, "--out", package], base, env)
    # the student: a home, the package folder, a Python >= 3.12 and nothing else
    home = base / "home"
    home.mkdir()
    venv = home / "venv"
    clean = {
        "HOME": str(home),
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "PIP_CACHE_DIR": str(Path(os.path.expanduser("~")) / ".cache" / "pip"),  # downloads only
        "PYTHON": os.path.realpath(getattr(sys, "_base_executable", PY)),
    }
    install = run(["sh", package / "install.sh", venv], home, clean, timeout=1200)
    student_env = {"HOME": str(home), "PATH": f"{venv / 'bin'}:/usr/bin:/bin", "LANG": "C.UTF-8"}
    fetch = run([venv / "bin" / "nbgrader", "fetch_assignment", A], home, student_env)
    return {
        "base": base,
        "course": course,
        "package": package,
        "home": home,
        "venv": venv,
        "env": student_env,
        "install": install,
        "fetch": fetch,
    }


def execute(student, notebook: Path, name: str) -> tuple:
    """Run ``notebook`` in the student's own kernel; (executed notebook, [python, miglab file, django version])."""
    runner = student["base"] / "run_notebook.py"
    runner.write_text(RUN_NOTEBOOK)
    out = student["home"] / f"{name}.executed.ipynb"
    run(
        [student["venv"] / "bin" / "python", runner, notebook, out, WHERE, notebook.parent],
        student["home"],
        student["env"],
        timeout=900,
    )
    nb = nbformat.read(out, as_version=4)
    last = nb.cells.pop()
    where = json.loads("".join(o.get("text", "") for o in last.outputs if o.output_type == "stream"))
    return nb, where


def errors(cell) -> list:
    return [o for o in cell.get("outputs", []) if o.output_type == "error"]


def text(cell, stream=None) -> str:
    return "".join(
        o.get("text", "")
        for o in cell.get("outputs", [])
        if o.output_type == "stream" and (stream is None or o.name == stream)
    )


def test_the_package_is_the_machinery_and_its_pins():
    """What `make student-package` ships: one wheel of miglab (no assignment in it), the pins, the config."""
    out = subprocess.run(
        [PY, REPO / "tools" / "student_package.py", "--out", "/tmp/miglab-student-pkg-check"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    package = Path("/tmp/miglab-student-pkg-check")
    try:
        files = sorted(p.name for p in package.iterdir())
        assert files == ["install.sh", "miglab-0.1.0-py3-none-any.whl", "nbgrader_config.py", "requirements.txt"]
        names = zipfile.ZipFile(package / files[1]).namelist()
        assert {n.split("/")[0] for n in names} == {"miglab", "miglab-0.1.0.dist-info"}
        assert "miglab/lab/template/manage.py" in names and "miglab/evidence/record.py" in names
        assert not [n for n in names if n.endswith((".ipynb", ".pyc")) or A in n or "source/" in n]
        assert all((REPO / n).is_file() for n in names if n.startswith("miglab/"))  # the package, nothing else
        pins = [line for line in (package / "requirements.txt").read_text().splitlines() if not line.startswith("#")]
        course_pins = (REPO / "requirements.txt").read_text().splitlines()
        assert pins and all(p in course_pins for p in pins)
        assert {p.split("==")[0] for p in pins} >= {"Django", "nbgrader", "jupyterlab", "ipykernel", "nbclient"}
        config = (package / "nbgrader_config.py").read_text()
        assert "c.CourseDirectory.course_id = 'migrations-deep-dive'" in config
        assert f"c.Exchange.root = {str(REPO / '.exchange')!r}" in config
    finally:
        shutil.rmtree(package, ignore_errors=True)


def test_install_puts_the_course_settings_in_the_environment(student):
    venv = student["venv"]
    assert (venv / "etc" / "jupyter" / "nbgrader_config.py").read_text() == (
        student["package"] / "nbgrader_config.py"
    ).read_text()
    assert "nbgrader fetch_assignment deep_dive" in student["install"].stdout


def test_fetch_needs_no_flags_and_gives_the_release(student):
    fetched = student["home"] / A / f"{A}.ipynb"
    assert fetched.read_bytes() == (REPO / "release" / A / f"{A}.ipynb").read_bytes()
    assert "ERROR" not in student["fetch"].stdout + student["fetch"].stderr


def test_the_untouched_notebook_runs_its_first_cell_and_checks_in_the_students_kernel(student):
    nb, where = execute(student, student["home"] / A / f"{A}.ipynb", "blank")
    python, miglab_file, django_version = where
    assert Path(python).parent == student["venv"] / "bin"  # the student's own kernel
    assert Path(miglab_file).is_relative_to(student["venv"]) and not Path(miglab_file).is_relative_to(REPO)
    assert django_version == "6.1.3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    setup = code[0]
    assert setup.metadata["nbgrader"]["grade_id"] == "setup" and errors(setup) == [], errors(setup)
    checks = [c for c in code if c.metadata.get("nbgrader", {}).get("grade")]
    assert len(checks) == 34
    for cell in checks:  # a check reports; nothing is missing from the package
        for o in errors(cell):
            assert o.ename in ("NameError", "NotImplementedError"), (cell.metadata["nbgrader"]["grade_id"], o)
    assert "✘" in "".join(text(c, "stderr") for c in checks)


def test_a_solved_notebook_passes_every_visible_check_there(student):
    sys.path.insert(0, str(REPO))
    from miglab.grading.validate import solution_notebook

    source = json.loads((REPO / "source" / A / f"{A}.ipynb").read_text())
    solved = student["home"] / "solved" / f"{A}.ipynb"
    solved.parent.mkdir()
    solved.write_text(json.dumps(solution_notebook(source, REPO, A, A)))  # the student's own work
    nb, _ = execute(student, solved, "solved")
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.metadata.get("nbgrader", {}).get("grade_id") for c in code if errors(c)] == []
    checks = [c for c in code if c.metadata.get("nbgrader", {}).get("grade")]
    visible = [c for c in checks if "check(" in c.source]
    assert len(visible) >= 20
    for cell in visible:
        gid = cell.metadata["nbgrader"]["grade_id"]
        assert "✘" not in text(cell), (gid, text(cell))
        assert "✔" in text(cell, "stdout") or "recorded" in text(cell, "stdout"), (gid, text(cell))

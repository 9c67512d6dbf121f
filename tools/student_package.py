"""Build what a student of this course needs to run the release notebooks: `make student-package`.

    .venv/bin/python tools/student_package.py                  # dist/student/ from this checkout
    .venv/bin/python tools/student_package.py --course DIR --out DIR

It writes, into dist/student/ (git-ignored):

* ``miglab-<version>-py3-none-any.whl``: the course package, machinery only (the lab, the evidence
  checks, the sandbox and the grading engine; no assignment: nothing of ``source/`` is in ``miglab/``);
* ``requirements.txt``: the pins of this course's ``requirements.txt`` a student's notebooks use
  (Django, Jupyter, nbgrader for fetch/submit, the picture libraries), exactly as pinned there;
* ``nbgrader_config.py``: the student side of this course's nbgrader settings: the course id and
  the exchange (``Exchange.root`` of ``grader_config.py``), so ``nbgrader fetch_assignment deep_dive``,
  ``submit`` and ``fetch_feedback`` need no flags;
* ``install.sh``: the student's one command. ``sh install.sh [VENV]`` makes a virtual environment
  (default ``~/.venvs/migrations-deep-dive``) with a Python >= 3.12, installs the pins and the wheel,
  and puts ``nbgrader_config.py`` into ``VENV/etc/jupyter/`` (a folder Jupyter and nbgrader read
  whenever they run from that environment).

Give students the folder (on one machine they can run ``sh <checkout>/dist/student/install.sh``).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# What a student's notebooks import or run, by requirement name (their pins come from requirements.txt).
STUDENT_REQUIREMENTS = (
    "Django",
    "jupyterlab",
    "notebook",
    "ipykernel",
    "ipywidgets",
    "nbformat",
    "nbclient",
    "nbgrader",
    "matplotlib",
    "networkx",
)

INSTALL_SH = r"""#!/bin/sh
# Migrations Deep Dive, student set-up: sh install.sh [VENV]   (default VENV: ~/.venvs/migrations-deep-dive)
# Makes VENV with a Python >= 3.12, installs the course's pinned requirements and its package (the wheel
# beside this script), and the course's nbgrader settings (exchange, course id) into VENV/etc/jupyter/.
set -e
HERE=$(cd "$(dirname "$0")" && pwd)
VENV=${1:-$HOME/.venvs/migrations-deep-dive}
ok() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; }
PY=
for c in "${PYTHON:-}" python3.14 python3.13 python3.12 python3 python; do
  [ -n "$c" ] || continue
  p=$(command -v "$c" 2>/dev/null) || continue
  if ok "$p"; then PY=$p; break; fi
done
if [ -z "$PY" ]; then
  for p in $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -rV); do
    if ok "$p"; then PY=$p; break; fi
  done
fi
if [ -z "$PY" ]; then
  echo "error: this course needs Python 3.12 or newer (Django 6 requires it)." >&2
  echo "  Install one, or name it: PYTHON=/path/to/python3.12 sh $0" >&2
  exit 1
fi
echo "Creating $VENV with $PY"
"$PY" -m venv "$VENV"
echo "Installing the course's requirements and package (first time: about a minute)..."
"$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$HERE/requirements.txt" "$HERE"/miglab-*.whl
mkdir -p "$VENV/etc/jupyter"
cp "$HERE/nbgrader_config.py" "$VENV/etc/jupyter/nbgrader_config.py"
echo
echo "Done. In a new shell:"
echo "  source $VENV/bin/activate"
echo "  cd ~ && nbgrader fetch_assignment deep_dive     # ~/deep_dive/deep_dive.ipynb"
echo "  jupyter lab                                     # work in deep_dive/deep_dive.ipynb"
echo "  nbgrader submit deep_dive                       # as often as you like: the last one counts"
echo "  nbgrader fetch_feedback deep_dive               # once the instructor has released feedback"
"""


def pins(requirements: Path, names=STUDENT_REQUIREMENTS) -> list[str]:
    """The lines of ``requirements`` pinning ``names`` (in that order); SystemExit if one is missing."""
    found = {}
    for raw in requirements.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        m = re.match(r"^([A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*==", line)
        if m:
            found[m.group(1).lower()] = line
    missing = [n for n in names if n.lower() not in found]
    if missing:
        raise SystemExit(f"{requirements} pins none of {', '.join(missing)}")
    return [found[n.lower()] for n in names]


def student_config(course: Path) -> str:
    """The student side of the course's nbgrader settings: course id and exchange root."""
    sys.path.insert(0, str(ROOT))
    from miglab.grading.assignment import load_course_config

    config = load_course_config(course)
    course_id = config.get("CourseDirectory", {}).get("course_id")
    root = config.get("Exchange", {}).get("root")
    if not course_id or not root:
        raise SystemExit(f"{course}/nbgrader_config.py sets no CourseDirectory.course_id or Exchange.root")
    return (
        "# nbgrader settings for a student of this course (made by `make student-package`).\n"
        "# Read from <venv>/etc/jupyter/ (install.sh puts it there) or ~/.jupyter/.\n"
        "c = get_config()  # noqa: F821\n"
        f"c.CourseDirectory.course_id = {course_id!r}\n"
        f"c.Exchange.root = {root!r}\n"
    )


def build_wheel(root: Path, out: Path) -> Path:
    """A wheel of ``miglab`` built from a clean copy (no caches, nothing written into the checkout)."""
    with tempfile.TemporaryDirectory(prefix="miglab-wheel-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        shutil.copy2(root / "pyproject.toml", src / "pyproject.toml")
        shutil.copytree(
            root / "miglab", src / "miglab", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints")
        )
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--disable-pip-version-check",
                "-q",
                "--no-deps",
                "--no-build-isolation",
                "-w",
                str(Path(tmp) / "dist"),
                str(src),
            ],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise SystemExit(f"building the wheel failed:\n{done.stdout}\n{done.stderr}")
        wheels = list((Path(tmp) / "dist").glob("miglab-*.whl"))
        if len(wheels) != 1:
            raise SystemExit(f"expected one miglab wheel, found {wheels}")
        for old in out.glob("miglab-*.whl"):
            old.unlink()
        return Path(shutil.copy2(wheels[0], out / wheels[0].name))


def build(course: Path = ROOT, out: Path | None = None) -> Path:
    out = Path(out or ROOT / "dist" / "student")
    out.mkdir(parents=True, exist_ok=True)
    if out.parent == ROOT / "dist":
        (out.parent / ".gitignore").write_text("# made by tools/student_package.py\n*\n")
    wheel = build_wheel(ROOT, out)
    (out / "requirements.txt").write_text(
        "# The pins a student of Migrations Deep Dive needs (from the course's requirements.txt).\n"
        + "\n".join(pins(ROOT / "requirements.txt"))
        + "\n"
    )
    (out / "nbgrader_config.py").write_text(student_config(Path(course)))
    (out / "install.sh").write_text(INSTALL_SH)
    (out / "install.sh").chmod(0o755)
    for path in [out, *out.iterdir()]:  # students on this machine read it from their own accounts
        path.chmod(path.stat().st_mode | 0o044 | (0o011 if path.is_dir() else 0))
    print(
        f"student package: {out}/ ({wheel.name}, requirements.txt, nbgrader_config.py, install.sh)\n"
        f"a student runs:  sh {out}/install.sh"
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--course",
        default=str(ROOT),
        help="course folder whose nbgrader settings students get (default: this checkout)",
    )
    parser.add_argument("--out", help="output folder (default: dist/student)")
    args = parser.parse_args(argv)
    build(Path(args.course).resolve(), Path(args.out).resolve() if args.out else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())

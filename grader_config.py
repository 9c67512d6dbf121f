"""This course's nbgrader settings. `nbgrader_config.py` loads this file, so the
nbgrader command line and JupyterLab's nbgrader extension both see them."""

import os
import sys
from pathlib import Path

c = get_config()

# nbgrader runs `alembic` by name when it makes a gradebook: run as .venv/bin/nbgrader without the venv on
# PATH, `generate_assignment --force` would delete release/<a> and then fail. The venv's bin folder first.
_BIN = os.path.dirname(sys.executable)
if _BIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = _BIN + os.pathsep + os.environ.get("PATH", "")

HERE = Path(__file__).resolve().parent

c.CourseDirectory.course_id = "migrations-deep-dive"
c.CourseDirectory.root = str(HERE)
c.CourseDirectory.db_url = f"sqlite:///{HERE / 'gradebook.db'}"

# Each cell may run this long before it is interrupted (the lab runs real manage.py commands).
c.ExecutePreprocessor.timeout = 60
c.Execute.timeout = 60

# A student who deletes a test cell gets it back, graded, instead of "needs manual grading".
# (The course's grading command puts missing cells back itself before nbgrader runs; plain nbgrader uses this.)
c.OverwriteCells.add_missing_cells = True

# Feedback shows what failed, not the hidden test code.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbgrader.preprocessors.ClearHiddenTests",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]

# An assignment's rules.py is read by the grader only: never copied into release/ (nor next to a kernel).
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", ".hypothesis", "rules.py"]

# The exchange (nbgrader's release/fetch/submit/collect) for a class on this machine: .exchange/ in this
# checkout, git-ignored, made here the first time any nbgrader command or the formgrader loads this file,
# with the mode nbgrader's release_assignment wants (0o777: students write into <course>/inbound). A
# shared JupyterHub sets its own root in /etc/jupyter/nbgrader_config.py; set it there and delete these lines.
EXCHANGE = HERE / ".exchange"
c.Exchange.root = str(EXCHANGE)
if not EXCHANGE.is_dir():
    try:
        EXCHANGE.mkdir()
        EXCHANGE.chmod(0o777)
    except OSError:  # a read-only checkout (a sandbox, say): nbgrader says so when the exchange is used
        pass

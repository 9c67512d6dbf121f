# Migrations Deep Dive: every target sets itself up from a fresh clone.
#   make lab     open the course in JupyterLab
#   make test    run the whole test suite (CI runs exactly this)
# Set PYTHON=/path/to/python3.12 to choose the interpreter; PORT to move the lab.

VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PORT   ?= 8888
PYTEST_ARGS ?=

# Tools that JupyterLab's extensions call by name (nbgrader's formgrader runs `alembic`) come from .venv.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup lab test test-fast lint typecheck grade grade-me student-package release bench site clean

setup: $(STAMP)

# Create .venv with a Python >= 3.12 and install the pinned requirements.
# Re-runs only when requirements.txt or pyproject.toml change.
$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || { py=$$(PYTHON="$(PYTHON)" sh tools/find-python.sh) || exit 1; \
	  echo "Creating $(VENV) with $$py"; "$$py" -m venv $(VENV) || exit 1; }
	@echo "Installing pinned requirements into $(VENV) (first time: about a minute)..."
	@$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt -e . \
	  > $(VENV)/pip.log 2>&1 || { cat $(VENV)/pip.log; echo "pip install failed (log: $(VENV)/pip.log)"; exit 1; }
	@touch $(STAMP)

lab: $(STAMP)
	@sh tools/install_postgres.sh
	@echo "Starting JupyterLab on the course. Open the URL printed below (Ctrl-C stops it)."
	$(VENV)/bin/jupyter lab --no-browser --allow-root --ip=127.0.0.1 --port=$(PORT) \
	  --ServerApp.root_dir="$(CURDIR)" --LabApp.default_url=/lab/tree/notebooks/01_what_is_a_migration.ipynb

test: $(STAMP)
	@sh tools/install_isolation.sh
	@sh tools/install_postgres.sh
	$(PY) -m pytest $(PYTEST_ARGS)

# The quick loop for contributors: everything but the browser and whole-class grading runs.
test-fast: $(STAMP)
	@sh tools/install_isolation.sh
	@sh tools/install_postgres.sh
	$(PY) -m pytest -m "not slow and not browser" $(PYTEST_ARGS)

# Style and the package's shape: ruff (lint and format) and import-linter's layer contracts.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --config pyproject.toml

# Strict type checking where trust is decided: the evidence, the judge, the results model.
typecheck: $(STAMP)
	$(VENV)/bin/mypy

# Regenerate release/ from source/ (nbgrader generate_assignment, every assignment) and the test classes
# made from the releases (the sample classes, the production class and the hostile corpus).
release: $(STAMP)
	$(PY) tools/release.py
	$(PY) tests/submissions/make_sample_class.py
	$(PY) tests/submissions/production/make_production_class.py
	$(PY) tests/submissions/hostile/make_hostile.py

# Grade a whole class in parallel: make grade ARGS="deep_dive -j 4 --force" runs
# python -m miglab.grading grade deep_dive -j 4 --force (every option: python -m miglab.grading grade --help).
# With no ARGS: the sample class (tests/submissions/deep_dive) in the scratch course .grading/.
# (GRADE=... is the old name of ARGS and still works.)
ARGS  ?=
GRADE ?=
SAMPLE ?= tests/submissions/deep_dive
grade: $(STAMP)
	@sh tools/install_isolation.sh
	$(PY) -m miglab.grading grade $(if $(strip $(GRADE)$(ARGS)),$(GRADE) $(ARGS),--sample-class $(SAMPLE))

# A learner grades their own working copy with the instructor's sandbox and judge (the notebook is only read):
# make grade-me NOTEBOOK=release/deep_dive/deep_dive.ipynb   (python -m miglab.grading me --help)
NOTEBOOK ?= release/deep_dive/deep_dive.ipynb
grade-me: $(STAMP)
	@sh tools/install_isolation.sh
	$(PY) -m miglab.grading me "$(NOTEBOOK)" $(ARGS)

# What a student needs to run the release notebooks: dist/student/ (the course package as a wheel, its pinned
# requirements, the student's nbgrader settings, install.sh). A student runs: sh dist/student/install.sh
student-package: $(STAMP)
	$(PY) tools/student_package.py

# Speed figures: lab commands (cold vs fork server vs in-process) and whole lessons.
bench: $(STAMP)
	$(PY) bench/bench_lab.py
	$(PY) bench/bench_lessons.py

# The course website (Jupyter Book 1, from the lessons' stored outputs; nothing runs, nothing is
# downloaded but the site tools): _site/html/index.html. Its tools are pinned in requirements-site.txt
# and live in their own _site/.venv, never in the learner's .venv. SITE="--repository URL" adds Binder buttons.
SITE ?=
site:
	@test -x _site/.venv/bin/python || { py=$$(PYTHON="$(PYTHON)" sh tools/find-python.sh) || exit 1; \
	  echo "Creating _site/.venv (the site tools) with $$py"; "$$py" -m venv _site/.venv || exit 1; }
	@test _site/.venv/.installed -nt requirements-site.txt || { \
	  echo "Installing requirements-site.txt into _site/.venv..."; \
	  _site/.venv/bin/python -m pip install --disable-pip-version-check -q -r requirements-site.txt \
	    > _site/.venv/pip.log 2>&1 || { cat _site/.venv/pip.log; echo "pip install failed (log: _site/.venv/pip.log)"; exit 1; }; \
	  touch _site/.venv/.installed; }
	_site/.venv/bin/python tools/build_site.py $(SITE)

clean:
	rm -rf .labs .pytest_cache

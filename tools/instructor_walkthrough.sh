#!/bin/bash
# The README's instructor section ("Teaching a class on this machine"), run word for word.
#
#   bash tools/instructor_walkthrough.sh COURSE STUDENTS
#
# COURSE is a copy of this checkout (its Makefile, nbgrader_config.py, grader_config.py, source/,
# release/, tools/ and a .venv); STUDENTS is a command run as `STUDENTS <step>` where the README says
# the students act (steps: fetch-and-submit, resubmit, fetch-feedback). tests/test_classroom.py runs
# it with three students, each a Unix user of their own with their own home. The lines between the
# two markers below are the README's commands, in order (tests/test_classroom.py checks README.md
# against them); nothing else here is an instructor command.
set -euo pipefail
COURSE=$1
STUDENTS=$2
students() { echo "== students: $1"; $STUDENTS "$1"; }
cd "$COURSE"
set -x
# --- README instructor commands: begin ---
source .venv/bin/activate
nbgrader generate_assignment deep_dive --force
nbgrader release_assignment deep_dive
students fetch-and-submit
nbgrader collect deep_dive
make grade ARGS="deep_dive -j 2"
students resubmit
nbgrader collect --update deep_dive
make grade ARGS="deep_dive"
nbgrader release_feedback deep_dive
students fetch-feedback
python -m miglab.grading export deep_dive --format canvas
# --- README instructor commands: end ---

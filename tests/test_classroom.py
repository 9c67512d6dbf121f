"""A class on one machine, end to end, with the README's instructor commands run word for word.

tools/instructor_walkthrough.sh runs the instructor's commands in a copy of this checkout (its own
.exchange/, made by grader_config.py); where the README says the students act, it calls this file
as a script (``python tests/test_classroom.py students STATE STEP``). The three students are Unix
users of their own (``mdd_alice``, ``mdd_bob``, ``mdd_carol``: made for the test and removed after
it, which needs root), each with their own home, running the course's nbgrader with no flags at
all: their ``~/.jupyter/nbgrader_config.py`` is the student config ``make student-package`` ships
(course id and exchange). Where users cannot be made (not root), they share the test's user and
differ by home, and pass ``--student`` (nbgrader takes the student id from the Unix user name).

Steps: generate (release/ stays byte-for-byte the committed one, the gradebook gets the assignment),
release, three fetches and submissions (full marks, a partial answer, an untouched notebook), collect,
grade, bob resubmits, ``collect --update``, grade again (only bob), release feedback, three feedback
fetches, the Canvas export.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
BIN = Path(PY).parent
SAMPLE = REPO / "tests" / "submissions" / "deep_dive"
WALKTHROUGH = REPO / "tools" / "instructor_walkthrough.sh"
A = "deep_dive"
WORK = {"mdd_alice": "perfect", "mdd_bob": "partial", "mdd_carol": "blank"}
MARKERS = ("# --- README instructor commands: begin ---", "# --- README instructor commands: end ---")


def _student_package():
    spec = importlib.util.spec_from_file_location("student_package", REPO / "tools" / "student_package.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------- the students (run as a script)


# The mounts that let another user run this Python when it lives in a private home (pyenv under /root,
# mode 700, is the only Python >= 3.12 on the course's CI machines): in a mount namespace of its own, the
# private folder is covered by an empty tmpfs with only the interpreter's folder bound back into it.
EXPOSE = """set -e
d=$(mktemp -d)
mount --bind "$EXPOSE_DIR" "$d"
mount -t tmpfs -o mode=0755,size=1m tmpfs "$PRIVATE_DIR"
mkdir -p "$EXPOSE_DIR"
mount --bind "$d" "$EXPOSE_DIR"
umount "$d"; rmdir "$d"
exec "$@"
"""


def private_ancestor(path: Path) -> tuple[Path, Path] | None:
    """(the first folder above ``path`` that other users cannot enter, its child on the way), or None."""
    parts = path.resolve().parents
    for folder in reversed(parts):
        if not folder.stat().st_mode & stat.S_IXOTH:
            child = next(p for p in [path.resolve(), *parts] if p.parent == folder)
            return folder, child
    return None


def as_student(state: dict, name: str, args: list, check: bool = True) -> subprocess.CompletedProcess:
    user = state["users"][name]
    env = {
        "HOME": user["home"],
        "PATH": f"{BIN}{os.pathsep}/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "USER": user["login"],
        "LOGNAME": user["login"],
    }
    cmd = [str(a) for a in args]
    if user["own_user"]:
        cmd = ["setpriv", f"--reuid={user['uid']}", f"--regid={user['gid']}", "--clear-groups", "--", *cmd]
        hidden = private_ancestor(Path(os.path.realpath(PY)))
        if hidden:
            env.update(PRIVATE_DIR=str(hidden[0]), EXPOSE_DIR=str(hidden[1]))
            cmd = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", EXPOSE, "sh", *cmd]
    out = subprocess.run(cmd, cwd=user["home"], env=env, capture_output=True, text=True, timeout=300)
    if check and out.returncode != 0:
        raise SystemExit(f"{name}: {args} failed ({out.returncode})\n{out.stdout}\n{out.stderr}")
    return out


def nbgrader(state: dict, name: str, *args: str) -> subprocess.CompletedProcess:
    flags = [] if state["users"][name]["own_user"] else ["--student", name]  # the same Unix user for all
    out = as_student(state, name, [BIN / "nbgrader", *args, *flags])
    if "| ERROR]" in out.stdout + out.stderr:  # nbgrader's fetch can fail and still exit 0
        raise SystemExit(f"{name}: nbgrader {' '.join(args)} reported an error\n{out.stdout}\n{out.stderr}")
    return out


def students(state_file: str, step: str) -> None:
    state = json.loads(Path(state_file).read_text())
    log = Path(state["log"])
    for name, kind in WORK.items():
        home = Path(state["users"][name]["home"])
        mine = home / A / f"{A}.ipynb"
        if step == "fetch-and-submit":
            nbgrader(state, name, "fetch_assignment", A)
            if mine.read_bytes() != Path(state["release"]).read_bytes():
                raise SystemExit(f"{name} fetched something else than release/{A}/{A}.ipynb")
            if kind != "blank":
                as_student(state, name, ["cp", SAMPLE / f"{kind}.ipynb", mine])
            nbgrader(state, name, "submit", A)
        elif step == "resubmit" and name == "mdd_bob":
            time.sleep(1.1)  # nbgrader orders submissions by their time stamps
            as_student(state, name, ["cp", SAMPLE / "perfect.ipynb", mine])
            nbgrader(state, name, "submit", A)
        elif step == "fetch-feedback":
            nbgrader(state, name, "fetch_feedback", A)
        with open(log, "a") as fh:
            fh.write(f"{step} {name} ok\n")


# ------------------------------------------------------------------------------ the test


def _make_users(base: Path) -> dict:
    own = os.geteuid() == 0 and shutil.which("useradd") is not None
    users = {}
    for name in WORK:
        home = base / "homes" / name
        home.mkdir(parents=True)
        if own:
            try:
                pwd.getpwnam(name)
            except KeyError:
                subprocess.run(
                    [
                        "useradd",
                        "--no-create-home",
                        "--home-dir",
                        str(home),
                        "--shell",
                        "/usr/sbin/nologin",
                        "--user-group",
                        name,
                    ],
                    check=True,
                    capture_output=True,
                )
            entry = pwd.getpwnam(name)
            uid, gid, login = entry.pw_uid, entry.pw_gid, name
        else:
            uid, gid, login = os.getuid(), os.getgid(), pwd.getpwuid(os.getuid()).pw_name
        (home / ".jupyter").mkdir()
        users[name] = {"home": str(home), "uid": uid, "gid": gid, "login": login, "own_user": own}
    return users


def _remove_users(users: dict) -> None:
    for name, user in users.items():
        if user["own_user"]:
            subprocess.run(["userdel", name], capture_output=True)


def _course_copy(course: Path) -> None:
    """What the README's commands touch of a checkout, copied; its .venv is the checkout's."""
    course.mkdir()
    for name in ("Makefile", "nbgrader_config.py", "grader_config.py", "requirements.txt", "pyproject.toml"):
        shutil.copy2(REPO / name, course / name)
    for name in ("source", "release", "tools"):
        shutil.copytree(REPO / name, course / name, ignore=shutil.ignore_patterns("__pycache__"))
    (course / ".venv").mkdir()  # the checkout's .venv is bind-mounted here (see IN_COURSE)
    # The copy's pins count as installed: make must never reinstall the shared .venv from this copy.
    stamp = (REPO / ".venv" / ".installed").stat().st_mtime
    for name in ("requirements.txt", "pyproject.toml"):
        os.utime(course / name, (stamp - 1, stamp - 1))


# The walkthrough runs in a mount namespace of its own where the checkout's .venv is bind-mounted at
# COURSE/.venv: a real folder there, as in a checkout (a symbolic link would not do: the grading sandbox
# mounts the interpreter's resolved folders but starts it by its unresolved path). make would rebuild an
# out-of-date .venv from this copy (an editable install pointing here): never; exit 97 instead.
IN_COURSE = """set -e
mount --bind "$VENV" "$COURSE/.venv"
cd "$COURSE"
make -q .venv/.installed || exit 97
exec bash "$WALKTHROUGH" "$COURSE" "$STUDENTS"
"""


@pytest.fixture(scope="module")
def classroom():
    base = Path(tempfile.mkdtemp(prefix="miglab-classroom-", dir="/tmp"))
    base.chmod(0o755)  # students' own users reach their homes and the exchange through it
    course = base / "course"
    _course_copy(course)
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        shutil.rmtree(base)
        pytest.skip("the classroom needs root (students' users, the grading sandbox, a private mount)")
    users = _make_users(base)
    try:
        config = _student_package().student_config(course)
        for user in users.values():
            path = Path(user["home"]) / ".jupyter" / "nbgrader_config.py"
            path.write_text(config)
            for p in (Path(user["home"]), path.parent, path):
                os.chown(p, user["uid"], user["gid"])
            Path(user["home"]).chmod(0o700)
        state = {"users": users, "release": str(REPO / "release" / A / f"{A}.ipynb"), "log": str(base / "students.log")}
        state_file = base / "state.json"
        state_file.write_text(json.dumps(state))
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "MAKEFLAGS", "MFLAGS")}
        env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if Path(p) != BIN)
        started = time.monotonic()
        env.update(
            VENV=str(REPO / ".venv"),
            COURSE=str(course),
            WALKTHROUGH=str(WALKTHROUGH),
            STUDENTS=f"{PY} {Path(__file__).resolve()} students {state_file}",
        )
        run = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", IN_COURSE],
            env=env,
            capture_output=True,
            text=True,
            timeout=1500,
        )
        if run.returncode == 97:
            pytest.fail("make would reinstall .venv from the copy (run `make setup` in the checkout first)")
        yield {
            "base": base,
            "course": course,
            "users": users,
            "run": run,
            "state": state,
            "seconds": time.monotonic() - started,
        }
    finally:
        _remove_users(users)
        shutil.rmtree(base, ignore_errors=True)


def test_the_readme_walkthrough_runs_to_the_end(classroom):
    run = classroom["run"]
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-6000:]
    log = Path(classroom["state"]["log"]).read_text().split("\n")
    assert [line for line in log if line] == [
        *(f"fetch-and-submit {s} ok" for s in WORK),
        *(f"resubmit {s} ok" for s in WORK),
        *(f"fetch-feedback {s} ok" for s in WORK),
    ]


def test_students_are_separate_users_with_their_own_homes(classroom):
    users = classroom["users"]
    if os.geteuid() != 0:
        pytest.skip("not root: the students share this user and differ by home only")
    assert len({u["uid"] for u in users.values()}) == 3 and all(u["uid"] != 0 for u in users.values())
    for user in users.values():
        home = Path(user["home"])
        assert home.stat().st_uid == user["uid"]
        assert (home / A / f"{A}.ipynb").stat().st_uid == user["uid"]  # fetched by the student's own user


def test_generate_keeps_the_committed_release_and_fills_the_gradebook(classroom):
    course = classroom["course"]
    assert (course / "release" / A / f"{A}.ipynb").read_bytes() == (REPO / "release" / A / f"{A}.ipynb").read_bytes()
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "migrations-deep-dive") as gb:
        a = gb.find_assignment(A)
        assert sum(c.max_score for nb in a.notebooks for c in nb.grade_cells) == 47
        assert sorted(s.student.id for s in a.submissions) == sorted(WORK)


def test_the_exchange_is_the_checkouts_own_folder(classroom):
    exchange = classroom["course"] / ".exchange"
    assert stat.S_IMODE(exchange.stat().st_mode) == 0o777  # what nbgrader's release_assignment wants
    inbound = exchange / "migrations-deep-dive" / "inbound"
    names = sorted(p.name.split("+")[0] for p in inbound.iterdir())
    assert names == sorted([*WORK, "mdd_bob"])  # bob submitted twice
    assert "Exchange.root" not in classroom["run"].stderr  # nobody passed the exchange by hand


def test_collect_update_takes_the_resubmission_and_only_it_is_graded_again(classroom):
    course, out = classroom["course"], classroom["run"].stdout
    assert (course / "submitted" / "mdd_bob" / A / f"{A}.ipynb").read_bytes() == (SAMPLE / "perfect.ipynb").read_bytes()
    summaries = re.findall(r"deep_dive: (\d+) submissions; graded (\d+) .*?; (\d+) unchanged", out)
    assert summaries == [("3", "3", "0"), ("3", "1", "2")], out[-3000:]


def test_grades_and_feedback_reach_each_student(classroom):
    expected = json.loads((SAMPLE / "expected.json").read_text())
    course = classroom["course"]
    with open(course / "reports" / A / "grades.csv") as fh:
        rows = {r["student_id"]: r for r in csv.DictReader(fh)}
    want = {
        "mdd_alice": expected["perfect"]["total"],
        "mdd_bob": expected["perfect"]["total"],
        "mdd_carol": expected["blank"]["total"],
    }
    assert {s: float(r["total"]) for s, r in rows.items()} == want
    assert {r["status"] for r in rows.values()} == {"ok"}
    for name, user in classroom["users"].items():
        pages = sorted((Path(user["home"]) / A / "feedback").glob(f"*/{A}.html"))
        assert len(pages) == 1, (name, pages)  # bob: the feedback of his latest submission only
        page = pages[0].read_text()
        assert re.findall(r"Score: ([\d.]+) / 47\.0", page) == [f"{want[name]:.1f}"], name
        assert "BEGIN HIDDEN TESTS" not in page


def test_the_canvas_export_lists_the_class(classroom):
    with open(classroom["course"] / "reports" / A / "canvas.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows == [
        ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", A],
        ["    Points Possible", "", "", "", "", "47"],
        ["mdd_alice", "", "", "mdd_alice", "", "47"],
        ["mdd_bob", "", "", "mdd_bob", "", "47"],
        ["mdd_carol", "", "", "mdd_carol", "", "0"],
    ]


def test_the_readme_shows_the_walkthrough_commands():
    """README.md's instructor block holds exactly the walkthrough's commands."""
    script = WALKTHROUGH.read_text()
    body = script.split(MARKERS[0])[1].split(MARKERS[1])[0]
    commands = [line for line in body.strip().splitlines() if not line.startswith("students ")]
    readme = (REPO / "README.md").read_text()
    assert "### Teaching a class on this machine" in readme
    section = readme.split("### Teaching a class on this machine", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    shown = [re.sub(r"\s+#.*$", "", line).strip() for line in block.splitlines()]
    assert [c for c in shown if c and not c.startswith("#")] == commands


def test_the_formgrader_sees_a_working_exchange(tmp_path):
    """In a fresh copy of the course, loading its nbgrader settings makes .exchange/; no warning banner."""
    course = tmp_path / "course"
    course.mkdir()
    for name in ("nbgrader_config.py", "grader_config.py"):
        shutil.copy2(REPO / name, course / name)
    code = (
        "from nbgrader.apps import NbGrader\nfrom nbgrader.apps.api import NbGraderAPI\n"
        "app = NbGrader(); app.load_config_file()\napi = NbGraderAPI(config=app.config)\n"
        "print(api.exchange_root, api.exchange_missing, api.course_id)\n"
    )
    out = subprocess.run([PY, "-c", code], cwd=course, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == [str(course / ".exchange"), "False", "migrations-deep-dive"], out.stderr
    assert stat.S_IMODE((course / ".exchange").stat().st_mode) == 0o777


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "students":
    students(sys.argv[2], sys.argv[3])

"""How much one `manage.py` command costs in the lab, three ways, same run.

    .venv/bin/python bench/bench_lab.py [--repeat 20]

- cold:       `python manage.py CMD` in a new interpreter (the baseline)
- fork:       the lab's fork server (miglab.runner): a warm process forks a
              fresh child that runs the project's real manage.py
- in-process: `call_command` in one long-lived process (the floor; it does not
              re-read edited models, so the lab cannot use it)

Then the same lab on PostgreSQL against SQLite (fork server both, same run): each
command, a migrate forwards and back, a lab made afresh (PostgreSQL: its database
dropped and created again), and the private server's cold start (initdb + start).
`--no-postgres` skips that part.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from miglab import Lab, LabError
from miglab.lab import postgres, runner

COMMANDS = [["showmigrations"], ["sqlmigrate", "library", "0001"], ["migrate", "--plan"]]

IN_PROCESS = r"""
import os, sys, time, io, contextlib
sys.path.insert(0, os.getcwd())
os.environ["DJANGO_SETTINGS_MODULE"] = "project.settings"
import django; django.setup()
from django.core.management import call_command
cmds, repeat = eval(sys.argv[1]), int(sys.argv[2])
for cmd in cmds:
    call_command(*cmd, stdout=io.StringIO())  # warm
    t = time.perf_counter()
    for _ in range(repeat):
        call_command(*cmd, stdout=io.StringIO())
    print((time.perf_counter() - t) / repeat)
"""


def timed(fn, repeat: int) -> float:
    fn()  # warm-up (starts the fork server on first use)
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


BOOK = "class Book(models.Model):\n    title = models.CharField(max_length=80)\n"


def backends(repeat: int, root: str) -> None:
    """The same lab commands on SQLite and on PostgreSQL, fork server both."""
    try:
        pg_lab = Lab("bench_pg", root=root, db="postgresql")
    except LabError as e:
        print(f"\nPostgreSQL: skipped ({str(e).splitlines()[0]})")
        return
    labs = {"sqlite": Lab("bench_sqlite", root=root), "postgresql": pg_lab}
    for lab in labs.values():
        lab.write_models("library", BOOK)
        lab.manage("makemigrations library").check()

    def round_trip(lab: Lab) -> None:
        lab.manage("migrate library").check()
        lab.manage("migrate library zero").check()

    rows = [("manage.py " + " ".join(cmd), lambda lab, cmd=cmd: lab.manage(*cmd).check()) for cmd in COMMANDS]
    rows += [
        ("migrate library + back to zero", round_trip),
        ("Lab(...) made afresh", lambda lab: Lab(lab.name, root=root, db=lab.db)),
    ]
    print(f"\n{'same lab, fork server':32} {'SQLite (ms)':>12} {'PostgreSQL (ms)':>16} {'ratio':>7}")
    for name, fn in rows:
        lite, pg = (timed(lambda fn=fn, lab=labs[db]: fn(lab), repeat) for db in ("sqlite", "postgresql"))
        print(f"{name:32} {lite * 1000:12.1f} {pg * 1000:16.1f} {pg / lite:6.2f}x")

    # The server's cold start: a private one in a folder of its own, started then let go.
    base = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    server = postgres.Server(base)
    t = time.perf_counter()
    server.acquire()
    cold = time.perf_counter() - t
    server.release()
    stopped = time.perf_counter()
    while server.is_running() and time.perf_counter() - stopped < 30:
        time.sleep(0.01)
    print(
        f"{'PostgreSQL server cold start':32} {'':12} {cold * 1000:16.1f}   (initdb + start; stopped "
        f"{(time.perf_counter() - stopped) * 1000:.0f} ms after its last user left)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--no-postgres", action="store_true", help="only the SQLite figures")
    args = ap.parse_args()

    root = tempfile.mkdtemp(prefix="bench-lab-")
    lab = Lab("bench_lab", root=root)
    lab.write_models("library", BOOK)
    lab.manage("makemigrations library").check()

    floor = subprocess.run(
        [sys.executable, "-c", IN_PROCESS, repr(COMMANDS), str(args.repeat)],
        cwd=lab.path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()

    print(f"{'command':32} {'cold (ms)':>10} {'fork (ms)':>10} {'in-process (ms)':>16} {'speed-up':>9}")
    for cmd, inproc in zip(COMMANDS, floor):
        os.environ["MIGLAB_FORK"] = "0"
        cold = timed(lambda cmd=cmd: lab.manage(*cmd).check(), args.repeat)
        os.environ["MIGLAB_FORK"] = "1"
        fork = timed(lambda cmd=cmd: lab.manage(*cmd).check(), args.repeat)
        name = "manage.py " + " ".join(cmd)
        print(f"{name:32} {cold * 1000:10.1f} {fork * 1000:10.1f} {float(inproc) * 1000:16.1f} {cold / fork:8.1f}x")
    if not args.no_postgres:
        backends(args.repeat, root)
    if runner._server is not None:
        runner._server.close()


if __name__ == "__main__":
    main()

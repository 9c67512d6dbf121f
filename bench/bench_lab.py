"""How much one `manage.py` command costs in the lab, three ways, same run.

    .venv/bin/python bench/bench_lab.py [--repeat 20]

- cold:       `python manage.py CMD` in a new interpreter (the baseline)
- fork:       the lab's fork server (miglab.runner): a warm process forks a
              fresh child that runs the project's real manage.py
- in-process: `call_command` in one long-lived process (the floor; it does not
              re-read edited models, so the lab cannot use it)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from miglab import Lab
from miglab.lab import runner

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()

    lab = Lab("bench_lab", root=tempfile.mkdtemp(prefix="bench-lab-"))
    lab.write_models("library", "class Book(models.Model):\n    title = models.CharField(max_length=80)\n")
    lab.manage("makemigrations library").check()

    floor = subprocess.run(
        [sys.executable, "-c", IN_PROCESS, repr(COMMANDS), str(args.repeat)],
        cwd=lab.path, capture_output=True, text=True, check=True,
    ).stdout.split()

    print(f"{'command':32} {'cold (ms)':>10} {'fork (ms)':>10} {'in-process (ms)':>16} {'speed-up':>9}")
    for cmd, inproc in zip(COMMANDS, floor):
        os.environ["MIGLAB_FORK"] = "0"
        cold = timed(lambda: lab.manage(*cmd).check(), args.repeat)
        os.environ["MIGLAB_FORK"] = "1"
        fork = timed(lambda: lab.manage(*cmd).check(), args.repeat)
        name = "manage.py " + " ".join(cmd)
        print(f"{name:32} {cold*1000:10.1f} {fork*1000:10.1f} {float(inproc)*1000:16.1f} {cold/fork:8.1f}x")
    if runner._server is not None:
        runner._server.close()


if __name__ == "__main__":
    main()

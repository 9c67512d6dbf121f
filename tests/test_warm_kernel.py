"""Warm kernels (miglab.sandbox.zygote): forked from a pre-imported process into each fresh sandbox.

* a warm kernel is what a cold one is: the same uid range, groups,
  capabilities (none), no_new_privs, limits, environment, interpreter flags,
  working folder and file system view;
* no kernel sees another's state: what one student changed in a module,
  the environment, /tmp or the home folder, and the processes it left
  running, are not in the next student's kernel from the same zygote;
* the zygote holds nothing of the grader: a secret in the grading process's
  memory and environment is nowhere in a warm kernel's memory;
* interrupts and a dying kernel behave as with a cold kernel.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from test_sandbox import run_notebook, texts

from miglab.sandbox import bwrap

pytestmark = pytest.mark.sandbox  # without isolation these fail (test_sandbox says why), never skip

PREFIX = "grader-secret-"
PROBE = (
    "import json, os, resource, sys\n"
    "status = dict(l.split(':', 1) for l in open('/proc/self/status').read().splitlines())\n"
    "keep = ('Groups', 'CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb', 'NoNewPrivs', 'Seccomp', 'Umask')\n"
    "print(json.dumps({\n"
    "  'uid': os.getuid(), 'gid': os.getgid(), 'status': {k: status[k].strip() for k in keep},\n"
    "  'limits': [resource.getrlimit(r) for r in range(16)], 'env': dict(os.environ),\n"
    "  'flags': str(sys.flags), 'path': sys.path, 'cwd': os.getcwd(), 'files': sorted(os.listdir('.')),\n"
    "  'root': sorted(os.listdir('/')), 'mounts': sorted(l.split()[4] for l in open('/proc/self/mountinfo')),\n"
    "  'host_ns': os.readlink('/proc/self/ns/net') == " + repr(os.readlink("/proc/self/ns/net")) + ",\n"
    "  'executable': sys.executable}))\n"
)


def probe(folder: Path, warm: bool) -> dict:
    nb = run_notebook([PROBE], folder, warm=warm)
    return json.loads(texts(nb.cells[0]))


def test_a_warm_kernel_is_what_a_cold_kernel_is(tmp_path):
    (tmp_path / "data.txt").write_text("shipped\n")
    os.chmod(tmp_path, 0o755)
    cold, warm = probe(tmp_path, warm=False), probe(tmp_path, warm=True)
    assert warm["uid"] >= bwrap.UID_BASE and warm["gid"] == warm["uid"]
    for facts in (cold, warm):
        facts.pop("uid")
        facts.pop("gid")
    assert warm == cold
    assert warm["status"]["CapEff"] == "0000000000000000" and warm["status"]["NoNewPrivs"] == "1"
    assert warm["files"] == ["data.txt"] and warm["cwd"] == "/home/student/work" and not warm["host_ns"]


def test_no_kernel_sees_what_the_one_before_left(tmp_path):
    os.chmod(tmp_path, 0o755)
    first = run_notebook(
        [
            "import os, subprocess, django.db.migrations as m, miglab.evidence as ev\n"
            "m.LEFT_BEHIND = 'by the first student'\n"
            "ev.check = lambda *a, **k: print('all checks passed')\n"
            "os.environ['LEFT_BEHIND'] = '1'\n"
            "open('/tmp/left-behind', 'w').write('x'); open(os.path.expanduser('~/left-behind'), 'w').write('x')\n"
            "subprocess.Popen(['sleep', '600'], start_new_session=True)\n"
            "print(os.getpid())",
        ],
        tmp_path,
        warm=True,
    )
    assert texts(first.cells[0]).strip().isdigit()
    second = run_notebook(
        [
            "import os, django.db.migrations as m, miglab.evidence as ev\n"
            "print(hasattr(m, 'LEFT_BEHIND'), 'LEFT_BEHIND' in os.environ, os.path.exists('/tmp/left-behind'),\n"
            "      os.path.exists(os.path.expanduser('~/left-behind')), ev.check.__module__,\n"
            "      sorted(open(f'/proc/{p}/comm').read().strip() for p in os.listdir('/proc') if p.isdigit()))",
        ],
        tmp_path,
        warm=True,
    )
    assert texts(second.cells[0]).strip() == (
        "False False False False miglab.evidence.record ['bwrap', 'python', 'sleep']"
    )  # its own placeholder only


def test_the_zygote_holds_nothing_of_the_grader(tmp_path, monkeypatch):
    """A secret the grading process holds (in memory and in its environment) before its zygote starts is
    nowhere in a warm kernel's memory, which the kernel's own code may read."""
    from miglab.sandbox import zygote

    secret = PREFIX + os.urandom(8).hex()
    monkeypatch.setenv("MIGLAB_TEST_SECRET", secret)
    held = [secret.encode() * 3]  # noqa: F841 - kept in this process's memory on purpose
    if zygote._zygote is not None:  # a zygote started by an earlier test: start this one afresh
        zygote._zygote.close()
        zygote._zygote = None
    os.chmod(tmp_path, 0o755)
    # Searched: the secret, and (to show the search reaches the memory) a value the kernel's environment holds.
    # The kernel never gets either text, only where it starts and a hash of the rest.
    wanted = [
        (PREFIX, hashlib.sha256(secret[len(PREFIX) :].encode()).hexdigest(), 16),
        ("MIGLAB_WORKDIR=", hashlib.sha256(b"/home/student/labs").hexdigest(), 18),
    ]
    nb = run_notebook(
        [
            "import hashlib\n"
            f"wanted, found = {wanted!r}, [0, 0]\n"
            "mem = open('/proc/self/mem', 'rb')\n"
            "for line in open('/proc/self/maps'):\n"
            "    span, perms = line.split()[:2]\n"
            "    if not perms.startswith('r') or line.rstrip().endswith(('[vvar]', '[vsyscall]', '[vvar_vclock]')):\n"
            "        continue\n"
            "    start, end = (int(x, 16) for x in span.split('-'))\n"
            "    try:\n"
            "        mem.seek(start); data = mem.read(end - start)\n"
            "    except (OSError, ValueError, OverflowError):\n"
            "        continue\n"
            "    for i, (prefix, digest, size) in enumerate(wanted):\n"
            "        at = data.find(prefix.encode())\n"
            "        while at >= 0:\n"
            "            tail = data[at + len(prefix): at + len(prefix) + size]\n"
            "            found[i] += hashlib.sha256(tail).hexdigest() == digest\n"
            "            at = data.find(prefix.encode(), at + 1)\n"
            "print(found[0], found[1] > 0)",
        ],
        tmp_path,
        warm=True,
        timeout=60,
    )
    assert texts(nb.cells[0]) == "0 True\n"


@pytest.mark.slow  # several seconds: left out of make test-fast's quick loop
def test_a_warm_kernel_is_interrupted_and_dies_like_a_cold_one(tmp_path):
    os.chmod(tmp_path, 0o755)
    nb = run_notebook(["import time\ntime.sleep(120)", "print('still alive')"], tmp_path, timeout=3, warm=True)
    assert any(o.output_type == "error" and o.ename == "KeyboardInterrupt" for o in nb.cells[0].outputs)
    assert texts(nb.cells[1]) == "still alive\n"
    from nbclient.exceptions import DeadKernelError

    with pytest.raises(DeadKernelError):
        run_notebook(["import os\nos._exit(3)", "print('never')"], tmp_path, warm=True)


def test_a_launcher_stops_waiting_for_a_zygote_once_its_grader_is_gone(tmp_path):
    """A zygote killed with its grader leaves a socket that refuses every connection; a launcher whose grader
    is gone gives up on it at once, instead of waiting out the start-up timeout with its sandbox alive."""
    import socket

    from miglab.sandbox import zygote

    stale = tmp_path / "sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(stale))  # bound, never listening: connect is refused, as after the zygote died
    asked = []

    def abandoned() -> bool:
        asked.append(1)
        return len(asked) == 3

    with pytest.raises(zygote.WarmKernelError, match="did not answer"):
        zygote.request_kernel(str(stale), 1, log="", cgroups=[], argv=[], timeout=30.0, abandoned=abandoned)
    assert len(asked) == 3


def test_a_zygote_takes_its_socket_away_when_its_grader_goes(tmp_path):
    """The zygote ends when its grader's end of its stdin closes (even after SIGKILL) and leaves no socket."""
    from miglab.sandbox import zygote

    z = zygote.Zygote(dict(os.environ))
    try:
        while not z.socket.exists():
            assert z.alive(), "the zygote ended before it listened"
            time.sleep(0.05)
        z.proc.stdin.close()  # what the kernel does for a grader that was killed
        z.proc.wait(timeout=30)
        assert not z.socket.exists() and not z.folder.exists()
    finally:
        z.close()

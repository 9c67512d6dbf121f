"""The sandbox itself: what a sandboxed process can see, write and use, measured from inside.

Every test starts real sandboxes (bubblewrap, namespaces, a separate uid) on
this machine; nothing is mocked. `make test` installs bubblewrap first
(tools/install_isolation.sh).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError
from nbformat.v4 import new_code_cell, new_notebook

from miglab.evidence import EVIDENCE_MIME
from miglab.grading.context import JudgeContext, JudgeSandbox, local_runner
from miglab.sandbox import bwrap as sandbox
from miglab.sandbox import kernel as sandbox_kernel
from miglab.sandbox.session import Session, manage_untrusted

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
KM = "miglab.sandbox.kernel.SandboxKernelManager"
sys.path.insert(0, str(REPO / "tests" / "assignment_fixtures"))

from data_migration import GOOD
from slug import HIDDEN, VISIBLE, judged


def inside(code: str, **kw) -> dict:
    """Run Python code in a sandbox; it prints one JSON object, returned here."""
    done = sandbox.run([PY, "-c", textwrap.dedent(code)], **kw)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def sandbox_processes(uid: int, settle: float = 3.0) -> list[int]:
    """Host pids of processes owned by a sandbox uid, once the kernel has finished killing
    a torn-down pid namespace (that takes a few milliseconds after bwrap exits)."""
    end = time.monotonic() + settle
    while True:
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    owner = os.stat(f"/proc/{entry}").st_uid
                except FileNotFoundError:
                    continue
                if owner == uid:
                    pids.append(int(entry))
        if not pids or time.monotonic() > end:
            return pids
        time.sleep(0.05)


def test_isolation_is_available_here():
    ok, why = sandbox.available()
    assert ok, why


def test_unavailable_isolation_is_refused_unless_unsafe(monkeypatch, tmp_path):
    from miglab.grading.coordinator import default_kernel

    monkeypatch.setattr(sandbox, "_tools_missing", lambda: ["bwrap"])
    sandbox._probe.cache_clear()
    ok, why = sandbox.available()
    assert not ok and "bwrap" in why and "install_isolation" in why
    with pytest.raises(sandbox.SandboxError) as err:
        default_kernel()
    assert "--unsafe" in str(err.value)
    assert not default_kernel(unsafe=True).sandboxed  # --unsafe: nbgrader's plain local kernels
    with pytest.raises(sandbox.SandboxError):
        sandbox.run([PY, "-c", "pass"])


def test_grading_kernel_options_name_the_sandboxed_manager():
    from miglab.grading.coordinator import default_kernel

    opts = default_kernel()
    assert opts.manager_class == sandbox_kernel.KERNEL_MANAGER and opts.sandboxed
    assert opts.manager_kwargs["nproc"] == sandbox.DEFAULT_LIMITS.nproc
    assert sandbox_kernel.EVIDENCE_MIME == EVIDENCE_MIME  # the output cap spares the same records the judge reads


def test_identity_environment_and_network(monkeypatch):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    monkeypatch.setenv("SECRET_TOKEN", "hunter2")
    facts = inside("""
        import json, os, socket
        caps = [l.split()[1] for l in open('/proc/self/status') if l.startswith(('CapEff', 'CapPrm'))]
        try:
            socket.create_connection(('1.1.1.1', 53), timeout=2); net = 'reached'
        except OSError as e:
            net = type(e).__name__
        print(json.dumps({'uid': os.getuid(), 'gid': os.getgid(), 'groups': os.getgroups(), 'caps': caps,
                          'env': sorted(os.environ), 'net': net,
                          'pids': len([p for p in os.listdir('/proc') if p.isdigit()])}))
    """)
    assert sandbox.UID_BASE <= facts["uid"] < sandbox.UID_BASE + sandbox.UID_COUNT
    assert facts["gid"] == facts["uid"] and facts["groups"] == []
    assert facts["caps"] == ["0000000000000000", "0000000000000000"]
    assert "NBGRADER_EXECUTION" not in facts["env"] and "SECRET_TOKEN" not in facts["env"]
    assert facts["net"] != "reached"
    assert facts["pids"] <= 3  # its own pid namespace: bwrap's init and the command


def test_filesystem_shows_only_the_system_python_and_package(tmp_path):
    facts = inside(f"""
        import json, os
        def can_write(p):
            try:
                open(p, 'w').close(); return True
            except OSError:
                return False
        print(json.dumps({{
            'root': sorted(os.listdir('/')),
            'repo': sorted(os.listdir({str(REPO)!r})) if os.path.isdir({str(REPO)!r}) else None,
            'root_home': sorted(os.listdir('/root')),
            'source': os.path.exists({str(REPO / "source")!r}),
            'gradebook': os.path.exists({str(REPO / "gradebook.db")!r}),
            'host_tmp': os.path.exists({str(tmp_path)!r}),
            'write_home': can_write('/home/student/x'), 'write_tmp': can_write('/tmp/x'),
            'write_pkg': can_write({str(REPO / "miglab" / "x.py")!r}), 'write_usr': can_write('/usr/x'),
            'write_etc': can_write('/etc/passwd'), 'write_root': can_write('/x'),
            'write_repo': can_write({str(REPO / "x")!r}), 'write_dev': can_write('/dev/x'),
            'write_shm': can_write('/dev/shm/x'),
            'shadow': os.path.exists('/etc/shadow'),
        }}))
    """)
    assert facts["repo"] == [".venv", "miglab"]  # of the checkout: the package and the venv, nothing else
    assert not facts["source"] and not facts["gradebook"] and not facts["host_tmp"] and not facts["shadow"]
    assert facts["root_home"] in ([], [".pyenv"])
    assert facts["write_home"] and facts["write_tmp"]
    assert not facts["write_pkg"] and not facts["write_usr"] and not facts["write_etc"]
    assert not facts["write_root"]  # the sandbox's own root is read-only too
    # Nothing written inside reaches the checkout. (A checkout under /tmp, as a CI clone may be, sits
    # inside the sandbox's private /tmp tmpfs: a file written there is real but private, and gone after.)
    assert not (REPO / "x").exists()
    assert REPO.is_relative_to(tempfile.gettempdir()) or not facts["write_repo"]
    assert not facts["write_dev"] and facts["write_shm"]  # /dev/shm is a small tmpfs of its own


def test_only_named_folders_are_writable_and_are_given_back(tmp_path):
    mine, other = tmp_path / "mine", tmp_path / "other"
    mine.mkdir()
    other.mkdir()
    (other / "secret.txt").write_text("other student")
    facts = inside(
        f"""
        import json, os
        open({str(mine / "out.txt")!r}, 'w').write('written inside')
        print(json.dumps({{'other': os.path.exists({str(other)!r})}}))
    """,
        writable=[mine],
    )
    assert facts["other"] is False
    assert (mine / "out.txt").read_text() == "written inside"
    assert (mine / "out.txt").stat().st_uid == os.geteuid()  # handed back to the grader after the run


def test_limits_processes_memory_files_cpu():
    facts = inside(
        """
        import json, os, resource
        n = 0
        try:
            while n < 5000:
                if os.fork() == 0:
                    import time; time.sleep(30); os._exit(0)
                n += 1
            forks = n
        except OSError:
            forks = n
        try:
            b = bytearray(8 << 30); mem = 'allocated'
        except MemoryError:
            mem = 'MemoryError'
        try:
            with open('/home/student/big', 'wb') as f:
                f.write(b'x' * (100 << 20)); fsize = 'written'
        except OSError as e:
            fsize = e.errno
        print(json.dumps({'forks': forks, 'mem': mem, 'fsize': fsize, 'uid': os.getuid(),
                          'nofile': resource.getrlimit(resource.RLIMIT_NOFILE)[0]}))
    """,
        timeout=60,
    )
    assert facts["forks"] < sandbox.DEFAULT_LIMITS.nproc
    assert facts["mem"] == "MemoryError"
    assert facts["fsize"] == 27  # EFBIG: Python ignores SIGXFSZ, so the write fails
    assert facts["nofile"] == sandbox.DEFAULT_LIMITS.nofile
    # the forked sleepers died with the sandbox's pid namespace
    assert sandbox_processes(facts["uid"]) == []
    spin = sandbox.run([PY, "-c", "while True: pass"], limits=sandbox.SandboxLimits(cpu=1), timeout=30)
    assert spin.returncode != 0 and not spin.timed_out and spin.seconds < 10


@pytest.mark.slow  # several seconds: left out of make test-fast's quick loop
def test_wall_clock_kills_the_whole_namespace():
    code = textwrap.dedent("""
        import os, signal, time
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(600)
            os._exit(0)
        print('started', os.getuid(), flush=True)
        while True:
            pass
    """)
    t0 = time.monotonic()
    done = sandbox.run([PY, "-c", code], timeout=2)
    assert done.timed_out and "started" in done.stdout
    assert time.monotonic() - t0 < 8
    assert sandbox_processes(int(done.stdout.split()[1])) == []


def test_output_of_run_is_capped():
    done = sandbox.run([PY, "-c", "import sys; sys.stdout.write('y' * 5_000_000)"], max_output=1000)
    assert done.returncode == 0 and len(done.stdout) == 1000


def test_manage_untrusted_runs_django_and_removes_planted_links(tmp_path):
    from miglab import Lab

    lab = Lab("sbx", root=tmp_path)
    done = manage_untrusted(
        lab.path,
        ["shell", "--no-imports", "-c", "import os; os.symlink('/etc/hostname', 'db2.sqlite3'); print(os.getuid())"],
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip()) >= sandbox.UID_BASE
    assert not (lab.path / "db2.sqlite3").exists() and not (lab.path / "db2.sqlite3").is_symlink()
    lab.write_models("library", "class Book(models.Model):\n    title = models.CharField(max_length=20)\n")
    for command in (["makemigrations", "library"], ["migrate", "-v", "0"]):
        done = manage_untrusted(lab.path, command)
        assert done.returncode == 0, done.stderr
    assert "library_book" in lab.tables() and lab.migrations("library") == ["0001_initial"]


def shell(session, project, code: str, timeout: float = 30):
    return session.manage(project, ["shell", "--no-imports", "-c", textwrap.dedent(code)], timeout=timeout)


def test_session_runs_several_commands_in_one_warm_sandbox(tmp_path):
    from miglab import Lab

    lab = Lab("sbx", root=tmp_path)
    lab.write_models("library", "class Book(models.Model):\n    title = models.CharField(max_length=20)\n")
    with Session(tmp_path) as s:
        for command in (["makemigrations", "library"], ["migrate", "-v", "0"]):
            done = s.manage(lab.path, command)
            assert done.returncode == 0, done.stderr
        done = shell(s, lab.path, "import os; print(os.getuid(), os.getppid(), os.getpid())")
        uid, server, child = map(int, done.stdout.split())
        done = shell(s, lab.path, "import os; print(os.getuid(), os.getppid(), os.getpid())")
        uid2, server2, child2 = map(int, done.stdout.split())
        # one sandbox uid, one warm server, a fresh child per command
        assert uid == uid2 >= sandbox.UID_BASE and server == server2 and child != child2
        assert "library_book" in lab.tables() and lab.migrations("library") == ["0001_initial"]
        # a failing command reports Django's exit status and error text
        done = s.manage(lab.path, ["migrate", "library", "0099"])
        assert done.returncode == 1 and "0099" in done.stderr
        for elsewhere in (tmp_path.parent, tmp_path / ".." / tmp_path.name / ".." / ".."):
            with pytest.raises(ValueError):
                s.manage(elsewhere, ["check"])
        # a project the trusted side sets up later is not the sandbox's until its first command
        later = Lab("later", root=tmp_path)
        assert os.stat(later.path / "manage.py").st_uid == 0
        done = shell(s, lab.path, f"open({str(later.path / 'x')!r}, 'w')")
        assert done.returncode != 0 and "PermissionError" in done.stderr
        assert shell(s, later.path, "open('x', 'w').write('mine now')").returncode == 0
    assert os.stat(lab.path / "db.sqlite3").st_uid == 0  # given back to root
    assert sandbox_processes(uid) == []


def test_session_leaves_nothing_running_between_commands(tmp_path):
    """What a command starts in the background is dead when the command's answer arrives, so
    the trusted side reads the project exactly as the command left it."""
    from miglab import Lab

    lab = Lab("sbx", root=tmp_path)
    with Session(tmp_path) as s:
        done = shell(
            s,
            lab.path,
            """
            import os, time
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    time.sleep(1.0)
                    open('late.txt', 'w').write('written after the command ended')
                os._exit(0)
            print('left a grandchild behind')
        """,
        )
        assert done.returncode == 0 and "left a grandchild" in done.stdout, done.stderr
        time.sleep(1.5)
        assert not (lab.path / "late.txt").exists()
        done = shell(s, lab.path, "import os; print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))")
        assert len(json.loads(done.stdout)) == 3  # bubblewrap's init, the server, this command


def test_session_server_cannot_be_traced_or_fooled_by_a_command(tmp_path):
    from miglab import Lab

    lab = Lab("sbx", root=tmp_path)
    with Session(tmp_path) as s:
        done = shell(
            s,
            lab.path,
            """
            import os
            tries = []
            for path in (f'/proc/{os.getppid()}/fd/1', f'/proc/{os.getppid()}/mem'):
                try:
                    with open(path, 'w') as f:
                        f.write('{"returncode": 0, "timed_out": false, "stdout": "forged"}\\n')
                    tries.append('opened ' + path)
                except OSError as e:
                    tries.append(type(e).__name__)
            print(tries)
            os.symlink('/etc/hostname', 'db2.sqlite3')
            raise SystemExit(3)
        """,
        )
        assert done.returncode == 3 and "opened" not in done.stdout, done.stdout
        assert "PermissionError" in done.stdout
        assert not (lab.path / "db2.sqlite3").is_symlink()  # links it planted are gone
        assert shell(s, lab.path, "print('next')").stdout.strip() == "next"  # and the session goes on


def test_session_timeouts_output_cap_and_a_killed_server(tmp_path):
    from miglab import Lab

    lab = Lab("sbx", root=tmp_path)
    with Session(tmp_path, max_output=1000) as s:
        t0 = time.monotonic()
        done = shell(s, lab.path, "while True: pass", timeout=2)
        assert done.timed_out and time.monotonic() - t0 < 10
        done = shell(s, lab.path, "import sys; sys.stdout.write('y' * 5_000_000)")
        assert done.returncode == 0 and done.stdout == "y" * 1000
    with Session(tmp_path, max_output=100_000) as s:  # output that JSON escapes six-fold
        done = shell(s, lab.path, "import sys; sys.stdout.write('\\x01' * 5_000_000)")
        assert done.returncode == 0 and done.stdout == "\x01" * 100_000
    with Session(tmp_path, max_output=1000) as s:
        done = shell(s, lab.path, "import os, signal; os.kill(os.getppid(), signal.SIGKILL)")
        assert done.returncode != 0 and "sandbox" in done.stderr
        later = shell(s, lab.path, "print('never runs')")
        assert later.returncode != 0 and "never runs" not in later.stdout


def test_the_sandboxed_server_refuses_to_run_outside_a_sandbox():
    done = subprocess.run([PY, "-m", "miglab.sandbox.server"], input="", capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "only inside a grading sandbox" in done.stderr


def test_judge_sandbox_serves_student_after_student_and_is_reset_between_them(monkeypatch):
    """One sandbox start per worker: both row sets of a student, then the next student, in the
    same sandbox; what a student left in its private space is gone before the next one runs."""
    judge = JudgeSandbox()
    starts = []
    real_start = Session._start
    monkeypatch.setattr(Session, "_start", lambda self: (starts.append(self.root), real_start(self))[1])
    plant = GOOD.replace(
        "def forwards(apps, schema_editor):\n",
        "def forwards(apps, schema_editor):\n"
        "    import os\n"
        "    for folder in ('/tmp', os.environ['HOME'], '/dev/shm'):\n"
        "        open(os.path.join(folder, 'left-by-a'), 'w').write('x')\n",
    )
    look = GOOD.replace(
        "def forwards(apps, schema_editor):\n",
        "def forwards(apps, schema_editor):\n"
        "    import os\n"
        "    for folder in ('/tmp', os.environ['HOME'], '/dev/shm'):\n"
        "        assert not os.path.exists(os.path.join(folder, 'left-by-a')), folder\n",
    )
    for text in (plant, look):
        with judge.student() as context:
            for titles in (HIDDEN, VISIBLE):
                for step in (0, 1):
                    verdict = judged(context, text, titles, step)
                    assert verdict.ok, verdict.reason
        root = judge._session.root
        assert root is not None and list(root.iterdir()) == []  # the student's labs are gone
    assert len(starts) == 1
    # a session that died is replaced by a new one for the next student
    judge._session.close()
    judge._session.dead = "killed"
    with judge.student() as context:
        assert judged(context, GOOD + "# after a death\n", VISIBLE, 0).ok and len(starts) == 2
    judge.close()
    assert not starts[1].exists()


def test_unsafe_grading_judges_migrations_with_the_warm_local_runner():
    context = JudgeContext(local_runner)
    text = GOOD + "# local\n"
    for titles in (VISIBLE, HIDDEN):
        assert judged(context, text, titles, 0).ok and judged(context, text, titles, 1).ok
    broken = text.replace("book.save()", "raise RuntimeError('no slug for you')")
    verdict = judged(JudgeContext(local_runner), broken, VISIBLE, 0)
    assert not verdict.ok and "no slug for you" in verdict.reason
    # the same failure on hidden rows says nothing the student's code printed
    verdict = judged(JudgeContext(local_runner), broken, HIDDEN, 0, hidden=True)
    assert not verdict.ok and "no slug for you" not in verdict.reason


def test_a_visible_run_after_a_hidden_one_is_not_quoted_back():
    """A hidden run could leave its rows somewhere a later visible run prints from: not quoted."""
    context = JudgeContext(local_runner)
    broken = GOOD.replace("book.save()", "raise RuntimeError('printed by the student')")
    assert "printed by the student" in judged(context, broken, VISIBLE, 0).reason
    judged(context, broken, HIDDEN, 0, hidden=True)
    later = judged(context, broken, ["Solaris"], 0)
    assert not later.ok and "printed by the student" not in later.reason


def test_judge_session_reads_what_each_command_left_and_never_through_links():
    """A forwards function that fills the slugs only after migrate has returned (from a process it
    left behind) gets no credit; one that swaps the database for a link to a host file reads as
    a broken lab, never as that file."""
    late = (
        "from django.db import migrations\n"
        "def forwards(apps, schema_editor):\n"
        "    import os, sqlite3, time\n"
        "    if os.fork() == 0:\n"
        "        os.setsid()\n"
        "        time.sleep(0.5)\n"
        "        con = sqlite3.connect('db.sqlite3')\n"
        '        con.execute("UPDATE library_book SET slug = lower(title)")\n'
        '        con.execute("INSERT INTO django_migrations (app, name, applied) '
        "VALUES ('library', '0003_fill_slugs', '')\")\n"
        "        con.commit()\n"
        "        os._exit(0)\n"
        "    raise SystemExit(0)\n"
        "class Migration(migrations.Migration):\n"
        "    dependencies = [('library', '0002_book_slug')]\n"
        "    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]\n"
    )
    judge = JudgeSandbox()
    with judge.student() as context:
        verdict = judged(context, late, VISIBLE, 0)
        assert not verdict.ok and "['Dune', '']" in verdict.reason  # read as migrate left it: empty slugs
    secret = Path(tempfile.mkdtemp()) / "secret.sqlite3"
    import sqlite3

    con = sqlite3.connect(secret)
    con.execute("CREATE TABLE library_book (id INTEGER PRIMARY KEY, title TEXT, slug TEXT)")
    con.execute("INSERT INTO library_book VALUES (1, 'host secret', 'host-secret')")
    con.execute("CREATE TABLE django_migrations (id INTEGER PRIMARY KEY, app TEXT, name TEXT)")
    con.commit()
    con.close()
    swap = late.replace(
        "    import os, sqlite3, time\n",
        f"    import os\n    os.remove('db.sqlite3'); os.symlink({str(secret)!r}, 'db.sqlite3')\n    return\n",
    )
    with judge.student() as context:
        verdict = judged(context, swap, VISIBLE, 0)
        assert not verdict.ok and "host secret" not in verdict.reason
        assert "host secret" not in json.dumps(list(context._cache.values()))
    judge.close()


# ------------------------------------------------------------------ kernels


def run_notebook(cells: list[str], folder: Path, timeout: int = 20, **km_traits) -> nbformat.NotebookNode:
    nb = new_notebook(cells=[new_code_cell(c) for c in cells])
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_manager_class=KM,
        allow_errors=True,
        interrupt_on_timeout=True,
        resources={"metadata": {"path": str(folder)}},
    )
    if km_traits:
        km = client.create_kernel_manager()
        for k, v in km_traits.items():
            setattr(km, k, v)
    client.execute()
    return nb


def texts(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def test_kernel_runs_sandboxed_in_a_copy_of_its_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    sub = tmp_path / "submission"
    (sub / "miglab").mkdir(parents=True)
    (sub / "miglab" / "__init__.py").write_text("raise SystemExit('the shipped miglab was imported')\n")
    (sub / "django").mkdir()
    (sub / "django" / "__init__.py").write_text("VERSION = 'fake'\n")
    (sub / "data.txt").write_text("shipped data\n")
    before = {p: p.read_bytes() for p in sub.rglob("*") if p.is_file()}
    nb = run_notebook(
        [
            "import os, sys, json\n"
            "import miglab, django\n"
            "print(json.dumps({'uid': os.getuid(), 'cwd': os.getcwd(), 'miglab': miglab.__file__,\n"
            "  'django': django.get_version(), 'nbgrader': 'NBGRADER_EXECUTION' in os.environ,\n"
            "  'data': open('data.txt').read(), 'path0': sys.path[0]}))",
            "open('data.txt', 'w').write('changed inside'); open('new.txt', 'w').write('new'); print('wrote')",
            f"print(os.path.exists({str(REPO / 'source')!r}), os.path.exists({str(sub)!r}))",
            "try:\n    open('/run/kernel/junk', 'w')\nexcept OSError as e:\n    print(type(e).__name__)",
        ],
        sub,
    )
    facts = json.loads(texts(nb.cells[0]))
    assert facts["uid"] >= sandbox.UID_BASE
    assert facts["cwd"] == "/home/student/work"
    assert facts["miglab"] == str(REPO / "miglab" / "__init__.py")
    assert facts["django"].startswith("6.") and not facts["nbgrader"]
    assert facts["data"] == "shipped data\n" and facts["path0"] != ""
    assert texts(nb.cells[1]) == "wrote\n"
    assert texts(nb.cells[2]) == "False False\n"
    assert texts(nb.cells[3]) == "PermissionError\n"  # its sockets' folder was locked before any cell ran
    assert {p: p.read_bytes() for p in sub.rglob("*") if p.is_file()} == before  # host folder untouched


def test_kernel_output_is_capped_but_evidence_survives(tmp_path):
    ev = {"check": "demo", "answer": [1, 2, 3]}
    nb = run_notebook(
        [
            "print('z' * 5_000_000)\nfor i in range(5000): print(i)",
            "print('q' * 3_000_000)\n"
            f"from IPython.display import display\ndisplay({{{EVIDENCE_MIME!r}: {ev!r}}}, raw=True)",
        ],
        tmp_path,
    )
    first = texts(nb.cells[0])
    assert len(first) < sandbox.DEFAULT_LIMITS.output + 500 and "output truncated by the grader" in first
    found = [o for o in nb.cells[1].outputs if o.output_type == "display_data"]
    assert [o.data[EVIDENCE_MIME] for o in found] == [ev]


def test_kernel_interrupt_reaches_the_kernel(tmp_path):
    nb = run_notebook(["import time\ntime.sleep(120)", "print('still alive')"], tmp_path, timeout=3)
    assert any(o.output_type == "error" and o.ename == "KeyboardInterrupt" for o in nb.cells[0].outputs)
    assert texts(nb.cells[1]) == "still alive\n"


@pytest.mark.slow  # several seconds: left out of make test-fast's quick loop
def test_kernel_wall_clock_kills_a_kernel_that_ignores_interrupts(tmp_path):
    nb = new_notebook(
        cells=[
            new_code_cell(
                "import os, signal, time\nprint(os.getuid(), flush=True)\ntime.sleep(0.5)\n"
                "signal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: pass"
            ),
            new_code_cell("print('never')"),
        ]
    )
    client = NotebookClient(
        nb,
        timeout=30,
        kernel_manager_class=KM,
        allow_errors=True,
        interrupt_on_timeout=True,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    km = client.create_kernel_manager()
    km.wall = 3.0
    t0 = time.monotonic()
    with pytest.raises(DeadKernelError):
        client.execute()
    assert time.monotonic() - t0 < 25
    uid = int(texts(nb.cells[0]).split()[0])
    assert uid >= sandbox.UID_BASE and sandbox_processes(uid) == []
    assert km.folder and not Path(km.folder).exists()  # nothing left on the host by the dead kernel


def test_kernel_manager_cleans_its_folder(tmp_path):
    nb = new_notebook(cells=[new_code_cell("print(1)")])
    client = NotebookClient(nb, kernel_manager_class=KM, timeout=20, resources={"metadata": {"path": str(tmp_path)}})
    km = client.create_kernel_manager()
    assert km.folder == ""  # made when a kernel starts, not before
    client.execute()
    assert nb.cells[0].outputs[0].text == "1\n"
    assert km.folder.startswith(tempfile.gettempdir()) and not Path(km.folder).exists()

"""Warm kernels: a pre-imported Python forked into each kernel's own fresh sandbox.

A cold sandboxed kernel spends most of its start-up importing ipykernel,
IPython, zmq, and then, in the notebook's setup cell, Django's migrations
and :mod:`miglab.evidence`. The *zygote* is one process per grading worker
that has imported all of that once and then only ever forks. It never runs
a student's code, never reads a course, and is started by ``exec`` with the
sandbox's own environment, so its memory holds public modules only (every
kernel it forks gets a copy of that memory and nothing else).

Each kernel still gets a sandbox of its own, built by bubblewrap exactly as
for a cold kernel (:func:`miglab.sandbox.kernel.launch`); only the process
inside differs. bubblewrap runs a placeholder (``sleep``) in it; the zygote
forks a *waiter*, which stays on the host and waits, and the waiter forks
the kernel, which makes itself what the placeholder is before it runs
anything else:

* it joins the placeholder's cgroups and namespaces (ipc, uts, net, cgroup,
  pid, mount with its root, and last the user namespace);
* it takes the placeholder's groups, uid and gid, capability sets (none),
  ``no_new_privs``, resource limits, umask and environment, starts a new
  session and dies with its waiter;
* it then compares what it became with the placeholder, field by field
  (``/proc/<pid>/status``, limits, namespaces, root): any difference and it
  exits before the kernel starts (the submission then gets no kernel,
  never a weaker one);
* it copies the submission into its private home as the cold kernel's boot
  script does, and starts ipykernel as ``python -P -c ... -f <connection>``
  would.

The waiter tells the launcher the kernel's pid (for interrupts) and, once
the kernel has ended, its exit status. Python reseeds ``random`` in a
forked child itself; what every kernel of one zygote shares is the string
hash seed, which is chosen when the zygote starts.
"""

from __future__ import annotations

import ctypes
import importlib
import json
import os
import resource
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

# What the kernel imports at start-up, and what the setup cell of the course's notebooks imports:
# public modules only (nothing here reads a course or holds an answer).
WARM = (
    "ipykernel.kernelapp",
    "ipykernel.ipkernel",
    "ipykernel.zmqshell",
    "IPython",
    "IPython.core.interactiveshell",
    "IPython.core.completer",
    "jupyter_client.session",
    "zmq",
    "tornado.ioloop",
    "comm",
    "django.db.migrations",
    "django.db.models",
    "miglab.evidence",
)
NAMESPACES = (
    ("ipc", os.CLONE_NEWIPC),
    ("uts", os.CLONE_NEWUTS),
    ("net", os.CLONE_NEWNET),
    ("cgroup", os.CLONE_NEWCGROUP),
    ("mnt", os.CLONE_NEWNS),
    ("user", os.CLONE_NEWUSER),
)
# Fields of /proc/<pid>/status a warm kernel must share with its sandbox's placeholder.
SAME_STATUS = (
    "Uid",
    "Gid",
    "Groups",
    "CapInh",
    "CapPrm",
    "CapEff",
    "CapBnd",
    "CapAmb",
    "NoNewPrivs",
    "Seccomp",
    "Umask",
)
# /proc/<pid>/limits rows, and their RLIMIT_* numbers on Linux (the resource module lacks a few).
LIMITS = {
    "Max cpu time": 0,
    "Max file size": 1,
    "Max data size": 2,
    "Max stack size": 3,
    "Max core file size": 4,
    "Max resident set": 5,
    "Max processes": 6,
    "Max open files": 7,
    "Max locked memory": 8,
    "Max address space": 9,
    "Max file locks": 10,
    "Max pending signals": 11,
    "Max msgqueue size": 12,
    "Max nice priority": 13,
    "Max realtime priority": 14,
    "Max realtime timeout": 15,
}
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 4, 24, 38
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
CAPABILITY_VERSION_3 = 0x20080522
REFUSED = 70  # the kernel's exit status when it could not become its placeholder


class WarmKernelError(RuntimeError):
    """The zygote could not give a kernel (the launcher's reason)."""


# ============================================================ the grader's side (root, on the host)


class Zygote:
    """The zygote process of this grading process: started on first use, ended with it."""

    def __init__(self, env: dict):
        self.folder = Path(tempfile.mkdtemp(prefix="miglab-zygote-"))  # 0700, root's: no sandbox sees it
        self.socket = self.folder / "sock"
        boot = f"from miglab.sandbox.zygote import run_zygote; run_zygote({str(self.socket)!r})"
        # The same interpreter flags and environment as a cold kernel (python -P, the sandbox's variables).
        self.proc = subprocess.Popen(
            [sys.executable, "-P", "-c", boot],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=self.folder,
            close_fds=True,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdin.close()
        import shutil

        shutil.rmtree(self.folder, ignore_errors=True)


_zygote: Zygote | None = None
_lock = threading.Lock()


def zygote_socket(env: dict) -> str:
    """This process's zygote (started now if there is none or it died): the path of its socket."""
    global _zygote
    with _lock:
        if _zygote is None or not _zygote.alive():
            if _zygote is not None:
                _zygote.close()
            _zygote = Zygote(env)
            import atexit

            atexit.register(_zygote.close)
        return str(_zygote.socket)


# ============================================================ the launcher's side (root, on the host)


def request_kernel(
    socket_path: str,
    placeholder: int,
    *,
    log: str,
    cgroups: list[str],
    argv: list[str],
    timeout: float = 60.0,
    abandoned: Callable[[], bool] = lambda: False,
) -> tuple[socket.socket, int]:
    """Ask the zygote for a kernel in the sandbox of ``placeholder``: (the waiter's connection, kernel pid).
    ``abandoned`` says when to stop waiting for a zygote that does not answer (its grader is gone: a
    zygote killed with its grader leaves its socket file behind, refusing every connection)."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn.connect(socket_path)
            break
        except (FileNotFoundError, ConnectionRefusedError):  # the zygote is still importing
            if abandoned() or time.monotonic() > deadline:
                conn.close()
                raise WarmKernelError("the zygote did not answer") from None
            time.sleep(0.02)
    request = {"placeholder": placeholder, "log": log, "cgroups": cgroups, "argv": argv}
    conn.sendall((json.dumps(request) + "\n").encode())
    line = _read_line(conn, deadline)
    try:
        pid = int(json.loads(line)["kernel"])
    except (ValueError, KeyError, TypeError):
        conn.close()
        raise WarmKernelError(f"the zygote gave no kernel: {line[:200]!r}") from None
    return conn, pid


def _read_line(conn: socket.socket, deadline: float) -> str:
    data = b""
    while b"\n" not in data:
        conn.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = conn.recv(4096)
        except TimeoutError:
            return data.decode(errors="replace")
        if not chunk:
            break
        data += chunk
    conn.settimeout(None)
    return data.decode(errors="replace").split("\n", 1)[0]


# ============================================================ the zygote (root, on the host)


def run_zygote(path: str) -> None:
    """The zygote's main loop: import, then fork a waiter per request; end when stdin closes."""
    os.umask(0o077)
    sys.modules["debugpy"] = None  # type: ignore[assignment]   # as the cold kernel's boot does
    importlib.import_module("ipykernel.debugger")
    del sys.modules["debugpy"]
    for name in WARM:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a module that will not import is imported (or not) by the kernel
            continue
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # waiters are reaped by the system
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    selector.register(sys.stdin.fileno(), selectors.EVENT_READ)
    while True:
        for key, _ in selector.select():
            if key.fileobj is listener:
                conn, _ = listener.accept()
                _fork_waiter(conn, listener)
                conn.close()
            elif not os.read(sys.stdin.fileno(), 4096):  # the grader is gone (maybe killed: no atexit)
                _remove_socket(path)
                os._exit(0)


def _remove_socket(path: str) -> None:
    """Take the socket and its folder away, so that no launcher waits on a zygote that has ended."""
    try:
        os.unlink(path)
        os.rmdir(os.path.dirname(path))
    except OSError as exc:
        print(f"[zygote] could not remove {path}: {exc}", file=sys.stderr)


def _fork_waiter(conn: socket.socket, listener: socket.socket) -> None:
    if threading.active_count() != 1:  # a fork of a threaded process would carry half-held locks
        conn.sendall(b'{"error": "the zygote has threads"}\n')
        return
    if os.fork() == 0:
        try:
            listener.close()
            _waiter(conn)
        finally:
            os._exit(1)


def _waiter(conn: socket.socket) -> None:
    """On the host: fork the kernel into the sandbox's pid namespace, tell its pid, then its exit status."""
    _die_with_parent()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    request = json.loads(_read_line(conn, time.monotonic() + 30))
    placeholder = int(request["placeholder"])
    pidns = os.open(f"/proc/{placeholder}/ns/pid", os.O_RDONLY)
    os.setns(pidns, os.CLONE_NEWPID)  # for our children: the kernel is in the sandbox's pid namespace
    os.close(pidns)
    pid = os.fork()
    if pid == 0:
        os._exit(_run_kernel(request, conn.fileno()))
    conn.sendall((json.dumps({"kernel": pid}) + "\n").encode())
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    try:
        conn.sendall((json.dumps({"exit": code}) + "\n").encode())
    except OSError:
        pass  # the launcher went first
    os._exit(0)


# ============================================================ the kernel (becomes its placeholder)


def _run_kernel(request: dict, keep: int) -> int:
    """The kernel process from fork to exit: its exit status (REFUSED if it never became the placeholder)."""
    import atexit
    import traceback

    code = REFUSED
    try:
        _kernel(request, keep)
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except BaseException:  # noqa: BLE001 - said in the kernel's log; the launcher reports the exit status
        traceback.print_exc()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    return code


def _kernel(request: dict, keep: int) -> None:
    placeholder = int(request["placeholder"])
    want = _identity(placeholder)
    _die_with_parent()
    log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    for d in request["cgroups"]:
        Path(d, "cgroup.procs").write_text(str(os.getpid()))
    os.closerange(3, keep)
    os.closerange(keep + 1, 65536)
    os.setsid()
    _enter(placeholder)
    _become(want)
    problem = _differs(want)
    if problem:
        print(f"[sandbox] the warm kernel refused to start: {problem}", file=sys.stderr, flush=True)
        os._exit(REFUSED)
    os.close(keep)
    _boot(request)


def _identity(pid: int) -> dict:
    """What the placeholder is (read on the host, before joining it)."""
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    env = dict(e.decode().split("=", 1) for e in environ if b"=" in e)
    return {
        "status": {k: status[k].strip() for k in SAME_STATUS if k in status},
        "env": env,
        "limits": _limits(Path(f"/proc/{pid}/limits").read_text()),
        "ns": {name: os.readlink(f"/proc/{pid}/ns/{name}") for name in [n for n, _ in NAMESPACES] + ["pid"]},
        "root": _inode(f"/proc/{pid}/root/"),
        "pid": pid,
    }


def _limits(text: str) -> dict:
    out = {}
    for line in text.splitlines()[1:]:
        for label, which in LIMITS.items():
            if line.startswith(label):
                soft, hard = line[len(label) :].split()[:2]
                out[which] = tuple(resource.RLIM_INFINITY if v == "unlimited" else int(v) for v in (soft, hard))
    return out


def _inode(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _enter(pid: int) -> None:
    """Join the placeholder's namespaces (the user namespace last) and its root."""
    fds = {name: os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY) for name, _ in NAMESPACES}
    root = os.open(f"/proc/{pid}/root", os.O_RDONLY | os.O_DIRECTORY)
    cwd = os.open(f"/proc/{pid}/cwd", os.O_RDONLY | os.O_DIRECTORY)
    os.setgroups([])  # setgroups is denied inside bubblewrap's user namespace: clear them before
    for name, flag in NAMESPACES:
        os.setns(fds[name], flag)
        os.close(fds[name])
        if name == "mnt":
            os.fchdir(root)
            os.chroot(".")
            os.fchdir(cwd)  # where the boot script left the placeholder: its copy of the submission
            os.close(root)
            os.close(cwd)


def _become(want: dict) -> None:
    """The placeholder's credentials, capabilities (none), limits, umask and environment."""
    libc = ctypes.CDLL(None, use_errno=True)
    status = want["status"]
    bounding = int(status.get("CapBnd", "0"), 16)
    for cap in range(64):
        if not bounding >> cap & 1:
            libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    uid, gid = int(status["Uid"].split()[0]), int(status["Gid"].split()[0])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    header = (ctypes.c_uint32 * 2)(CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable (two words each): nothing
    if libc.capset(header, data) != 0:
        raise OSError(ctypes.get_errno(), "capset")
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    if status.get("NoNewPrivs") == "1":
        libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    for which, (soft, hard) in want["limits"].items():
        resource.setrlimit(which, (soft, hard))
    os.umask(int(status.get("Umask", "0022"), 8))
    libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)  # like any process that exec'd: its own uid may inspect it
    os.environ.clear()
    os.environ.update(want["env"])


def _differs(want: dict) -> str:
    """'' when this process is what the placeholder is; else the first difference."""
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    for key, value in want["status"].items():
        if status.get(key, "").strip() != value:
            return f"{key} is {status.get(key, '').strip()!r}, not {value!r}"
    for name, link in want["ns"].items():
        if os.readlink(f"/proc/self/ns/{name}") != link:
            return f"not in the sandbox's {name} namespace"
    if _inode("/") != want["root"]:
        return "not in the sandbox's root"
    if _limits(Path("/proc/self/limits").read_text()) != want["limits"]:
        return "its limits differ"
    return ""


def _boot(request: dict) -> None:
    """What the cold kernel's boot script runs once it has copied the submission: ipykernel."""
    sys.argv = ["-c", *request["argv"]]
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:
        os._exit(1)

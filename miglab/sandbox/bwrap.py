"""Run untrusted code (students' notebooks and migrations) in a sandbox.

What a sandboxed process gets, and nothing more:

* its own **unprivileged user**: a uid of its own (``UID_BASE + n``, one per
  running sandbox, so one student's fork bomb cannot starve another's lab),
  with no capabilities, no supplementary groups and ``no_new_privs``;
* its own **namespaces** (bubblewrap ``--unshare-all``): user, pid, ipc, uts,
  cgroup and network. The network namespace has no interface but ``lo``, so
  nothing can be reached, not even the grader's own ports;
* a **minimal filesystem**: an empty root with read-only binds of ``/usr``
  (and the ``/bin``, ``/lib*`` links), a few ``/etc`` files, the Python
  install, the virtualenv and the ``miglab`` package. Nothing else of the
  host exists inside: no ``/root``, no course folder (``source/``, hidden
  tests, the gradebook, other students), no home. ``/tmp`` and the home
  folder are private tmpfs with a size cap; the only host folders it may
  write are the ones the caller names (a kernel gets none: its sockets'
  folder is locked once the kernel has bound them);
* a **cleared environment** (a short whitelist; no ``NBGRADER_*``, no
  secrets) with ``PYTHONSAFEPATH=1``, so neither Python nor IPython puts the
  working folder on ``sys.path``: a ``miglab/`` or ``django/`` folder shipped
  with a submission is never imported in place of the real package;
* **rlimits** on address space, CPU seconds, processes, open files and file
  size, and a **wall-clock limit enforced from outside** (the whole pid
  namespace is killed).

How it is built: bubblewrap runs as the sandbox uid. Paths such as the Python
install under ``/root/.pyenv`` are not reachable by that uid, so a first
stage, still root but in a private mount namespace (``unshare --mount``),
bind-mounts every source into a staging folder the uid may traverse; those
mounts vanish with the namespace and the host never sees them.

Entry points: :func:`available` (can we isolate here, and if not why),
:func:`run` (a command, e.g. ``python manage.py migrate`` for the judge), and
:mod:`miglab.sandbox.kernel` (a Jupyter kernel manager whose kernels
run in here).
"""

from __future__ import annotations

import fcntl
import functools
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..lab import runner

UID_BASE = 420000  # sandbox uids: UID_BASE .. UID_BASE + UID_COUNT - 1 (no passwd entry needed)
UID_COUNT = 1000
LOCK_DIR = Path(tempfile.gettempdir()) / "miglab-sandbox-uids"
HOME = "/home/student"  # inside the sandbox
TOOLS = ("bwrap", "unshare", "setpriv", "prlimit", "mount")
# /etc files a Python process (and Django, SQLite, matplotlib) may want; nothing else of /etc.
ETC_FILES = (
    "passwd",
    "group",
    "nsswitch.conf",
    "hosts",
    "localtime",
    "timezone",
    "mime.types",
    "ld.so.cache",
    "ld.so.conf",
    "ssl/openssl.cnf",
    "fonts",
)
INSIDE_PATH = "/usr/local/bin:/usr/bin:/bin"


class SandboxError(RuntimeError):
    """Isolation could not be set up (the reason is in the message)."""


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one sandbox. Sizes in bytes, times in seconds."""

    memory: int = 4 << 30  # RLIMIT_AS per process (a Python kernel with Django maps ~1 GiB)
    cpu: int = 600  # RLIMIT_CPU per process
    nproc: int = 256  # RLIMIT_NPROC: processes + threads of the sandbox uid
    nofile: int = 512  # RLIMIT_NOFILE
    fsize: int = 64 << 20  # RLIMIT_FSIZE: largest file it may write
    tmpfs: int = 512 << 20  # size of each private tmpfs (/tmp and the home folder)
    wall: float = 900.0  # wall clock, enforced from outside by killing the pid namespace
    output: int = 1 << 20  # bytes of output kept per notebook cell (see sandbox_kernel)
    cpus: float = 1.0  # CPU share of the whole sandbox (cgroup quota), so a fork bomb
    # cannot starve the grader or the other students' kernels
    memory_total: int = 6 << 30  # memory of the whole sandbox (cgroup), whatever the process count

    def prlimit_args(self) -> list[str]:
        return [
            f"--as={self.memory}",
            f"--cpu={self.cpu}",
            f"--nproc={self.nproc}",
            f"--nofile={self.nofile}",
            f"--fsize={self.fsize}",
            "--core=0",
        ]


DEFAULT_LIMITS = SandboxLimits()


# ------------------------------------------------------------ availability


def _tools_missing() -> list[str]:
    return [t for t in TOOLS if shutil.which(t) is None]


@functools.lru_cache(maxsize=1)
def _probe() -> tuple[bool, str]:
    """Really start a sandbox once and check it is one (cached per process)."""
    code = (
        "import os, socket, sys\n"
        "ok = os.getuid() != 0 and not os.path.exists('/root/.bashrc') and 'NBGRADER_EXECUTION' not in os.environ\n"
        "try:\n"
        "    socket.create_connection(('127.0.0.1', 22), timeout=1); ok = False\n"
        "except OSError:\n"
        "    pass\n"
        "print('sandbox-ok' if ok else 'sandbox-leaky')\n"
    )
    try:
        done = run([sys.executable, "-c", code], timeout=60)
    except SandboxError as exc:
        return False, str(exc)
    if "sandbox-ok" in done.stdout:
        return True, "bubblewrap sandbox (own uid, no network, read-only system, private /tmp)"
    return False, (
        f"a test sandbox did not behave as one (exit {done.returncode}): {(done.stdout + done.stderr).strip()[-400:]}"
    )


def available() -> tuple[bool, str]:
    """Can student code be isolated on this machine? ``(True, what)`` or ``(False, why not)``."""
    if not sys.platform.startswith("linux"):
        return False, f"isolation needs Linux namespaces; this is {sys.platform}"
    if os.geteuid() != 0:
        return False, (
            "isolation needs root: the grader gives each kernel its own unprivileged uid "
            "and mounts only what it may see (run the grading command as root)"
        )
    missing = _tools_missing()
    if missing:
        hint = (
            " (install it: sh tools/install_isolation.sh, i.e. apt-get install bubblewrap)"
            if "bwrap" in missing
            else ""
        )
        return False, f"isolation needs {', '.join(missing)}, not found on PATH{hint}"
    return _probe()


def require(unsafe: bool = False) -> str:
    """For a grading command: the isolation in use, or raise SandboxError unless ``unsafe``."""
    ok, why = available()
    if ok:
        return why
    if unsafe:
        return f"NONE (--unsafe): {why}"
    raise SandboxError(
        f"refusing to run student code without isolation: {why}. "
        "Fix that, or pass --unsafe to run it with the grader's own rights (only for code you trust)."
    )


# ------------------------------------------------------------------- uids


class UidLease:
    """An exclusive sandbox uid, held (by an flock) until :meth:`release`."""

    def __init__(self, uid: int, fd: int):
        self.uid, self._fd = uid, fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def lease_uid() -> UidLease:
    LOCK_DIR.mkdir(mode=0o700, exist_ok=True)
    start = os.getpid() % UID_COUNT  # spread the search; any free slot will do
    for i in range(UID_COUNT):
        n = (start + i) % UID_COUNT
        fd = os.open(LOCK_DIR / f"{n}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return UidLease(UID_BASE + n, fd)
    raise SandboxError(f"all {UID_COUNT} sandbox uids are in use")


# ---------------------------------------------------------------- cgroups

CGROUP_V1 = Path("/sys/fs/cgroup")


class Cgroups:
    """Best effort: a cgroup per sandbox (v1 cpu, pids, memory) capping the whole sandbox.

    rlimits bound each process; these bound the sandbox as a whole (a fork
    bomb's CPU share, its total memory). Where cgroups cannot be made (not
    mounted, read-only), the rlimits and the wall clock still hold.
    """

    def __init__(self, name: str, limits: SandboxLimits):
        self.dirs: list[Path] = []
        settings = {
            "cpu": {"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": str(int(limits.cpus * 100000))},
            "pids": {"pids.max": str(limits.nproc + 16)},
            "memory": {"memory.limit_in_bytes": str(limits.memory_total)},
        }
        for controller, values in settings.items():
            d = CGROUP_V1 / controller / name
            try:
                if not (CGROUP_V1 / controller / "cgroup.procs").exists():
                    continue
                d.mkdir(exist_ok=True)
                for k, v in values.items():
                    (d / k).write_text(v)
                self.dirs.append(d)
            except OSError:
                continue

    def join_script(self) -> list[str]:
        """Shell lines that move the stage-1 shell (and so everything it starts) into the cgroups."""
        return [f"echo $$ > {shlex.quote(str(d / 'cgroup.procs'))} 2>/dev/null || true" for d in self.dirs]

    def close(self) -> None:
        for d in self.dirs:
            for _ in range(100):
                try:
                    pids = [int(p) for p in (d / "cgroup.procs").read_text().split()]
                except OSError:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                try:
                    d.rmdir()
                    break
                except OSError:
                    time.sleep(0.02)


# ------------------------------------------------------------ the command


def _python_roots() -> list[Path]:
    """Folders the sandboxed interpreter needs: the base install and the venv (resolved)."""
    roots = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve()}
    exe = Path(sys.executable)
    roots.add(exe.resolve().parent.parent)
    return sorted(roots)


def _package_dir() -> Path:
    return Path(__file__).resolve().parent.parent  # the miglab package (editable install or site-packages)


@dataclass
class Spec:
    """What one sandbox sees. Paths are host paths, mounted at the same place inside
    unless given as ``(host, inside)`` pairs."""

    argv: list[str]
    cwd: str = HOME
    readonly: list = field(default_factory=list)
    writable: list = field(default_factory=list)
    env: dict = field(default_factory=dict)
    limits: SandboxLimits = DEFAULT_LIMITS
    info_fd: int | None = None
    files: list = field(default_factory=list)  # (readable fd, inside path): copied into the sandbox


def _pairs(items) -> list[tuple[str, str]]:
    out = []
    for item in items:
        if isinstance(item, (tuple, list)):
            out.append((str(item[0]), str(item[1])))
        else:
            out.append((str(item), str(item)))
    return out


def sandbox_env(extra: dict) -> dict:
    """The whole environment of a sandboxed process (bubblewrap clears everything else)."""
    return {
        "PATH": INSIDE_PATH,
        "HOME": HOME,
        "USER": "student",
        "LOGNAME": "student",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TMPDIR": "/tmp",
        "SHELL": "/bin/sh",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "MPLCONFIGDIR": f"{HOME}/.config/matplotlib",
        "MPLBACKEND": "agg",
        "MIGLAB_WORKDIR": f"{HOME}/labs",
        "JUPYTER_PLATFORM_DIRS": "1",
        **extra,
    }


Mount = tuple[str, str, bool]  # (host source, inside target, writable)


def _mounts(spec: Spec) -> list[Mount]:
    """Every host path the sandbox sees besides /usr: Python, the package, /etc files, the spec's."""
    mounts: list[Mount] = [(str(root), str(root), False) for root in _python_roots()]
    for prefix in {Path(sys.prefix), Path(sys.base_prefix)}:
        if prefix.resolve() != prefix:  # a venv reached through a link: it is started by that path
            mounts.append((str(prefix.resolve()), str(prefix), False))
    pkg = _package_dir()
    if not any(pkg.is_relative_to(r) for r in _python_roots()):
        mounts.append((str(pkg), str(pkg), False))
    for name in ETC_FILES:
        p = Path("/etc") / name
        if p.exists():
            mounts.append((str(p.resolve()), str(p), False))
    mounts += [(h, i, False) for h, i in _pairs(spec.readonly)]
    mounts += [(h, i, True) for h, i in _pairs(spec.writable)]
    return mounts


def _staging_script(mounts: list[Mount], stage: Path, cgroups: Cgroups | None) -> list[str]:
    """Stage 1 (root, private mount namespace): make every source reachable by the uid."""
    script = ["set -e", *(cgroups.join_script() if cgroups else [])]
    for i, (host, _inside, _rw) in enumerate(mounts):
        staged = shlex.quote(str(stage / str(i)))
        script.append(f"mkdir -p {staged}" if Path(host).is_dir() else f": > {staged}")
        script.append(f"mount --bind {shlex.quote(host)} {staged}")
    return script


def _root_filesystem(limits: SandboxLimits) -> list[str]:
    """bwrap arguments for /usr, the top-level links, /proc, /dev and the size-capped tmpfs mounts."""
    args = ["--ro-bind", "/usr", "/usr"]
    for link in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        p = Path("/") / link
        if p.is_symlink():
            args += ["--symlink", os.readlink(p), f"/{link}"]
        elif p.is_dir():
            args += ["--ro-bind", str(p), f"/{link}"]
    args += ["--proc", "/proc", "--dev", "/dev", "--size", str(64 << 20), "--tmpfs", "/dev/shm"]
    for tmp in ("/tmp", HOME):
        args += ["--size", str(limits.tmpfs), "--tmpfs", tmp]
    return args


def build_command(spec: Spec, uid: int, stage: Path, cgroups: Cgroups | None = None) -> list[str]:
    """The host command line: unshare (root, private mounts) -> prlimit -> setpriv (uid) -> bwrap."""
    lim = spec.limits
    mounts = _mounts(spec)
    script = _staging_script(mounts, stage, cgroups)
    bwrap = ["bwrap", "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent"]
    bwrap += ["--new-session", "--hostname", "sandbox", "--uid", str(uid), "--gid", str(uid), "--clearenv"]
    bwrap += _root_filesystem(lim)
    for i, (_host, inside, rw) in enumerate(mounts):
        bwrap += ["--bind" if rw else "--ro-bind", str(stage / str(i)), inside]
    for fd, inside in spec.files:
        bwrap += ["--perms", "0600", "--file", str(fd), inside]
    # bwrap's own root is a tmpfs the uid could fill without a size cap: make it read-only
    # (only that mount; /tmp, the home folder and the named folders stay writable).
    bwrap += ["--remount-ro", "/", "--remount-ro", "/dev"]
    for k, v in sandbox_env(spec.env).items():
        bwrap += ["--setenv", k, str(v)]
    if spec.info_fd is not None:
        bwrap += ["--info-fd", str(spec.info_fd)]
    bwrap += ["--chdir", spec.cwd, "--", *spec.argv]
    drop = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all", "--no-new-privs", "--"]
    script.append("exec " + " ".join(shlex.quote(a) for a in ["prlimit", *lim.prlimit_args(), "--", *drop, *bwrap]))
    return ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", "\n".join(script)]


class Prepared:
    """A leased uid and a staging folder for one sandbox; :meth:`close` frees both."""

    def __init__(self, base: Path | None = None, limits: SandboxLimits = DEFAULT_LIMITS):
        self.lease = lease_uid()
        self.cgroups = Cgroups(f"miglab-sbx-{self.lease.uid}", limits)
        self.uid = self.lease.uid
        self.base = Path(base or tempfile.mkdtemp(prefix="miglab-sbx-"))
        self.base.mkdir(mode=0o711, exist_ok=True)
        os.chmod(self.base, 0o711)
        self.stage = self.base / "stage"
        self.stage.mkdir(mode=0o755, exist_ok=True)

    def command(self, spec: Spec) -> list[str]:
        return build_command(spec, self.uid, self.stage, self.cgroups)

    def give(self, path: Path) -> None:
        """Make ``path`` (a folder made by the trusted side) writable by the sandbox uid."""
        for p in [path, *path.rglob("*")]:
            os.lchown(p, self.uid, self.uid)

    def close(self, remove_base: bool = True) -> None:
        self.cgroups.close()
        if remove_base:
            shutil.rmtree(self.base, ignore_errors=True)
        self.lease.release()


def kill_tree(proc: subprocess.Popen) -> None:
    """Kill a sandbox started by :func:`run` or the kernel launcher: bwrap dies, and with it its pid namespace."""
    if proc.poll() is not None:
        return  # already reaped: its pid (and group id) may belong to someone else by now
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.kill()
    except ProcessLookupError:
        pass


# -------------------------------------------------------------------- run


@dataclass
class SandboxRun(runner.ProcessResult):
    """What a sandboxed command did: its exit status, its output, and how long it took."""

    seconds: float = 0.0


def run(
    argv: list[str],
    *,
    cwd: str | os.PathLike | None = None,
    writable=(),
    readonly=(),
    env: dict | None = None,
    stdin: str = "",
    timeout: float | None = None,
    limits: SandboxLimits = DEFAULT_LIMITS,
    max_output: int = 1 << 20,
) -> SandboxRun:
    """Run ``argv`` in a fresh sandbox and wait for it (at most ``timeout`` or ``limits.wall`` seconds).

    ``writable`` host folders are bound read-write at the same path and handed
    to the sandbox uid for the run; ``readonly`` ones read-only. ``cwd`` is a
    path as seen inside (default: the private home folder). Output is capped
    at ``max_output`` bytes per stream. Use ``sys.executable`` for Python: the
    interpreter and the virtualenv are mounted read-only.

    The judge uses it to re-run a student's migration: put the project in a
    folder of its own, pass it as ``writable`` and ``cwd``, then read the
    database from the trusted side (after the run the folder's files belong
    to root again; symbolic links the student made are still there, so open
    files with care).
    """
    if not sys.platform.startswith("linux") or os.geteuid() != 0 or _tools_missing():
        raise SandboxError(available()[1])
    wall = limits.wall if timeout is None else min(timeout, limits.wall)
    prep = Prepared(limits=limits)
    started = time.monotonic()
    writable = [Path(w) for w in writable]
    try:
        for w in writable:
            prep.give(w)
        spec = Spec(
            argv=list(argv),
            cwd=str(cwd or HOME),
            readonly=list(readonly),
            writable=[str(w) for w in writable],
            env=dict(env or {}),
            limits=limits,
        )
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as inp:
            inp.write(stdin.encode())
            inp.seek(0)
            proc = subprocess.Popen(
                prep.command(spec),
                stdin=inp,
                stdout=out,
                stderr=err,
                start_new_session=True,
                close_fds=True,
                env=host_env(),
            )
            timed_out = False
            try:
                proc.wait(timeout=wall)
            except subprocess.TimeoutExpired:
                timed_out = True
                kill_tree(proc)
                proc.wait()

            def read(f):
                f.seek(0)
                return f.read(max_output).decode("utf-8", "replace")

            return SandboxRun(proc.returncode, read(out), read(err), timed_out, time.monotonic() - started)
    finally:
        for w in writable:
            for p in [w, *w.rglob("*")]:
                try:
                    os.lchown(p, os.geteuid(), os.getegid())
                except OSError:
                    pass
        prep.close()


def host_env() -> dict:
    """Environment of the host-side helpers (unshare, prlimit, setpriv, bwrap): nothing secret needed."""
    return {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LANG": "C.UTF-8"}


def describe() -> str:
    """One line for logs and reports."""
    ok, why = available()
    return ("isolated: " if ok else "NOT isolated: ") + why

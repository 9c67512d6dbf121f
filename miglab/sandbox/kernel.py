"""Jupyter kernels that run inside the sandbox (see :mod:`miglab.sandbox.bwrap`).

Two halves:

* :class:`SandboxKernelManager` (grader side, trusted): a jupyter_client
  ``AsyncKernelManager`` that talks to its kernel over Unix sockets (the
  ``ipc`` transport; TCP cannot cross into the kernel's empty network
  namespace) kept in a folder of its own, starts every kernel through the
  launcher below whatever kernel spec the notebook names, and caps how much
  output a cell may send back (:class:`CappedIopubChannel`). nbgrader's
  Execute preprocessor uses it with ``kernel_manager_class``.
* the launcher, ``python -m miglab.sandbox.kernel`` (grader side, as
  root): leases a sandbox uid, copies nothing itself, and starts bubblewrap
  with the kernel's sockets folder bound read-write at ``/run/kernel`` and
  the notebook's folder bound read-only at ``/mnt/submission``; inside, the
  folder is copied into the private home (``/home/student/work``, the
  kernel's working folder) so the notebook may write next to itself. The
  launcher forwards interrupts to the kernel, locks the sockets folder once
  the kernel has bound its sockets, and kills the whole pid namespace when
  the wall-clock limit passes or when it is told to stop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import bwrap

INSIDE_IPC = "/run/kernel"
INSIDE_SUBMISSION = "/mnt/submission"
INSIDE_CONNECTION = "/tmp/kernel-connection.json"
INSIDE_WORK = f"{bwrap.HOME}/work"
EVIDENCE_MIME = "application/vnd.miglab.evidence+json"
EVIDENCE_MAX = 256 << 10  # one evidence record (JSON text) may be this big
MAX_OUTPUTS = 2000  # outputs kept per cell
# Output a whole notebook may send, kept or not: past it the run stops after the cell (a notebook that
# floods every cell would otherwise cost its worker the whole wall-clock limit in receiving it).
NOTEBOOK_OUTPUT_BUDGET = 64 << 20
ZMQ_MAX_MESSAGE = 64 << 20  # a bigger iopub message drops the connection instead of filling memory
SOCKET_COUNT = 5  # shell, iopub, stdin, control, hb
# What ``python -m ipykernel_launcher`` runs, without debugpy: ipykernel imports it at start-up
# (about 60 ms of CPU per kernel) only for the Jupyter debugger, which nobody attaches to a graded
# kernel. While ``debugpy`` is None in sys.modules, importing ipykernel.debugger fails to import
# it and records ``_is_debugpy_available = False`` (no debugger, none advertised in kernel_info);
# the block is lifted before the kernel starts, so a notebook may still import debugpy itself.
# -P keeps the working folder (the student's files) off sys.path while ipykernel loads, which
# ipykernel_launcher otherwise ensures by hand.
KERNEL_BOOT = (
    "import sys; sys.modules['debugpy'] = None; import ipykernel.debugger; "
    "del sys.modules['debugpy']; from ipykernel import kernelapp; kernelapp.launch_new_instance()"
)


# ================================================================ grader side

if __name__ == "__main__":
    # The launcher needs none of the grader half (jupyter_client's manager and client: imports it never uses).
    AsyncKernelManager = None
else:
    try:
        from jupyter_client.asynchronous.client import AsyncKernelClient
        from jupyter_client.channels import AsyncZMQSocketChannel
        from jupyter_client.kernelspec import KernelSpec
        from jupyter_client.manager import AsyncKernelManager
        from traitlets import Bool, Float, Integer, Unicode
    except ImportError:  # pragma: no cover - the launcher half needs none of this
        AsyncKernelManager = None


class FastStopMixin:
    """For a jupyter_client ``AsyncKernelManager``: notice a stopped kernel within milliseconds.

    jupyter_client checks every 0.1 s whether a killed (or asked-to-stop)
    kernel is gone, so each graded submission idled about 0.1 s at the end
    for a process that SIGKILL ends in a few milliseconds. Only the polling
    interval changes: how long a kernel may take (the 5 s cap on a kill, the
    graceful shutdown's wait), the signals and the cleanup stay
    jupyter_client's. A poll is one ``waitpid(WNOHANG)``.
    """

    stop_poll_interval = 0.005

    async def _async_wait(self, pollinterval: float = 0.1) -> None:
        await super()._async_wait(pollinterval=min(pollinterval, self.stop_poll_interval))


def _size(msg: dict) -> int:
    content = msg.get("content") or {}
    if msg.get("msg_type") == "stream":
        return len(content.get("text") or "")
    try:
        return len(json.dumps(content, default=str))
    except Exception:  # noqa: BLE001 - an unmeasurable message counts as too big
        return 1 << 30


if AsyncKernelManager is not None:

    class CappedIopubChannel(AsyncZMQSocketChannel):
        """The iopub channel, keeping at most ``output_limit`` bytes and MAX_OUTPUTS outputs per cell.

        Output past the cap is replaced by one note; later messages of that
        cell are turned into ``execute_input`` messages, which nbclient
        ignores. Errors and the judge's evidence records are kept whatever
        the student printed before them (within their own size caps), so a
        chatty but correct answer keeps its evidence.
        """

        output_limit = 1 << 20
        output_budget = NOTEBOOK_OUTPUT_BUDGET

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._spent: dict[str, list] = {}
            self.received = 0  # bytes of output of every cell so far, before any was dropped

        @property
        def over_budget(self) -> bool:
            """Has the notebook sent more output than ``output_budget``? (The run then stops.)"""
            return self.received > self.output_budget

        async def get_msg(self, timeout=None):
            msg = await super().get_msg(timeout=timeout)
            return self.cap(msg)

        def cap(self, msg: dict) -> dict:
            kind = msg.get("msg_type")
            if kind not in ("stream", "display_data", "execute_result", "update_display_data", "error"):
                return msg
            parent = (msg.get("parent_header") or {}).get("msg_id", "")
            state = self._spent.setdefault(parent, [0, 0, False])  # bytes, outputs, noted
            content = msg.get("content") or {}
            size = _size(msg)
            self.received += size
            if kind == "error":
                tb = content.get("traceback") or []
                if sum(len(str(t)) for t in tb) > 64 << 10:
                    content["traceback"] = [str(t)[:2000] for t in tb[:20]] + ["... traceback truncated ..."]
                return msg
            data = content.get("data") or {}
            if isinstance(data, dict) and EVIDENCE_MIME in data and size <= EVIDENCE_MAX:
                if state[1] < MAX_OUTPUTS:
                    state[1] += 1
                    return msg
                return self._ignored(msg)
            if state[0] + size <= self.output_limit and state[1] < MAX_OUTPUTS:
                state[0] += size
                state[1] += 1
                return msg
            if state[2]:
                return self._ignored(msg)
            state[2] = True
            state[1] += 1
            room = max(0, self.output_limit - state[0])
            state[0] = self.output_limit
            note = f"\n[output truncated by the grader: a cell may print at most {self.output_limit} bytes]\n"
            if kind == "stream":
                content["text"] = (content.get("text") or "")[:room] + note
                return msg
            msg["msg_type"] = msg["header"]["msg_type"] = "stream"
            msg["content"] = {"name": "stdout", "text": note}
            return msg

        @staticmethod
        def _ignored(msg: dict) -> dict:
            msg["msg_type"] = msg["header"]["msg_type"] = "execute_input"
            msg["content"] = {"code": "", "execution_count": None}
            return msg

    class SandboxKernelClient(AsyncKernelClient):
        """A kernel client whose iopub socket refuses huge messages and whose channel caps output."""

        iopub_channel_class = CappedIopubChannel
        output_limit = Integer(1 << 20).tag(config=True)

        def _create_connected_socket(self, channel, identity=None):
            if channel != "iopub":
                return super()._create_connected_socket(channel, identity)
            import zmq
            from jupyter_client.connect import channel_socket_types

            sock = self.context.socket(channel_socket_types[channel])
            sock.linger = 1000
            sock.setsockopt(zmq.MAXMSGSIZE, ZMQ_MAX_MESSAGE)
            if identity:
                sock.identity = identity
            sock.connect(self._make_url(channel))
            return sock

        @property
        def iopub_channel(self):
            ch = super().iopub_channel
            ch.output_limit = self.output_limit
            return ch

    class SandboxKernelManager(FastStopMixin, AsyncKernelManager):
        """Start every kernel inside the sandbox, over Unix sockets, with capped output.

        A killed kernel's launcher is noticed within milliseconds (:class:`FastStopMixin`).

        Traits (set them through the grading pipeline's ``manager_kwargs``):
        ``memory``, ``cpu``, ``nproc``, ``nofile``, ``fsize``, ``tmpfs``,
        ``wall``, ``output`` override :class:`miglab.sandbox.bwrap.SandboxLimits`.
        """

        memory = Integer(bwrap.DEFAULT_LIMITS.memory).tag(config=True)
        cpu = Integer(bwrap.DEFAULT_LIMITS.cpu).tag(config=True)
        cpus = Float(bwrap.DEFAULT_LIMITS.cpus).tag(config=True)
        memory_total = Integer(bwrap.DEFAULT_LIMITS.memory_total).tag(config=True)
        nproc = Integer(bwrap.DEFAULT_LIMITS.nproc).tag(config=True)
        nofile = Integer(bwrap.DEFAULT_LIMITS.nofile).tag(config=True)
        fsize = Integer(bwrap.DEFAULT_LIMITS.fsize).tag(config=True)
        tmpfs = Integer(bwrap.DEFAULT_LIMITS.tmpfs).tag(config=True)
        wall = Float(bwrap.DEFAULT_LIMITS.wall).tag(config=True)
        output = Integer(bwrap.DEFAULT_LIMITS.output).tag(config=True)
        ready_timeout = Float(60.0).tag(config=True)
        warm = Bool(
            True,
            help="fork the kernel from this process's zygote (miglab.sandbox.zygote) into its "
            "fresh sandbox, instead of starting a cold Python there",
        ).tag(config=True)
        folder = Unicode("")

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.transport = "ipc"
            self.client_factory = SandboxKernelClient

        def _make_folder(self) -> None:
            """A private folder per kernel: its sockets (ipc/) and the sandbox's staging area."""
            if not self.folder or not Path(self.folder).is_dir():
                self.folder = tempfile.mkdtemp(prefix="miglab-kernel-")
                os.chmod(self.folder, 0o711)
            ipc = Path(self.folder) / "ipc"
            if ipc.is_dir():  # a restart: the old sockets' folder was locked by the launcher
                import shutil

                shutil.rmtree(ipc)
            ipc.mkdir(mode=0o700)
            self.ip = str(ipc / "k")

        def limits(self) -> bwrap.SandboxLimits:
            return bwrap.SandboxLimits(
                memory=self.memory,
                cpu=self.cpu,
                nproc=self.nproc,
                nofile=self.nofile,
                fsize=self.fsize,
                tmpfs=self.tmpfs,
                wall=self.wall,
                output=self.output,
                cpus=self.cpus,
                memory_total=self.memory_total,
            )

        @property
        def kernel_spec(self):
            # Whatever the notebook asks for, the kernel is this Python's ipykernel, sandboxed.
            return KernelSpec(
                argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                display_name="Python 3 (sandboxed)",
                language="python",
                interrupt_mode="signal",
                env={},
                resource_dir="",
            )

        def format_kernel_cmd(self, extra_arguments=None):
            # -I: the launcher runs as root in the submission's folder; a shipped `miglab/` must not be imported.
            warm = []
            if self.warm:
                from .zygote import zygote_socket

                warm = ["--zygote", zygote_socket(zygote_env())]
            return [
                sys.executable,
                "-I",
                "-m",
                "miglab.sandbox.kernel",
                "--connection-file",
                os.path.realpath(self.connection_file),
                "--grader",
                str(os.getpid()),
                "--limits",
                json.dumps(self.limits().__dict__),
                *warm,
                "--",
                *(extra_arguments or []),
            ]

        async def _async_pre_start_kernel(self, **kw):
            kw.pop("env", None)  # the launcher builds the kernel's environment from a whitelist
            self._make_folder()
            cmd, kw = await super()._async_pre_start_kernel(**kw)
            kw["env"] = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
            return cmd, kw

        async def _async_post_start_kernel(self, **kw):
            # Wait until the launcher has locked the sockets folder (no student code runs before).
            marker = Path(self.folder) / "ipc"
            deadline = time.monotonic() + self.ready_timeout
            while time.monotonic() < deadline:
                try:
                    st = marker.stat()
                    if st.st_uid == os.geteuid() and (marker / "ready").exists():
                        break
                except FileNotFoundError:
                    pass
                proc = getattr(self.provisioner, "process", None)
                if proc is not None and proc.poll() is not None:
                    break
                await asyncio.sleep(0.01)
            await super()._async_post_start_kernel(**kw)

        async def _async_cleanup_resources(self, restart: bool = False) -> None:
            await super()._async_cleanup_resources(restart=restart)
            if not restart and self.folder:
                import shutil

                shutil.rmtree(self.folder, ignore_errors=True)


KERNEL_MANAGER = "miglab.sandbox.kernel:SandboxKernelManager"


def zygote_env() -> dict:
    """The environment a zygote starts with: a cold sandboxed kernel's (see :mod:`miglab.sandbox.zygote`)."""
    return bwrap.sandbox_env({"PYTHONSAFEPATH": "1"})


def prestart_zygote(manager_kwargs: dict) -> None:
    """Start this process's zygote now, if its kernels will be warm, so it imports while nbgrader prepares."""
    if manager_kwargs.get("warm", True):
        from .zygote import zygote_socket

        zygote_socket(zygote_env())


def grading_kernel(limits: bwrap.SandboxLimits = bwrap.DEFAULT_LIMITS, check: bool = True) -> dict:
    """How the grader starts kernels in the sandbox (``KernelOptions`` fields), or SandboxError saying why
    not (``check=False``: they start on other machines, which check for themselves)."""
    if check:
        bwrap.require(unsafe=False)
    # Warm kernels (miglab.sandbox.zygote) unless MIGLAB_COLD_KERNELS=1: a cold Python in each sandbox.
    warm = os.environ.get("MIGLAB_COLD_KERNELS", "") not in ("1", "true", "yes")
    return {
        "kernel_name": "python3",
        "manager_class": KERNEL_MANAGER,
        "manager_kwargs": {**limits.__dict__, "warm": warm},
    }


# ============================================================ launcher side


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[1] == str(pid):
            out.append(int(entry))
    return out


class _WarmKernel:
    """The launcher's half of a warm kernel (:mod:`miglab.sandbox.zygote`): the sandbox runs a placeholder,
    the zygote forks the kernel into it; the zygote's waiter says the kernel's pid, then its exit status."""

    PLACEHOLDER = ["sleep", "2147483647"]

    def __init__(self, socket_path: str):
        self.socket_path = socket_path
        self.conn = None
        self.kernel = self.placeholder = 0
        self.code: int | None = None

    def start(
        self, init_pid: int, prep: bwrap.Prepared, log_path: Path, argv: list[str], timeout: float, parent: int
    ) -> None:
        """Fork the kernel into the sandbox; WarmKernelError if that fails, takes ``timeout`` seconds, or the
        grader (pid ``parent``) goes away meanwhile."""
        from . import zygote

        def abandoned() -> bool:
            return os.getppid() != parent

        deadline = time.monotonic() + timeout
        while not self.placeholder:  # the boot script has copied the submission once it runs sleep
            found = [p for p in _children(init_pid) if _exe(p).endswith("/sleep")]
            if found:
                self.placeholder = found[0]
            elif abandoned() or time.monotonic() > deadline or not Path(f"/proc/{init_pid}").exists():
                raise zygote.WarmKernelError("the sandbox's placeholder did not start")
            else:
                time.sleep(0.002)
        self.conn, self.kernel = zygote.request_kernel(
            self.socket_path,
            self.placeholder,
            log=str(log_path),
            cgroups=[str(d) for d in prep.cgroups.dirs],
            argv=argv,
            timeout=max(1.0, deadline - time.monotonic()),
            abandoned=abandoned,
        )

    def pids(self, init_pid: int | None) -> list[int]:
        others = [p for p in _children(init_pid) if p != self.placeholder] if init_pid else []
        return ([self.kernel] if self.kernel else []) + others

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds; True once the kernel has ended (its status in ``code``)."""
        import select

        if self.conn is None or self.code is not None:
            return self.code is not None
        if select.select([self.conn], [], [], max(0.0, timeout))[0]:
            data = self.conn.recv(4096)
            try:
                self.code = int(json.loads(data.decode().split("\n")[0])["exit"]) if data else -9
            except (ValueError, KeyError, TypeError):
                self.code = -9
        return self.code is not None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def _exe(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


def launch(
    connection_file: str,
    limits: bwrap.SandboxLimits,
    extra: list[str],
    cwd: str,
    grader: int | None = None,
    zygote: str | None = None,
) -> int:
    """Start the kernel in its sandbox and watch it (see the module docstring). ``grader`` is the pid of the
    process that started us: when it is gone (even before we got this far), the kernel is stopped.
    ``zygote``: the socket of a zygote that forks a warm kernel into the sandbox (else a cold one starts)."""
    parent = grader or os.getppid()
    if os.getppid() != parent:
        print("[sandbox] the grader went away before the kernel started", file=sys.stderr)
        return 1
    info = json.loads(Path(connection_file).read_text())
    ipc_host = Path(info["ip"]).parent
    folder = ipc_host.parent
    prep = bwrap.Prepared(base=folder / "sandbox", limits=limits)
    ipc_uid = prep.uid
    inside_info = dict(info, ip=f"{INSIDE_IPC}/{Path(info['ip']).name}")
    # The kernel's copy of its connection file lives in its private /tmp (ipykernel rewrites it
    # once its sockets are bound); the host folder only ever holds the sockets.
    conn_r, conn_w = os.pipe()
    os.write(conn_w, json.dumps(inside_info).encode())
    os.close(conn_w)
    os.chown(ipc_host, ipc_uid, ipc_uid)
    warm = _WarmKernel(zygote) if zygote else None
    kernel_argv = ["-f", INSIDE_CONNECTION, *extra]
    kernel = warm.PLACEHOLDER if warm else [sys.executable, "-P", "-c", KERNEL_BOOT, *kernel_argv]
    boot = (
        f"mkdir -p {INSIDE_WORK} && cp -R --preserve=mode,timestamps {INSIDE_SUBMISSION}/. {INSIDE_WORK}/ "
        f'2>/dev/null; cd {INSIDE_WORK} && exec "$@"'
    )
    r, w = os.pipe()
    spec = bwrap.Spec(
        argv=["/bin/sh", "-c", boot, "sh", *kernel],
        cwd=bwrap.HOME,
        env={"PYTHONSAFEPATH": "1"},
        readonly=[(cwd, INSIDE_SUBMISSION)],
        writable=[(str(ipc_host), INSIDE_IPC)],
        limits=limits,
        info_fd=w,
        files=[(conn_r, INSIDE_CONNECTION)],
    )
    cmd = prep.command(spec)
    # The kernel's own stdout/stderr (not the notebook's outputs) go to a log whose size the
    # file-size limit caps; it is shown only if the kernel fails to start.
    log_path = prep.base / "kernel.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd,
            start_new_session=True,
            pass_fds=(w, conn_r),
            env=bwrap.host_env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    os.close(w)
    os.close(conn_r)
    watch = _Watch(proc, limits, warm, parent)
    signal.signal(signal.SIGINT, watch.on_interrupt)
    signal.signal(signal.SIGTERM, watch.on_stop)
    signal.signal(signal.SIGHUP, watch.on_stop)
    try:
        with os.fdopen(r) as f:
            text = f.read()  # bwrap writes the info once the sandbox exists, then closes it
        try:
            watch.init_pid = json.loads(text)["child-pid"]
        except (ValueError, KeyError):
            watch.init_pid = None
        if warm is not None and not watch.start_warm(prep, log_path, kernel_argv):
            return 1
        code = watch.run(info, ipc_host)
        if code and not watch.stopping:
            tail = log_path.read_bytes()[-3000:].decode("utf-8", "replace")
            what = "ended" if watch.locked else "did not start"
            print(f"[sandbox] the kernel {what} (exit {code}):\n{tail}", file=sys.stderr)
        return 0 if watch.stopping else (code or 0)
    finally:
        bwrap.kill_tree(proc)
        if warm is not None:
            warm.close()
        prep.close(remove_base=True)
        # The kernel is gone: its folder goes too (a manager does not clean up after a dead
        # kernel; it makes a new folder if it restarts one).
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


class _Watch:
    """The launcher watching its kernel: interrupts forwarded, stopped on request, on the wall-clock limit
    or when the grader goes away, the sockets' folder locked once the kernel has bound its sockets."""

    def __init__(self, proc: subprocess.Popen, limits: bwrap.SandboxLimits, warm: _WarmKernel | None, parent: int):
        self.proc, self.limits, self.warm, self.parent = proc, limits, warm, parent
        self.init_pid: int | None = None
        self.stopping = self.locked = False

    def kernel_pids(self) -> list[int]:
        if self.warm is not None:
            return self.warm.pids(self.init_pid)
        return _children(self.init_pid) if self.init_pid else []

    def on_interrupt(self, signum, frame) -> None:
        for pid in self.kernel_pids():
            try:
                os.kill(pid, signal.SIGINT)
            except ProcessLookupError:
                pass

    def on_stop(self, signum, frame) -> None:
        if not self.locked:
            print(f"[sandbox] stopped by signal {signum} while the kernel was starting", file=sys.stderr)
        self.stopping = True
        bwrap.kill_tree(self.proc)

    def start_warm(self, prep: bwrap.Prepared, log_path: Path, argv: list[str]) -> bool:
        from .zygote import WarmKernelError

        try:
            self.warm.start(self.init_pid or 0, prep, log_path, argv, timeout=60.0, parent=self.parent)
        except (WarmKernelError, OSError) as exc:
            print(f"[sandbox] no warm kernel: {exc}", file=sys.stderr)
            return False
        return True

    def _ended(self, timeout: float) -> bool:
        if self.warm is not None:
            return self.warm.wait(timeout) or self.proc.poll() is not None
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def run(self, info: dict, ipc_host: Path) -> int:
        """Watch until the kernel ends; its exit status."""
        deadline = time.monotonic() + self.limits.wall
        sockets = [
            Path(f"{info['ip']}-{info[k]}")
            for k in ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")
        ]
        while not self._ended(0.0):
            if not self.locked and all(s.exists() for s in sockets):
                # The kernel has bound its sockets: from now on it may not write in this host folder.
                os.chown(ipc_host, 0, 0)
                os.chmod(ipc_host, 0o755)
                (ipc_host / "ready").touch()  # the manager's signal that start-up is over
                self.locked = True
            if time.monotonic() > deadline:
                print(f"[sandbox] wall-clock limit of {self.limits.wall:g} s reached: kernel killed", file=sys.stderr)
                break
            if os.getppid() != self.parent:
                print("[sandbox] the grader went away: kernel killed", file=sys.stderr)
                break
            if not self.locked:
                time.sleep(0.01 if self.warm is None else 0.002)
                continue
            # from here on mostly wait (an interrupt runs its handler and the wait goes on)
            if self._ended(max(0.0, min(1.0, deadline - time.monotonic()))):
                break
        bwrap.kill_tree(self.proc)
        self.proc.wait()
        if self.warm is not None and self.warm.code is not None:
            return self.warm.code
        return self.proc.returncode


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m miglab.sandbox.kernel",
        description="Start a Jupyter kernel inside the sandbox (used by SandboxKernelManager).",
    )
    p.add_argument("--connection-file", required=True)
    p.add_argument("--limits", default="{}", help="JSON of miglab.sandbox.bwrap.SandboxLimits fields")
    p.add_argument("--grader", type=int, help="pid of the grading process (default: our parent)")
    p.add_argument("--zygote", help="socket of the zygote that forks warm kernels (default: a cold kernel)")
    p.add_argument("extra", nargs="*", help="extra kernel arguments (after --)")
    args = p.parse_args(argv)
    limits = bwrap.SandboxLimits(**json.loads(args.limits))
    return launch(args.connection_file, limits, list(args.extra), os.getcwd(), grader=args.grader, zygote=args.zygote)


if __name__ == "__main__":
    sys.exit(main())

"""A private PostgreSQL server for the lab, started on demand and stopped when nothing uses it.

``Lab(name, db="postgresql")`` and, later, the grader use one server per
course checkout and Unix user, found or started by :func:`server`::

    pg = server()                       # started if needed; this process now holds a lease
    pg.create_database("shop")          # one database per lab (or per student)
    pg.django_database("shop")          # a Django DATABASES entry for it
    pg.conninfo("shop")                 # keyword arguments for psycopg.connect
    pg.drop_database("shop")

Where things live (``MIGLAB_PG_DIR`` moves it): ``<temp>/miglab-pg-<uid>-<checkout key>/``
holds ``data`` (the cluster, made by ``initdb`` at every cold start and deleted at every
stop; a link into ``/dev/shm`` when that has room, as scratch data needs no disk), ``socket/``
(the server's only way in: ``listen_addresses = ''``, no TCP port), ``server.log`` and three
lock files. The binaries are Debian's (``pg_config --bindir``,
``/usr/lib/postgresql/<v>/bin``; ``MIGLAB_PG_BINDIR`` overrides the search).

Who runs it: PostgreSQL refuses root, so as root the server runs as the ``postgres`` system
user (Debian's package creates it; ``MIGLAB_PG_OS_USER`` names another); as anyone else,
as that user.

Who may connect (``pg_hba.conf``): over the socket only. The superuser role ``postgres``
by peer authentication, for the OS users root, the server's user and the user who started
it; every other role only with its password (:meth:`Server.create_role`). A database made
here is closed to PUBLIC: a role connects to its own database only. So a sandboxed
student's code given the socket and one role's password reaches one database, and never
the superuser (who could run programs on the host with ``COPY ... TO PROGRAM``).

The lease (who keeps the server alive):

* every process that uses the server holds a *shared* ``flock`` on ``users.lock`` for as
  long as it uses it (until :meth:`Server.release` or its exit: the kernel drops the lock of
  a process that crashed or was killed, so a dead user never holds the server up);
* starting is serialised by an exclusive ``flock`` on ``start.lock``, taken while already
  holding the shared lease: the first user runs ``initdb`` and ``pg_ctl start``;
* next to the server runs a *reaper*, a small detached process (this file, run by path)
  that holds ``reaper.lock`` and waits for an *exclusive* lock on ``users.lock``. It gets
  it the moment the last lease is gone; holding it (newcomers wait on their shared lock
  meanwhile) it stops the server, deletes its data, frees ``reaper.lock``, then
  ``users.lock``. A newcomer then finds no server and starts a fresh one, with a new reaper.
* every user, on acquiring, checks that a reaper holds ``reaper.lock`` and starts one if
  not (a reaper that was killed is replaced by the next user). A server whose reaper was
  killed keeps running only until the next user comes and goes.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

try:
    from .display import LabError
except ImportError:  # run by path as the reaper: no package around us
    LabError = RuntimeError  # type: ignore[misc,assignment]

PORT = 5432  # only names the socket file (.s.PGSQL.5432): there is no TCP port
ADMIN = "postgres"  # the superuser role (initdb -U)
PSYCOPG_PIN = "psycopg[binary]==3.3.9"
TOOLS = ("initdb", "pg_ctl", "postgres")
SOCKET_MAX = 107  # sun_path of a Unix socket, less the final NUL
RAM = Path("/dev/shm")  # where the cluster goes when there is room (see _data_target)
RAM_MIN_FREE = 1 << 30
START_TIMEOUT = 60
INSTALL_HINT = (
    "install Debian's PostgreSQL server: as root, `sh tools/install_postgres.sh` (or `apt-get install postgresql`)"
)
SQLITE_NOTE = 'SQLite labs (the default, db="sqlite") do not need it.'

# What PostgreSQL puts in messages that differs from run to run (process ids, object ids,
# transaction ids): replaced by a placeholder in what a lab shows.
_VOLATILE = [
    (re.compile(r"\b([Pp]rocess) \d+\b"), r"\1 <pid>"),
    (re.compile(r"\b(transaction) \d+\b"), r"\1 <xid>"),
    (re.compile(r"\b(relation|database|OID) \d+\b"), r"\1 <oid>"),
    (re.compile(r"\b(tuple) \(\d+,\d+\)"), r"\1 (<block>,<row>)"),
]


class PostgresUnavailable(LabError):
    """PostgreSQL cannot be had here; the message says why and how to get it."""


def _unavailable(why: str, how: str) -> PostgresUnavailable:
    return PostgresUnavailable(f"PostgreSQL is not available: {why}.\n  To get it: {how}.\n  {SQLITE_NOTE}")


def sanitize(text: str) -> str:
    """``text`` without the numbers PostgreSQL messages carry that change between runs."""
    for pattern, replacement in _VOLATILE:
        text = pattern.sub(replacement, text)
    return text


# ------------------------------------------------------------------ finding things


def _has_tools(folder: Path) -> bool:
    return all(os.access(folder / t, os.X_OK) for t in TOOLS)


def find_bindir() -> Path:
    """The folder with ``initdb``, ``pg_ctl`` and ``postgres``.

    ``$MIGLAB_PG_BINDIR`` when set (and then only there); else ``pg_config --bindir``; else
    the newest ``/usr/lib/postgresql/<version>/bin``; else ``initdb`` on PATH.
    """
    env = os.environ.get("MIGLAB_PG_BINDIR")
    if env:
        if _has_tools(Path(env)):
            return Path(env)
        raise _unavailable(
            f"MIGLAB_PG_BINDIR={env} has no {', '.join(TOOLS)}",
            f"point MIGLAB_PG_BINDIR at PostgreSQL's bin folder, or unset it and {INSTALL_HINT}",
        )
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10).stdout
            candidates.append(Path(out.strip()))
        except (OSError, subprocess.SubprocessError):
            pass
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: [int(x) if x.isdigit() else 0 for x in p.parent.name.split(".")],
        reverse=True,
    )
    candidates += versions
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(os.path.realpath(initdb)).parent)
    for folder in candidates:
        if str(folder) and _has_tools(folder):
            return folder
    raise _unavailable(
        "no PostgreSQL server programs (initdb, pg_ctl, postgres) on this machine "
        "(looked in `pg_config --bindir`, /usr/lib/postgresql/*/bin and PATH)",
        INSTALL_HINT,
    )


def default_base() -> Path:
    """``$MIGLAB_PG_DIR``, else a folder in the temp folder of this checkout and this user."""
    env = os.environ.get("MIGLAB_PG_DIR")
    if env:
        return Path(env)
    checkout = str(Path(__file__).resolve().parents[2])
    key = hashlib.sha256(checkout.encode()).hexdigest()[:8]
    return Path(tempfile.gettempdir()) / f"miglab-pg-{os.geteuid()}-{key}"


def _server_account() -> tuple[int, int, str] | None:
    """(uid, gid, name) to run the server as, or None to run it as ourselves (not root)."""
    if os.geteuid() != 0:
        return None
    import pwd

    name = os.environ.get("MIGLAB_PG_OS_USER", "postgres")
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        raise _unavailable(
            f"PostgreSQL refuses to run as root, and there is no `{name}` user to run it as",
            "`sh tools/install_postgres.sh` as root creates it (the `postgresql` package does too), "
            "or set MIGLAB_PG_OS_USER to an existing unprivileged user",
        ) from None
    if pw.pw_uid == 0:
        raise _unavailable(
            f"the server's user `{name}` is root, which PostgreSQL refuses",
            "set MIGLAB_PG_OS_USER to an unprivileged user",
        )
    return pw.pw_uid, pw.pw_gid, name


def _lock_fd(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)


def _postmaster_pid(data: Path) -> int | None:
    """The pid of the postmaster running on ``data``, if one is alive."""
    try:
        pid = int((data / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    return pid if _serves(pid, data) else None


def _serves(pid: int, data: Path) -> bool:
    """Whether ``pid`` is a live (not zombie) postgres process started on ``data``."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X") and os.fsencode(str(data)) in argv


# ------------------------------------------------------------------ the server


class Server:
    """One private PostgreSQL server (see the module's doc): its folders, its lease, its databases."""

    def __init__(self, base: str | Path | None = None, bindir: str | Path | None = None):
        self.base = Path(base) if base else default_base()
        self._bindir = Path(bindir) if bindir else None
        self.data_dir = self.base / "data"
        self.socket_dir = self.base / "socket"
        self.log_file = self.base / "server.log"
        self.port = PORT
        self._lease: int | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        state = "leased" if self._lease is not None else "not leased"
        return f"<PostgreSQL server {self.socket_dir} ({state})>"

    @property
    def bindir(self) -> Path:
        if self._bindir is None:
            self._bindir = find_bindir()
        return self._bindir

    # ---- the lease

    def acquire(self) -> Server:
        """Hold a lease on the server, starting it first if no one runs it. Idempotent per process.

        Raises :class:`PostgresUnavailable` (a :class:`LabError`) saying why and how to fix it.
        """
        with self._lock:
            if self._lease is not None:
                return self
            bindir = self.bindir
            try:
                import psycopg  # noqa: F401
            except ImportError:
                raise _unavailable(
                    "the PostgreSQL driver for Python (psycopg) is not installed",
                    f"`.venv/bin/pip install '{PSYCOPG_PIN}'` (it is in requirements.txt: `make setup`)",
                ) from None
            account = _server_account()
            self._prepare_base()
            lease = _lock_fd(self.base / "users.lock")
            try:
                fcntl.flock(lease, fcntl.LOCK_SH)  # waits while a reaper is stopping the server
                start = _lock_fd(self.base / "start.lock")
                try:
                    fcntl.flock(start, fcntl.LOCK_EX)
                    pid = _postmaster_pid(self.data_dir)
                    started = pid is None or not self._socket().exists()
                    if started:
                        if pid is not None:  # running, but unreachable (its socket was deleted)
                            _stop(self.base, bindir, account[2] if account else "", pid)
                        self._start(bindir, account)
                    try:
                        self._ensure_reaper(bindir, account)
                    except BaseException:
                        if started:  # no server of ours without a reaper
                            _stop(self.base, bindir, account[2] if account else "")
                        raise
                finally:
                    os.close(start)
            except BaseException:
                os.close(lease)
                raise
            self._lease = lease
        return self

    def release(self) -> None:
        """Give up this process's lease; the server stops if it was the last one."""
        with self._lock:
            if self._lease is not None:
                os.close(self._lease)
                self._lease = None

    def is_running(self) -> bool:
        return _postmaster_pid(self.data_dir) is not None

    def reaper_pid(self) -> int | None:
        """The pid of the live reaper, if there is one."""
        probe = _lock_fd(self.base / "reaper.lock")
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return int(os.pread(probe, 32, 0).split()[0])
        finally:
            os.close(probe)
        return None

    def _socket(self) -> Path:
        return self.socket_dir / f".s.PGSQL.{self.port}"

    def _prepare_base(self) -> None:
        """Make the base folder, or check that the one there is ours and not writable by others."""
        if len(str(self._socket())) > SOCKET_MAX:
            raise _unavailable(
                f"the socket path {self._socket()} is longer than a Unix socket allows ({SOCKET_MAX} bytes)",
                "set MIGLAB_PG_DIR to a shorter folder",
            )
        try:
            self.base.mkdir(mode=0o755, parents=True, exist_ok=True)
            st = os.lstat(self.base)
        except OSError as e:
            raise _unavailable(f"cannot make its folder {self.base} ({e.strerror})", "set MIGLAB_PG_DIR") from None
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
            raise _unavailable(
                f"{self.base} is not a folder of this user that others cannot write to (refusing to use it)",
                "remove it, or set MIGLAB_PG_DIR to another folder",
            )
        os.chmod(self.base, 0o755)  # the server's user must reach data/ and socket/

    def _as_server(self, account, argv: list[str], **kw) -> subprocess.CompletedProcess:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C", "TZ": "UTC"}
        if account is not None:
            kw.update(user=account[0], group=account[1], extra_groups=[])
        try:
            return subprocess.run(argv, cwd=self.base, env=env, **kw)
        except OSError as e:
            who = f"as the user `{account[2]}`" if account else "as this user"
            raise _unavailable(
                f"cannot run {argv[0]} {who} ({e.strerror})",
                "make PostgreSQL's programs and their folders readable by that user",
            ) from None

    def _fresh_dir(self, path: Path, mode: int, account) -> None:
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(mode=mode)
        os.chmod(path, mode)
        if account is not None:
            os.chown(path, account[0], account[1])

    def _data_target(self) -> Path:
        """Where the cluster's files go: in RAM (a folder of ours in /dev/shm, reached by the
        symbolic link ``data``) when it has room, else ``data`` itself. Scratch data needs no disk,
        and creating and dropping databases (a lab's reset) is about ten times faster there."""
        try:
            st = os.statvfs(RAM)
            roomy = st.f_bavail * st.f_frsize >= RAM_MIN_FREE and os.access(RAM, os.W_OK)
        except OSError:
            roomy = False
        if not roomy:
            return self.data_dir
        key = hashlib.sha256(str(self.base.resolve()).encode()).hexdigest()[:8]
        folder = RAM / f"miglab-pg-{os.geteuid()}-{key}"
        folder.mkdir(mode=0o755, exist_ok=True)
        st = os.lstat(folder)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
            return self.data_dir  # someone else's: keep to the base folder
        os.chmod(folder, 0o755)
        return folder / "data"

    def _start(self, bindir: Path, account) -> None:
        """initdb a fresh cluster and start it (called holding start.lock, with no server running)."""
        _remove_data(self.data_dir)
        target = self._data_target()
        self._fresh_dir(target, 0o700, account)
        if target != self.data_dir:
            self.data_dir.symlink_to(target)
        self._fresh_dir(self.socket_dir, 0o755, account)
        self.log_file.unlink(missing_ok=True)
        self.log_file.touch(0o644)
        if account is not None:
            os.chown(self.log_file, account[0], account[1])
        init = self._as_server(
            account,
            [
                str(bindir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                ADMIN,
                "-A",
                "trust",
                "--no-locale",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if init.returncode != 0:
            raise _unavailable(
                f"initdb failed (exit status {init.returncode}):\n{_tail(init.stdout + init.stderr)}",
                "fix the error above, or remove " + str(self.base),
            )
        self._configure(account)
        with open(self.base / "pg_ctl.out", "w") as out:
            started = self._as_server(
                account,
                [
                    str(bindir / "pg_ctl"),
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log_file),
                    "-w",
                    "-t",
                    str(START_TIMEOUT),
                    "-s",
                    "start",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                timeout=START_TIMEOUT + 30,
            )
        try:
            if started.returncode != 0 or not self.is_running():
                why = (self.base / "pg_ctl.out").read_text(errors="replace") + _read_tail(self.log_file)
                raise _unavailable(
                    f"the server did not start (pg_ctl exit status {started.returncode}):\n{_tail(why)}",
                    f"fix the error above (the log is {self.log_file})",
                )
            with self.connect() as con:
                con.execute("REVOKE ALL ON DATABASE postgres, template1 FROM PUBLIC")
        except BaseException:
            _stop(self.base, bindir, account[2] if account else "")  # half started: not left running
            raise

    def _configure(self, account) -> None:
        """Socket only, no TCP; peer login for the superuser, passwords for every other role."""
        me = _user_name(os.geteuid())
        admins = sorted({"root", me, account[2] if account else me} - {None})
        socket = str(self.socket_dir).replace("'", "''")
        conf = [
            "",
            "# miglab (miglab/lab/postgres.py): a private scratch server, reached by its Unix socket only",
            "listen_addresses = ''",
            f"port = {self.port}",
            f"unix_socket_directories = '{socket}'",
            "unix_socket_permissions = 0777",
            "fsync = off",
            "synchronous_commit = off",
            "full_page_writes = off",  # scratch data: speed over safety
            "timezone = 'UTC'",
            "log_timezone = 'UTC'",
            "lc_messages = 'C'",
            "password_encryption = 'scram-sha-256'",
        ]
        hba = [
            "# miglab: Unix socket only (no TCP: listen_addresses is empty)",
            f"local all {ADMIN} peer map=admins",
            "local all all scram-sha-256",
        ]
        ident = ["# miglab: the OS users that may log in as the superuser"]
        ident += [f"admins {user} {ADMIN}" for user in admins]
        with open(self.data_dir / "postgresql.conf", "a") as f:
            f.write("\n".join(conf) + "\n")
        for name, lines in (("pg_hba.conf", hba), ("pg_ident.conf", ident)):
            path = self.data_dir / name
            path.write_text("\n".join(lines) + "\n")
            if account is not None:
                os.chown(path, account[0], account[1])

    def _ensure_reaper(self, bindir: Path, account) -> None:
        """Start a reaper unless one holds reaper.lock (called holding start.lock and a lease)."""
        probe = _lock_fd(self.base / "reaper.lock")
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # a reaper is alive
        finally:
            os.close(probe)
        argv = [
            sys.executable,
            "-I",
            os.path.abspath(__file__),
            "reap",
            str(self.base),
            str(bindir),
            account[2] if account else "",
        ]
        with open(self.base / "reaper.log", "a") as log:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,
                close_fds=True,
                cwd=self.base,
            )
        ready = select.select([proc.stdout], [], [], 30)[0] and proc.stdout.readline()
        proc.stdout.close()
        if ready != b"ready\n":
            proc.kill()
            raise _unavailable(
                f"its reaper (which stops the server when unused) did not start; see {self.base / 'reaper.log'}",
                "fix the error there",
            )

    # ---- connecting

    def conninfo(self, dbname: str = "postgres", user: str = ADMIN, password: str | None = None) -> dict:
        """Keyword arguments for ``psycopg.connect`` (over the socket; no TCP)."""
        info = {"host": str(self.socket_dir), "port": self.port, "dbname": dbname, "user": user, "connect_timeout": 10}
        if password is not None:
            info["password"] = password
        return info

    def connect(
        self, dbname: str = "postgres", user: str = ADMIN, password: str | None = None, autocommit: bool = True, **kw
    ):
        """A psycopg connection (autocommit unless asked otherwise)."""
        import psycopg

        return psycopg.connect(**self.conninfo(dbname, user, password), autocommit=autocommit, **kw)

    def django_database(self, dbname: str, user: str = ADMIN, password: str | None = None) -> dict:
        """A Django ``DATABASES`` entry for ``dbname`` on this server."""
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": dbname,
            "HOST": str(self.socket_dir),
            "PORT": str(self.port),
            "USER": user,
            "PASSWORD": password or "",
        }

    def sqlalchemy_url(self, dbname: str, user: str = ADMIN, password: str | None = None) -> str:
        """A SQLAlchemy URL for ``dbname`` over the socket (psycopg 3), e.g. for a gradebook."""
        from urllib.parse import quote

        who = quote(user, safe="") + (":" + quote(password, safe="") if password is not None else "")
        return (
            f"postgresql+psycopg://{who}@/{quote(dbname, safe='')}"
            f"?host={quote(str(self.socket_dir), safe='/')}&port={self.port}"
        )

    def env(self, dbname: str, user: str = ADMIN, password: str | None = None) -> dict:
        """The environment that makes the lab template's ``project/settings.py`` use ``dbname`` here."""
        return {
            "MIGLAB_DB": "postgresql",
            "MIGLAB_PG_HOST": str(self.socket_dir),
            "MIGLAB_PG_PORT": str(self.port),
            "MIGLAB_PG_NAME": dbname,
            "MIGLAB_PG_USER": user,
            "MIGLAB_PG_PASSWORD": password or "",
        }

    # ---- databases and roles

    def _admin(self, *statements) -> None:
        """Run ``(template, identifiers...)`` statements as the superuser, on one connection."""
        from psycopg import sql

        with self.connect() as con:
            for template, *params in statements:
                con.execute(sql.SQL(template).format(*params))

    def create_database(self, name: str, owner: str | None = None, replace: bool = False) -> None:
        """Create database ``name``, closed to every role but ``owner`` and the superuser.

        An existing one is an error, unless ``replace``: then it is dropped first (its
        connections ended), so the new one is empty.
        """
        from psycopg import sql

        _check_name(name)
        db = sql.Identifier(name)
        drop = [("DROP DATABASE IF EXISTS {} WITH (FORCE)", db)] if replace else []
        create = ("CREATE DATABASE {} OWNER {}", db, sql.Identifier(owner)) if owner else ("CREATE DATABASE {}", db)
        self._admin(*drop, create, ("REVOKE ALL ON DATABASE {} FROM PUBLIC", db))

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` if it exists, ending every connection to it first."""
        from psycopg import sql

        self._admin(("DROP DATABASE IF EXISTS {} WITH (FORCE)", sql.Identifier(name)))

    def databases(self) -> list[str]:
        with self.connect() as con:
            rows = con.execute(
                "SELECT datname FROM pg_database WHERE NOT datistemplate AND datname <> 'postgres' ORDER BY datname"
            ).fetchall()
        return [r[0] for r in rows]

    def create_role(self, name: str, password: str) -> None:
        """A login role that is nothing more: no superuser, cannot create databases or roles."""
        from psycopg import sql

        _check_name(name)
        self._admin(
            (
                "CREATE ROLE {} LOGIN PASSWORD {} NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION",
                sql.Identifier(name),
                sql.Literal(password),
            )
        )

    def drop_role(self, name: str) -> None:
        from psycopg import sql

        self._admin(("DROP ROLE IF EXISTS {}", sql.Identifier(name)))


def _check_name(name: str) -> None:
    if not name or len(name.encode()) > 63 or "\x00" in name:
        raise LabError(f"PostgreSQL name {name!r}: 1 to 63 bytes")


def _user_name(uid: int) -> str | None:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def _read_tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _tail(text: str, lines: int = 12) -> str:
    return "\n".join("    " + ln for ln in text.strip().splitlines()[-lines:])


_servers: dict[tuple[str, str], Server] = {}
_servers_lock = threading.Lock()


def server() -> Server:
    """This process's server for the current ``MIGLAB_PG_DIR`` / ``MIGLAB_PG_BINDIR``, with a lease held.

    Raises :class:`PostgresUnavailable` (a :class:`LabError`) when PostgreSQL cannot be had.
    """
    key = (str(default_base()), os.environ.get("MIGLAB_PG_BINDIR", ""))
    with _servers_lock:
        srv = _servers.get(key)
        if srv is None:
            srv = _servers[key] = Server(key[0])  # its bindir: find_bindir(), which reads MIGLAB_PG_BINDIR
    return srv.acquire()


# ------------------------------------------------------------------ the reaper


def _stop(base: Path, bindir: Path, user: str, pid: int | None = None, target: Path | None = None) -> None:
    """Stop the server on ``base/data`` (pg_ctl fast, then immediate, then signals) and delete its data.

    ``pid`` and ``target`` (the folder ``data`` links to) are as seen earlier: the server is
    stopped and its files deleted even if its base folder was deleted meanwhile.
    """
    data = base / "data"
    pid = _postmaster_pid(data) or pid
    kw: dict = {
        "cwd": base,
        "stdin": subprocess.DEVNULL,
        "capture_output": True,
        "timeout": 60,
        "env": {"PATH": "/usr/bin:/bin", "LC_ALL": "C"},
    }
    if user:
        import pwd

        pw = pwd.getpwnam(user)
        kw.update(user=pw.pw_uid, group=pw.pw_gid, extra_groups=[])
    for mode in ("fast", "immediate"):
        if pid is None or not _serves(pid, data) or not (data / "postmaster.pid").exists():
            break
        try:
            subprocess.run([str(bindir / "pg_ctl"), "-D", str(data), "-m", mode, "-w", "-t", "20", "stop"], **kw)
        except (OSError, subprocess.SubprocessError) as e:
            print(f"pg_ctl stop -m {mode}: {e}", file=sys.stderr)
    for sig in (signal.SIGQUIT, signal.SIGKILL):  # immediate shutdown (it cleans up), then no choice
        if pid is None or not _serves(pid, data):
            break
        os.kill(pid, sig)
        for _ in range(100):
            if not _serves(pid, data):
                break
            time.sleep(0.05)
    _remove_data(data, target)
    for leftover in (base / "socket").glob(".s.PGSQL.*"):
        leftover.unlink(missing_ok=True)


def _remove_data(data: Path, target: Path | None = None) -> None:
    """Delete a cluster's files: ``data``, or what it links to (``target`` if known: the link
    may be gone), and that folder's empty parent."""
    if data.is_symlink():
        target = Path(os.readlink(data))
        data.unlink()
    shutil.rmtree(target or data, ignore_errors=True)
    if target is not None and target != data:
        try:
            target.parent.rmdir()
        except OSError:
            pass


def _reap(base: Path, bindir: Path, user: str) -> None:
    """The reaper: wait until no process holds a lease on the server, then stop it."""
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    mine = _lock_fd(base / "reaper.lock")
    for _ in range(20):  # a probe (Server.reaper_pid) may hold it for an instant
        try:
            fcntl.flock(mine, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            time.sleep(0.05)
    else:
        return  # another reaper is there already
    os.ftruncate(mine, 0)
    os.write(mine, f"{os.getpid()}\n".encode())  # for whoever wonders which process it is
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    pid = _postmaster_pid(base / "data")  # started before us, by the user who started us
    target = Path(os.path.realpath(base / "data"))
    users = _lock_fd(base / "users.lock")
    fcntl.flock(users, fcntl.LOCK_EX)  # the moment the last lease is gone; newcomers wait until we are done
    try:
        _stop(base, bindir, user, pid, target)
    finally:
        os.close(mine)  # first: a newcomer must see that no reaper is left
        os.close(users)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "reap":
        _reap(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4])
    else:
        sys.exit(f"usage: {sys.argv[0]} reap BASE BINDIR USER")

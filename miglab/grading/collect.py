"""Read one submission folder as the grader would, without trusting anything in it.

A submission folder (``submitted/<student>/<assignment>/``) is written by the
student, directly or through nbgrader's exchange, and the grader reads it with
more rights than the student has. So :func:`read_submission`

* never follows a symbolic link: not for the folder itself, not for a folder
  inside it, not for a file (a link is recorded as skipped, with its reason);
* reads only regular files with a single name (a hard link can be a second
  name of a file outside the folder), and never opens a device, a named pipe
  or a socket: each file is first opened with ``O_PATH | O_NOFOLLOW`` (which
  opens nothing), checked with ``fstat``, and only then re-opened for reading
  through that very descriptor, so a name swapped for something else between
  the check and the read cannot redirect it;
* walks the tree relative to directory descriptors (``dir_fd=``,
  ``os.scandir(fd)``), so a folder renamed and replaced by a link while it is
  being read cannot move the walk outside the submission;
* stops at the limits below, which the README lists.

:func:`submission_time` turns ``timestamp.txt`` into the time nbgrader records
(the collection time when the file is missing or bad, with a note saying so),
and :func:`write_tree` writes ``autograded/`` and ``feedback/`` folders with
modes of the grader's choosing, switching the whole folder in one rename.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import errno
import os
import re
import secrets
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

# ----------------------------------------------------------------------------- limits (listed in the README)

#: The most a whole submission may hold (the bytes of the files read). Over it the submission is
#: refused as too large and nothing of it is kept.
MAX_SUBMISSION_BYTES = 50 * 2**20
#: The most one file may hold; a larger file is skipped (not read) and the rest of the submission is read.
MAX_FILE_BYTES = 20 * 2**20
#: How many folder levels below the submission folder are read; deeper folders are skipped.
MAX_DEPTH = 16
#: How many files and folders (of any kind) a submission may hold; over it the submission is too large.
MAX_ENTRIES = 10_000
#: Names left out wherever they appear (Jupyter's autosaves and Python's byte-code caches).
IGNORED_NAMES = frozenset({".ipynb_checkpoints", "__pycache__"})

# ----------------------------------------------------------------------------- why a path was not read

LINK = "a symbolic link (links are never followed)"
HARD_LINK = "a hard link (links are never followed)"
DEVICE = "a device"
FIFO = "a named pipe"
SOCKET = "a socket"
NOT_REGULAR = "not a regular file"
CHANGED = "changed while the grader was reading it"

_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_PATH = getattr(os, "O_PATH", 0)


def size_text(n: int) -> str:
    """``20 MB``, ``4 KB`` or ``1000 bytes`` (MB = 2**20 bytes)."""
    if n >= 2**20 and n % 2**20 == 0:
        return f"{n // 2**20} MB"
    if n >= 1024 and n % 1024 == 0:
        return f"{n // 1024} KB"
    return f"{n} bytes"


def kind_of(mode: int) -> str | None:
    """Why a file of this ``st_mode`` is never opened, or None for a regular file or a folder."""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    if stat.S_ISLNK(mode):
        return LINK
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return DEVICE
    if stat.S_ISFIFO(mode):
        return FIFO
    if stat.S_ISSOCK(mode):
        return SOCKET
    return NOT_REGULAR


def _unreadable(exc: OSError) -> str:
    return f"unreadable ({exc.strerror or exc.__class__.__name__})"


@dataclass(frozen=True)
class Collected:
    """What :func:`read_submission` read from one folder."""

    files: dict[str, bytes]  # posix relative path -> bytes (walk order: sorted names)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (relative path, reason a student can read)
    too_large: str | None = None  # the whole submission is over a limit: files is then empty
    refused: str | None = None  # the folder itself could not be read (a link, missing, ...)
    total_bytes: int = 0  # bytes read into ``files``
    collected_at: float | None = None  # the folder's own mtime (never followed): its collection time

    @property
    def readable(self) -> bool:
        """True when the submission can be graded from ``files`` (it may still have skipped paths)."""
        return self.too_large is None and self.refused is None

    def notes(self) -> list[str]:
        """One sentence per problem, for the student's feedback and the instructor's CSV."""
        out = []
        if self.refused:
            out.append(f"The submission could not be read: {self.refused}.")
        if self.too_large:
            out.append(f"The submission was not graded: {self.too_large}.")
        out += [f"{rel} was not read: {why}." for rel, why in self.skipped]
        return out


class _TooLarge(Exception):
    pass


def _lstat(name: str, dir_fd: int) -> os.stat_result:
    """``lstat`` of one name in an open folder (a seam the race tests use)."""
    return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)


def _read_all(fd: int, limit: int) -> bytes:
    """At most ``limit + 1`` bytes of an open file (one more than allowed shows it is too big)."""
    chunks, got = [], 0
    while got <= limit:
        chunk = os.read(fd, min(1 << 20, limit + 1 - got))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _open_regular(name: str, dir_fd: int) -> tuple[int | None, str | None]:
    """(readable descriptor, None) for a regular file with one name, else (None, reason).

    The name is opened with ``O_PATH | O_NOFOLLOW``, which opens nothing (a device or a pipe stays
    closed, a link is not followed), and only a regular file is then re-opened for reading through
    ``/proc/self/fd``: the same inode, whatever the name points at by then. Where there is no
    ``O_PATH`` or no ``/proc``, the file is opened with ``O_NOFOLLOW | O_NONBLOCK | O_NOCTTY`` and
    checked with ``fstat`` before anything is read.
    """
    if _O_PATH:
        try:
            pfd = os.open(name, _O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        except FileNotFoundError:
            return None, CHANGED
        except OSError as exc:
            return None, _unreadable(exc)
        try:
            why = _why_not(os.fstat(pfd))
            if why:
                return None, why
            try:
                return os.open(f"/proc/self/fd/{pfd}", os.O_RDONLY | os.O_NOCTTY | os.O_CLOEXEC), None
            except FileNotFoundError:  # no /proc: open the name itself, below
                pass
            except OSError as exc:
                return None, _unreadable(exc)
        finally:
            os.close(pfd)
    try:
        fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        return None, CHANGED
    except OSError as exc:
        return None, LINK if exc.errno == errno.ELOOP else _unreadable(exc)
    why = _why_not(os.fstat(fd))
    if why:
        os.close(fd)
        return None, why
    return fd, None


def _why_not(st: os.stat_result) -> str | None:
    """Why an opened (not yet read) file is not read: its type, or a second name."""
    if stat.S_ISDIR(st.st_mode):
        return CHANGED
    why = kind_of(st.st_mode)
    if why is None and st.st_nlink > 1:
        why = HARD_LINK
    return why


class _Refused(Exception):
    pass


def _failed_open(name, dir_fd: int | None, exc: OSError) -> str:
    """Why a folder could not be opened without following links: what the name is now, or the error."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return CHANGED
    except OSError:
        return _unreadable(exc)
    if stat.S_ISDIR(st.st_mode):
        return _unreadable(exc)
    return kind_of(st.st_mode) or CHANGED


def _open_dir(name, dir_fd: int | None, what: str) -> int:
    """Open one folder without following a link; _Refused says why not (``what``: "the folder", ...)."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise _Refused(f"{what} does not exist") from None
        why = _failed_open(name, dir_fd, exc)
        raise _Refused(f"{what} is a file, not a folder" if why == CHANGED else f"{what} is {why}") from None


def _open_folder(folder: Path, base: Path | None) -> int:
    """A descriptor of ``folder``, opened without following a link (from ``base`` down, when given)."""
    if base is None:
        return _open_dir(folder, None, "the folder")
    try:
        parts = Path(os.path.abspath(folder)).relative_to(os.path.abspath(base)).parts
    except ValueError:
        raise _Refused(f"the folder is not inside {base}") from None
    fd = _open_dir(base, None, "the base folder")
    for i, part in enumerate(parts):
        try:
            nxt = _open_dir(part, fd, "the folder" if i == len(parts) - 1 else "a folder above it")
        finally:
            os.close(fd)
        fd = nxt
    return fd


def read_submission(
    folder: Path,
    *,
    max_total: int = MAX_SUBMISSION_BYTES,
    max_file: int = MAX_FILE_BYTES,
    max_depth: int = MAX_DEPTH,
    max_entries: int = MAX_ENTRIES,
    base: Path | None = None,
    select=None,
) -> Collected:
    """Read every regular file below ``folder`` without following any link (see the module's text).

    ``base``: a folder above ``folder`` (e.g. the course's ``submitted/``); every folder from it down
    to ``folder`` is then opened without following links too. ``select(relative path) -> bool``:
    when given, only the regular files it accepts are read (the LMS import reads notebooks only);
    the others are neither read nor listed as skipped (links, devices, pipes and sockets still are).
    Never raises for what is in the folder.
    """
    try:
        top = _open_folder(Path(folder), base)
    except _Refused as exc:
        return Collected(files={}, refused=str(exc))
    walker = _Walker(max_total, max_file, max_depth, max_entries, select)
    try:
        collected_at = os.fstat(top).st_mtime
        walker.walk(top, "", 0)
    except _TooLarge as exc:
        return Collected(
            files={}, skipped=walker.skipped, too_large=str(exc), total_bytes=walker.total, collected_at=collected_at
        )
    except OSError as exc:
        return Collected(files={}, refused=f"the folder is {_unreadable(exc)}")
    finally:
        os.close(top)
    return Collected(files=walker.files, skipped=walker.skipped, total_bytes=walker.total, collected_at=collected_at)


class _Walker:
    """One walk of a submission folder, every name opened relative to its open parent."""

    def __init__(self, max_total: int, max_file: int, max_depth: int, max_entries: int, select) -> None:
        self.max_total, self.max_file, self.max_depth, self.max_entries = max_total, max_file, max_depth, max_entries
        self.select = select
        self.files: dict[str, bytes] = {}
        self.skipped: list[tuple[str, str]] = []
        self.total = self.entries = 0
        self.over_total = f"the submission is larger than {size_text(max_total)}, the limit for one submission"

    def walk(self, dfd: int, prefix: str, depth: int) -> None:
        for name in self._names(dfd):
            rel = prefix + name
            try:
                st = _lstat(name, dfd)
            except FileNotFoundError:
                self.skipped.append((rel, CHANGED))
                continue
            except OSError as exc:
                self.skipped.append((rel, _unreadable(exc)))
                continue
            if stat.S_ISDIR(st.st_mode):
                self._folder(dfd, name, rel, depth)
            elif self.select is None or not stat.S_ISREG(st.st_mode) or self.select(rel):
                self._file(dfd, name, rel, st)

    def _names(self, dfd: int) -> list[str]:
        names = []
        with os.scandir(dfd) as it:
            for entry in it:
                if entry.name in IGNORED_NAMES:
                    continue
                self.entries += 1
                if self.entries > self.max_entries:
                    raise _TooLarge(
                        f"the submission has more than {self.max_entries} files and folders, "
                        "the limit for one submission"
                    )
                names.append(entry.name)
        return sorted(names)

    def _folder(self, dfd: int, name: str, rel: str, depth: int) -> None:
        if depth >= self.max_depth:
            self.skipped.append((rel, f"a folder nested deeper than {self.max_depth} levels"))
            return
        try:
            sub = os.open(name, _DIR_FLAGS, dir_fd=dfd)
        except OSError as exc:
            self.skipped.append((rel, _failed_open(name, dfd, exc)))
            return
        try:
            self.walk(sub, rel + "/", depth + 1)
        except OSError as exc:
            self.skipped.append((rel, _unreadable(exc)))
        finally:
            os.close(sub)

    def _file(self, dfd: int, name: str, rel: str, st: os.stat_result) -> None:
        why = _why_not(st)
        if why is None and st.st_size > self.max_file:
            why = f"larger than {size_text(self.max_file)}"
        if why is None and self.total + st.st_size > self.max_total:
            raise _TooLarge(self.over_total)
        fd = None
        if why is None:
            fd, why = _open_regular(name, dfd)
        if fd is None:
            self.skipped.append((rel, why))
            return
        try:
            data = _read_all(fd, self.max_file)
        except OSError as exc:
            self.skipped.append((rel, _unreadable(exc)))
            return
        finally:
            os.close(fd)
        if len(data) > self.max_file:
            self.skipped.append((rel, f"larger than {size_text(self.max_file)}"))
            return
        self.total += len(data)
        if self.total > self.max_total:
            raise _TooLarge(self.over_total)
        self.files[rel] = data


# ----------------------------------------------------------------------------- submission time

#: A time zone name ``parse_utc`` may look up (it reads ``/usr/share/zoneinfo/<name>``): letters,
#: digits, ``_ + -`` and inner slashes only, so a name can never be a path that leaves that folder.
_ZONE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_+-]*(?:/[A-Za-z0-9_+-]+)*$")
_MAX_TIMESTAMP_CHARS = 64


def format_timestamp(when: dt.datetime) -> str:
    """The form nbgrader's exchange writes: ``2026-12-01 10:00:00.000000 UTC`` (``when`` naive UTC or aware)."""
    if when.tzinfo is not None:
        when = when.astimezone(dt.UTC).replace(tzinfo=None)
    return when.strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def parse_timestamp(text: str) -> dt.datetime | None:
    """Naive UTC time from a string nbgrader's ``parse_utc`` accepts, or None (never raises).

    Stricter than ``parse_utc`` in two ways only: at most 64 characters, and a third word naming a
    time zone must look like a zone name (``parse_utc`` would open a file of that name).
    """
    from nbgrader.utils import parse_utc

    if not isinstance(text, str):
        return None
    text = text.strip()
    if not text or len(text) > _MAX_TIMESTAMP_CHARS or "\0" in text:
        return None
    parts = text.split(" ")
    if len(parts) == 3 and not re.fullmatch(r"[+-]?\d+", parts[2]) and not _ZONE_NAME.match(parts[2]):
        return None
    try:
        when = parse_utc(text)
    except Exception:  # noqa: BLE001 - dateutil raises ValueError, OverflowError, TypeError, ... on what a student writes
        return None
    return when if isinstance(when, dt.datetime) else None


def submission_time(collected: Collected, folder: Path) -> tuple[str | None, str]:
    """(timestamp for nbgrader, note): from ``timestamp.txt``, else the collection time, and the note says so.

    The timestamp is always rewritten in nbgrader's own form (``2026-12-01 10:00:00.000000 UTC``),
    which ``parse_utc`` reads back. The collection time is the folder's own modification time
    (``lstat``, never followed). The note is "" when ``timestamp.txt`` was good.
    """
    raw = collected.files.get("timestamp.txt")
    if raw is not None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        when = parse_timestamp(text) if text is not None else None
        if when is not None:
            return format_timestamp(when), ""
        shown = repr(raw.decode("utf-8", "replace").strip()[:40])
        problem = f"timestamp.txt could not be read ({shown})"
    else:
        why = dict(collected.skipped).get("timestamp.txt")
        problem = f"timestamp.txt was not read ({why})" if why else "there is no timestamp.txt"
    mtime = collected.collected_at
    if mtime is None:
        try:
            mtime = os.lstat(folder).st_mtime
        except OSError:
            return None, f"{problem}, and the collection time is unknown: no submission time was recorded"
    when = dt.datetime.fromtimestamp(mtime, tz=dt.UTC)
    return format_timestamp(when), f"{problem}; the collection time {when:%Y-%m-%d %H:%M:%S} UTC was used"


# ----------------------------------------------------------------------------- writing autograded/ and feedback/


def _check_paths(files: dict) -> None:
    """ValueError naming every path that is not a plain relative path inside the folder."""
    bad, dirs = [], set()
    for rel in files:
        p = PurePosixPath(rel) if isinstance(rel, str) else None
        if (
            p is None
            or not rel
            or "\0" in rel
            or rel.startswith("/")
            or p.as_posix() != rel
            or any(part in ("..", ".") for part in p.parts)
        ):
            bad.append(rel)
            continue
        dirs.update(str(parent) for parent in p.parents if str(parent) != ".")
    clash = sorted(set(files) & dirs)
    if bad:
        raise ValueError(f"refused: paths that are not plain relative paths inside the folder: {bad!r}")
    if clash:
        raise ValueError(f"refused: paths that are both a file and a folder: {clash!r}")


def _makedirs(path: Path, mode: int) -> None:
    """Create ``path`` and missing parents, each new one with exactly ``mode``."""
    if path.is_dir():
        return
    _makedirs(path.parent, mode)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        return
    os.chmod(path, mode, follow_symlinks=False)


def _libc_renameat2():
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn


_RENAMEAT2 = _libc_renameat2()
_RENAME_EXCHANGE = 2


def _exchange(dir_fd: int, a: str, b: str) -> bool:
    """Swap two names of one folder in one step (Linux ``renameat2``); False where that is not available."""
    if _RENAMEAT2 is None:
        return False
    if _RENAMEAT2(dir_fd, os.fsencode(a), dir_fd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), b)


def _remove(dir_fd: int, name: str) -> None:
    """Remove a name of an open folder, never following a link (a link itself is unlinked)."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=dir_fd)
    else:
        os.unlink(name, dir_fd=dir_fd)


def _fill(root_fd: int, files: dict, file_mode: int, dir_mode: int) -> None:
    """Create ``files`` below an empty folder the grader just made, each created new (never through a link)."""
    opened = {"": root_fd}
    try:
        for rel in sorted(files):
            *dirs, name = rel.split("/")
            key = ""
            for part in dirs:
                sub = f"{key}/{part}" if key else part
                if sub not in opened:
                    os.mkdir(part, 0o700, dir_fd=opened[key])
                    opened[sub] = os.open(part, _DIR_FLAGS, dir_fd=opened[key])
                    os.fchmod(opened[sub], dir_mode)
                key = sub
            fd = os.open(
                name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=opened[key]
            )
            try:
                os.fchmod(fd, file_mode)
                view = memoryview(files[rel])
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
    finally:
        for key, fd in opened.items():
            if key:
                os.close(fd)


def write_tree(dest: Path, files: dict[str, bytes], *, private: bool) -> None:
    """Make ``dest`` hold exactly ``files`` (posix relative path -> bytes), switched in by one rename.

    The tree is built in a new hidden sibling folder, every file created by the grader with
    ``O_CREAT | O_EXCL | O_NOFOLLOW`` and its mode set explicitly whatever the umask: ``private``
    (``autograded/``) files 0o600 and folders 0o700, else (``feedback/``) 0o644 and 0o755; new
    parent folders get the folder mode too. Then it takes ``dest``'s place in one atomic exchange
    (``renameat2(RENAME_EXCHANGE)``; two renames where the file system cannot), and the old tree is
    removed without following links. ``dest``'s parent must not be a link. No ``files``: ``dest``
    is removed. A path that is absolute, has ``..``/``.``/empty parts or a NUL, or is both a file
    and a folder is refused with ValueError before anything is written.
    """
    dest = Path(dest)
    _check_paths(files)
    file_mode, dir_mode = (0o600, 0o700) if private else (0o644, 0o755)
    _makedirs(dest.parent, dir_mode)
    pfd = os.open(dest.parent, _DIR_FLAGS)
    token = f"{os.getpid()}-{secrets.token_hex(4)}"
    tmp, old = f".{dest.name}.new-{token}", f".{dest.name}.old-{token}"
    try:
        if not files:
            try:
                os.rename(dest.name, old, src_dir_fd=pfd, dst_dir_fd=pfd)
            except FileNotFoundError:
                return
            _remove(pfd, old)
            return
        os.mkdir(tmp, 0o700, dir_fd=pfd)
        try:
            tfd = os.open(tmp, _DIR_FLAGS, dir_fd=pfd)
            try:
                _fill(tfd, files, file_mode, dir_mode)
                os.fchmod(tfd, dir_mode)
            finally:
                os.close(tfd)
            try:
                os.stat(dest.name, dir_fd=pfd, follow_symlinks=False)
                exists = True
            except FileNotFoundError:
                exists = False
            if exists and _exchange(pfd, tmp, dest.name):
                pass  # tmp now holds the old tree
            else:
                if exists:
                    os.rename(dest.name, old, src_dir_fd=pfd, dst_dir_fd=pfd)
                os.rename(tmp, dest.name, src_dir_fd=pfd, dst_dir_fd=pfd)
        finally:
            _remove(pfd, tmp)
            _remove(pfd, old)
    finally:
        os.close(pfd)

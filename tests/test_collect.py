"""miglab.grading.collect: a submission folder read as the grader (root) reads it, with real hostile files.

Every case is made for real in a temporary course: links to another student's notebook, to the
instructor's source/, to /etc/shadow and /proc/self/environ, a named pipe, a device node, a socket,
a hard link to a file outside, a linked folder, deep folders, oversized files; and races where a
name is swapped for a link between the grader's check and its read.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pwd
import shutil
import socket
import stat
import tempfile
import threading
import time
from pathlib import Path

import pytest

from miglab.grading import collect
from miglab.grading.collect import (
    DEVICE,
    FIFO,
    HARD_LINK,
    LINK,
    MAX_FILE_BYTES,
    MAX_SUBMISSION_BYTES,
    SOCKET,
    read_submission,
    submission_time,
    write_tree,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="made as root, as the grader runs (device nodes)")

A = "deep_dive"
WHEN = dt.datetime(2026, 12, 1, 10, 0, 0, tzinfo=dt.UTC)
SECRETS = [b"BOB-NOTEBOOK", b"ANSWER-KEY-SECRET", b"OUTSIDE-SECRET"]


def host_contents() -> list[bytes]:
    """Pieces of host files that must never show up in what the grader read."""
    pieces = []
    shadow = Path("/etc/shadow").read_bytes()
    pieces += [line for line in shadow.splitlines() if line][:3]
    environ = Path("/proc/self/environ").read_bytes()
    pieces += [item for item in environ.split(b"\0") if item.startswith((b"PATH=", b"HOME="))]
    assert pieces
    return pieces


def everything(c) -> bytes:
    """All that a Collected carries, as bytes, to search for leaks."""
    return b"\n".join(
        [
            *c.files.values(),
            *(f"{r} {w}".encode() for r, w in c.skipped),
            *(n.encode() for n in c.notes()),
            str(c.too_large).encode(),
            str(c.refused).encode(),
        ]
    )


def assert_no_leak(c):
    blob = everything(c)
    for piece in SECRETS + host_contents():
        assert piece not in blob, piece[:30]


@pytest.fixture
def course(tmp_path):
    """A course with an honest student (bob), the instructor's answer key and a file outside the course."""
    root = tmp_path / "course"
    (root / "source" / A).mkdir(parents=True)
    (root / "source" / A / "answer_key.json").write_bytes(b'{"q1": "ANSWER-KEY-SECRET"}')
    bob = root / "submitted" / "bob" / A
    bob.mkdir(parents=True)
    (bob / f"{A}.ipynb").write_bytes(b'{"cells": [], "note": "BOB-NOTEBOOK"}')
    (bob / "timestamp.txt").write_text("2026-11-30 09:00:00.000000 UTC")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"OUTSIDE-SECRET")
    (outside / "a.txt").write_bytes(b"OUTSIDE-SECRET a")
    (outside / "b.txt").write_bytes(b"OUTSIDE-SECRET b")
    return root, outside


def mallory(root: Path, outside: Path, monkeypatch) -> Path:
    """A submission holding every kind of hostile entry, plus a little honest work."""
    m = root / "submitted" / "mallory" / A
    m.mkdir(parents=True)
    (m / "real.ipynb").write_bytes(b'{"cells": [], "note": "MALLORY-OWN"}')
    (m / "timestamp.txt").write_text("garbage")
    os.symlink(f"../../bob/{A}/{A}.ipynb", m / f"{A}.ipynb")  # another student's notebook
    os.symlink(root / "source" / A / "answer_key.json", m / "key.json")  # the answer key
    os.symlink("/etc/shadow", m / "shadow")
    os.symlink("/proc/self/environ", m / "environ")
    os.mkfifo(m / "pipe")
    os.mknod(m / "zero", 0o666 | stat.S_IFCHR, os.makedev(1, 5))  # /dev/zero: endless if ever read
    monkeypatch.chdir(m)  # a short path for bind()
    sock = socket.socket(socket.AF_UNIX)
    sock.bind("sock")
    sock.close()
    os.link(outside / "secret.txt", m / "hard.txt")  # a second name of a file outside
    os.symlink(root / "submitted" / "bob" / A, m / "other")  # a linked folder
    for junk in (".ipynb_checkpoints", "__pycache__"):
        (m / junk).mkdir()
        (m / junk / "x").write_bytes(b"junk")
    d = m
    for level in range(1, 21):  # 20 folders deep
        d = d / "d"
        d.mkdir()
        (d / "f.txt").write_text(str(level))
    return m


def deep(n: int) -> str:
    return "/".join(["d"] * n)


def test_every_hostile_entry_is_skipped_with_its_reason_and_nothing_outside_is_read(course, monkeypatch):
    root, outside = course
    m = mallory(root, outside, monkeypatch)
    c = read_submission(m)
    assert c.readable and c.refused is None and c.too_large is None
    assert list(c.files) == [f"{deep(n)}/f.txt" for n in range(16, 0, -1)] + ["real.ipynb", "timestamp.txt"]
    assert c.files["real.ipynb"] == b'{"cells": [], "note": "MALLORY-OWN"}'
    assert c.files[f"{deep(16)}/f.txt"] == b"16"
    assert c.skipped == [
        (deep(17), "a folder nested deeper than 16 levels"),
        (f"{A}.ipynb", LINK),
        ("environ", LINK),
        ("hard.txt", HARD_LINK),
        ("key.json", LINK),
        ("other", LINK),
        ("pipe", FIFO),
        ("shadow", LINK),
        ("sock", SOCKET),
        ("zero", DEVICE),
    ]
    assert LINK == "a symbolic link (links are never followed)"
    assert (HARD_LINK, DEVICE, FIFO, SOCKET) == (
        "a hard link (links are never followed)",
        "a device",
        "a named pipe",
        "a socket",
    )
    assert c.total_bytes == sum(len(v) for v in c.files.values())
    assert f"{A}.ipynb was not read: a symbolic link (links are never followed)." in c.notes()
    assert_no_leak(c)


def test_the_folder_itself_is_never_followed(course, monkeypatch):
    root, _ = course
    sub = root / "submitted"
    (sub / "eve").mkdir()
    os.symlink(sub / "bob" / A, sub / "eve" / A)  # eve's folder is bob's
    c = read_submission(sub / "eve" / A)
    assert (c.files, c.refused) == ({}, "the folder is a symbolic link (links are never followed)")
    assert not c.readable
    # a link one level up (submitted/trudy -> submitted/bob) is caught when the walk starts at submitted/
    os.symlink(sub / "bob", sub / "trudy")
    assert read_submission(sub / "trudy" / A).files[f"{A}.ipynb"] == b'{"cells": [], "note": "BOB-NOTEBOOK"}'
    c = read_submission(sub / "trudy" / A, base=sub)
    assert (c.files, c.refused) == ({}, "a folder above it is a symbolic link (links are never followed)")
    assert read_submission(sub / "bob" / A, base=sub).files[f"{A}.ipynb"].endswith(b'"BOB-NOTEBOOK"}')
    assert read_submission(sub / "nobody" / A).refused == "the folder does not exist"
    (sub / "file").write_text("x")
    assert read_submission(sub / "file").refused == "the folder is a file, not a folder"
    os.mkfifo(sub / "fifo")
    assert read_submission(sub / "fifo").refused == "the folder is a named pipe"
    assert_no_leak(c)


def _swap_after_lstat(monkeypatch, name, swap):
    """Run ``swap()`` right after the grader's lstat of ``name``: the race a student would try."""
    real = collect._lstat
    done = []

    def racing(n, dir_fd):
        st = real(n, dir_fd)
        if n == name and not done:
            done.append(n)
            swap()
        return st

    monkeypatch.setattr(collect, "_lstat", racing)
    return done


def test_a_file_swapped_for_a_link_between_check_and_read_is_not_followed(course, monkeypatch):
    root, outside = course
    m = root / "submitted" / "eve" / A
    m.mkdir(parents=True)
    (m / f"{A}.ipynb").write_bytes(b"{}")

    def swap():
        os.unlink(m / f"{A}.ipynb")
        os.symlink(outside / "secret.txt", m / f"{A}.ipynb")

    done = _swap_after_lstat(monkeypatch, f"{A}.ipynb", swap)
    c = read_submission(m)
    assert done and c.files == {} and c.skipped == [(f"{A}.ipynb", LINK)]
    assert_no_leak(c)


class FifoWriter:
    """A writer blocked in open() on a named pipe: it is let go only if someone opens the pipe to read."""

    def __init__(self, path: Path):
        self.path, self.released = path, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        fd = os.open(self.path, os.O_WRONLY)
        self.released.set()
        os.close(fd)

    def start(self):
        self.thread.start()
        time.sleep(0.05)

    def opened_by_someone(self) -> bool:
        seen = self.released.wait(0.3)
        fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)  # let the writer go
        self.thread.join(5)
        os.close(fd)
        return seen


def test_a_named_pipe_is_never_opened(tmp_path):
    m = tmp_path / "s"
    m.mkdir()
    os.mkfifo(m / "pipe")
    writer = FifoWriter(m / "pipe")
    writer.start()
    c = read_submission(m)
    assert not writer.opened_by_someone()
    assert (c.files, c.skipped) == ({}, [("pipe", FIFO)])


@pytest.mark.parametrize("kind", ["fifo", "hard link"])
def test_a_file_swapped_for_a_pipe_or_a_hard_link_is_not_read(course, monkeypatch, kind):
    root, outside = course
    m = root / "submitted" / "eve" / A
    m.mkdir(parents=True)
    (m / "x.txt").write_bytes(b"x")
    writers = []

    def swap():
        os.unlink(m / "x.txt")
        if kind == "fifo":
            os.mkfifo(m / "x.txt")
            writers.append(FifoWriter(m / "x.txt"))
            writers[0].start()
        else:
            os.link(outside / "secret.txt", m / "x.txt")

    _swap_after_lstat(monkeypatch, "x.txt", swap)
    c = read_submission(m)
    assert c.files == {} and c.skipped == [("x.txt", FIFO if kind == "fifo" else HARD_LINK)]
    if writers:
        assert not writers[0].opened_by_someone()  # checked, never opened
    assert_no_leak(c)


@pytest.mark.parametrize(
    "after, files, skipped",
    [
        ("sub", {}, [("sub", LINK)]),  # swapped between its lstat and its open
        ("a.txt", {"sub/a.txt": b"REAL a", "sub/b.txt": b"REAL b"}, []),  # swapped while it is being read
    ],
)
def test_a_folder_swapped_for_a_link_is_never_followed(course, monkeypatch, after, files, skipped):
    """Once open, a folder is read through its descriptor: path-based reading (``folder / rel``)
    would read outside/ in the second case."""
    root, outside = course
    m = root / "submitted" / "eve" / A
    (m / "sub").mkdir(parents=True)
    (m / "sub" / "a.txt").write_bytes(b"REAL a")
    (m / "sub" / "b.txt").write_bytes(b"REAL b")

    def swap():
        os.rename(m / "sub", m / "moved")  # listed before the move: not walked again
        os.symlink(outside, m / "sub")

    done = _swap_after_lstat(monkeypatch, after, swap)
    c = read_submission(m)
    assert done and (c.files, c.skipped) == (files, skipped)
    assert_no_leak(c)


def test_ignored_folders_are_neither_read_nor_listed(tmp_path):
    m = tmp_path / "s"
    for junk in (".ipynb_checkpoints", "__pycache__", "sub/__pycache__"):
        (m / junk).mkdir(parents=True)
        (m / junk / "x").write_bytes(b"junk")
    (m / "sub" / "keep.py").write_text("x = 1\n")
    c = read_submission(m)
    assert (c.files, c.skipped) == ({"sub/keep.py": b"x = 1\n"}, [])


def test_an_oversized_file_is_skipped_unread_and_the_rest_is_kept(tmp_path, monkeypatch):
    m = tmp_path / "s"
    m.mkdir()
    with open(m / "big.csv", "wb") as fh:  # sparse: costs no disk
        fh.truncate(MAX_FILE_BYTES + 1)
    with open(m / "edge.bin", "wb") as fh:
        fh.truncate(MAX_FILE_BYTES)
    (m / "nb.ipynb").write_bytes(b"{}")
    reads = []
    real = collect._read_all
    monkeypatch.setattr(collect, "_read_all", lambda fd, limit: reads.append(1) or real(fd, limit))
    c = read_submission(m)
    assert MAX_FILE_BYTES == 20 * 2**20
    assert list(c.files) == ["edge.bin", "nb.ipynb"] and len(c.files["edge.bin"]) == MAX_FILE_BYTES
    assert c.skipped == [("big.csv", "larger than 20 MB")]
    assert len(reads) == 2  # big.csv was never read


def test_a_file_that_grows_past_a_limit_after_its_check_is_still_caught(tmp_path, monkeypatch):
    m = tmp_path / "s"
    m.mkdir()
    (m / "f").write_bytes(b"x" * 4)

    def grow():
        with open(m / "f", "ab") as fh:
            fh.write(b"y" * 8)

    _swap_after_lstat(monkeypatch, "f", grow)
    c = read_submission(m, max_file=5)
    assert (c.files, c.skipped) == ({}, [("f", "larger than 5 bytes")])
    (m / "f").write_bytes(b"x" * 4)
    _swap_after_lstat(monkeypatch, "f", grow)
    c = read_submission(m, max_file=100, max_total=10)
    assert (c.files, c.too_large) == ({}, "the submission is larger than 10 bytes, the limit for one submission")


def test_an_oversized_submission_stops_reading_and_keeps_nothing(tmp_path, monkeypatch):
    m = tmp_path / "s"
    m.mkdir()
    for name in ("a.txt", "b.txt", "c.txt"):
        (m / name).write_bytes(b"12345678")
    reads = []
    real = collect._read_all
    monkeypatch.setattr(collect, "_read_all", lambda fd, limit: reads.append(1) or real(fd, limit))
    c = read_submission(m, max_total=10)
    assert c.too_large == "the submission is larger than 10 bytes, the limit for one submission"
    assert c.files == {} and not c.readable and len(reads) == 1  # stopped before reading b.txt
    assert c.notes() == [
        "The submission was not graded: the submission is larger than 10 bytes, the limit for one submission."
    ]


def test_the_default_submission_limit(tmp_path):
    m = tmp_path / "s"
    m.mkdir()
    for name in ("a", "b", "c"):
        with open(m / name, "wb") as fh:
            fh.truncate(18 * 2**20)
    assert MAX_SUBMISSION_BYTES == 50 * 2**20
    c = read_submission(m)
    assert (c.files, c.too_large) == ({}, "the submission is larger than 50 MB, the limit for one submission")
    assert c.total_bytes == 36 * 2**20


def test_too_many_entries(tmp_path):
    m = tmp_path / "s"
    m.mkdir()
    for i in range(25):
        (m / f"f{i}").write_bytes(b"")
    c = read_submission(m, max_entries=20)
    assert (c.files, c.too_large) == (
        {},
        "the submission has more than 20 files and folders, the limit for one submission",
    )
    assert read_submission(m, max_entries=25).too_large is None


def test_unreadable_files_and_folders_as_another_user(tmp_path):
    """As root every file is readable, so this one runs the reader as ``nobody`` in a child process."""
    nobody = pwd.getpwnam("nobody")
    top = Path(tempfile.mkdtemp(prefix="miglab-collect-"))
    try:
        os.chmod(top, 0o755)
        (top / "ok.txt").write_text("ok")
        os.chmod(top / "ok.txt", 0o644)
        (top / "closed.txt").write_text("closed")
        os.chmod(top / "closed.txt", 0o000)
        (top / "shut").mkdir()
        (top / "shut" / "x").write_text("x")
        os.chmod(top / "shut", 0o000)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            try:
                os.close(r)
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
                c = read_submission(top)
                os.write(w, json.dumps({"files": sorted(c.files), "skipped": c.skipped}).encode())
            finally:
                os._exit(0)
        os.close(w)
        with os.fdopen(r) as fh:
            got = json.loads(fh.read() or "null")
        os.waitpid(pid, 0)
    finally:
        os.chmod(top / "shut", 0o755)
        shutil.rmtree(top)
    assert got == {
        "files": ["ok.txt"],
        "skipped": [["closed.txt", "unreadable (Permission denied)"], ["shut", "unreadable (Permission denied)"]],
    }


# ----------------------------------------------------------------------------- submission_time


def folder_with(tmp_path, content) -> Path:
    m = tmp_path / "s"
    m.mkdir()
    if content is not None:
        (m / "timestamp.txt").write_bytes(content)
    os.utime(m, (WHEN.timestamp(), WHEN.timestamp()), follow_symlinks=False)
    return m


COLLECTED = "the collection time 2026-12-01 10:00:00 UTC was used"
AT_COLLECTION = "2026-12-01 10:00:00.000000 UTC"


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"2026-11-30 09:15:00.123456 UTC", "2026-11-30 09:15:00.123456 UTC"),  # nbgrader's own form
        (b"2026-11-30 11:15:00 Europe/Paris\n", "2026-11-30 10:15:00.000000 UTC"),  # a zone name
        (b"2026-11-30T11:15:00+01:00", "2026-11-30 10:15:00.000000 UTC"),  # ISO with an offset
        (b"2026-11-30 09:15:00", "2026-11-30 09:15:00.000000 UTC"),  # naive: UTC, as nbgrader
    ],
)
def test_a_valid_timestamp_is_used_in_nbgraders_form(tmp_path, content, expected):
    from nbgrader.utils import parse_utc

    m = folder_with(tmp_path, content)
    ts, note = submission_time(read_submission(m), m)
    assert (ts, note) == (expected, "")
    assert parse_utc(ts) == parse_utc(content.decode().strip())


@pytest.mark.parametrize(
    "content, shown",
    [
        (b"garbage", "'garbage'"),
        (b"", "''"),
        (b"2026-13-45 99:99:99 UTC", "'2026-13-45 99:99:99 UTC'"),
        (b"\xff\xfe", "'\ufffd\ufffd'"),
        (b"2026-12-01 10:00 ../../../etc/passwd", "'2026-12-01 10:00 ../../../etc/passwd'"),
        (b"2026-12-01 10:00:00 /etc/localtime", "'2026-12-01 10:00:00 /etc/localtime'"),
        (b"2026-12-01 10:00:00 UTC" + b" " * 100 + b"x", "'2026-12-01 10:00:00 UTC" + " " * 17 + "'"),
        (b"0001-01-01 00:00:00 +99999999999999", "'0001-01-01 00:00:00 +99999999999999'"),
        (b"9999-12-31T23:59:59-23:59", "'9999-12-31T23:59:59-23:59'"),
        (b"2026-12-01\x0010:00", "'2026-12-01\\x0010:00'"),
    ],
)
def test_a_bad_timestamp_falls_back_to_the_collection_time_and_says_so(tmp_path, content, shown):
    m = folder_with(tmp_path, content)
    ts, note = submission_time(read_submission(m), m)
    assert (ts, note) == (AT_COLLECTION, f"timestamp.txt could not be read ({shown}); {COLLECTED}")


def test_a_zone_name_that_is_a_path_is_never_looked_up(tmp_path, monkeypatch):
    import dateutil.tz

    asked = []
    real = dateutil.tz.gettz
    monkeypatch.setattr(dateutil.tz, "gettz", lambda name=None: asked.append(name) or real(name))
    m = folder_with(tmp_path, b"2026-12-01 10:00:00 ../../../../etc/passwd")
    assert submission_time(read_submission(m), m)[0] == AT_COLLECTION
    assert asked == []


def test_a_missing_or_linked_timestamp_falls_back_to_the_collection_time(tmp_path):
    m = folder_with(tmp_path, None)
    assert submission_time(read_submission(m), m) == (AT_COLLECTION, f"there is no timestamp.txt; {COLLECTED}")
    os.symlink("/etc/hostname", m / "timestamp.txt")
    os.utime(m, (WHEN.timestamp(), WHEN.timestamp()), follow_symlinks=False)
    assert submission_time(read_submission(m), m) == (
        AT_COLLECTION,
        f"timestamp.txt was not read ({LINK}); {COLLECTED}",
    )


def test_the_collection_time_of_a_linked_folder_is_the_links_own(tmp_path):
    real = folder_with(tmp_path, b"2026-11-30 09:15:00 UTC")
    link = tmp_path / "link"
    os.symlink(real, link)
    os.utime(link, (WHEN.timestamp() + 60, WHEN.timestamp() + 60), follow_symlinks=False)
    c = read_submission(link)
    assert c.refused and c.collected_at is None
    assert submission_time(c, link) == (
        "2026-12-01 10:01:00.000000 UTC",
        "there is no timestamp.txt; the collection time 2026-12-01 10:01:00 UTC was used",
    )
    assert submission_time(c, tmp_path / "gone") == (
        None,
        "there is no timestamp.txt, and the collection time is unknown: no submission time was recorded",
    )


# ----------------------------------------------------------------------------- write_tree


def modes(top: Path) -> dict:
    out = {".": stat.S_IMODE(os.lstat(top).st_mode)}
    for p in sorted(top.rglob("*")):
        out[p.relative_to(top).as_posix()] = stat.S_IMODE(os.lstat(p).st_mode)
    return out


def contents(top: Path) -> dict:
    return {p.relative_to(top).as_posix(): p.read_bytes() for p in sorted(top.rglob("*")) if p.is_file()}


FILES = {"deep_dive.ipynb": b"{}", "shop/migrations/0001_initial.py": b"# one\n"}


@pytest.mark.parametrize("umask", [0o000, 0o077, 0o022])
@pytest.mark.parametrize("private, fmode, dmode", [(True, 0o600, 0o700), (False, 0o644, 0o755)])
def test_write_tree_sets_its_own_modes_whatever_the_umask(tmp_path, umask, private, fmode, dmode):
    dest = tmp_path / "autograded" / "alice" / A
    old = os.umask(umask)
    try:
        write_tree(dest, FILES, private=private)
    finally:
        os.umask(old)
    assert contents(dest) == FILES
    assert modes(dest) == {
        ".": dmode,
        "deep_dive.ipynb": fmode,
        "shop": dmode,
        "shop/migrations": dmode,
        "shop/migrations/0001_initial.py": fmode,
    }
    assert stat.S_IMODE(os.lstat(dest.parent).st_mode) == dmode  # autograded/alice, made here
    assert stat.S_IMODE(os.lstat(dest.parent.parent).st_mode) == dmode


@pytest.mark.parametrize("exchange", [True, False])
def test_write_tree_replaces_the_old_tree_and_leaves_nothing_behind(tmp_path, monkeypatch, exchange):
    if not exchange:
        monkeypatch.setattr(collect, "_RENAMEAT2", None)  # the two-rename fall-back
    dest = tmp_path / "feedback" / "alice" / A
    write_tree(dest, {"old.html": b"old", "sub/x": b"x"}, private=False)
    inode = os.lstat(dest).st_ino
    write_tree(dest, {"deep_dive.html": b"new"}, private=False)
    assert contents(dest) == {"deep_dive.html": b"new"}
    assert os.listdir(dest.parent) == [A] and os.lstat(dest).st_ino != inode
    write_tree(dest, {}, private=False)  # nothing: the folder goes
    assert os.listdir(dest.parent) == []
    write_tree(dest, {}, private=False)


@pytest.mark.parametrize(
    "bad", ["../escape.txt", "/abs.txt", "a/../../escape.txt", "nul\0.txt", "", "a//b", "./a", "a/./b", "a/", ".."]
)
def test_write_tree_refuses_paths_that_leave_the_folder(tmp_path, bad):
    dest = tmp_path / "x" / "autograded" / "alice" / A
    write_tree(dest, {"keep.txt": b"keep"}, private=True)
    with pytest.raises(ValueError, match="refused"):
        write_tree(dest, {"ok.txt": b"ok", bad: b"evil"}, private=True)
    assert contents(dest) == {"keep.txt": b"keep"}
    assert os.listdir(dest.parent) == [A]
    assert sorted(p.name for p in (tmp_path / "x").rglob("*")) == ["alice", "autograded", A, "keep.txt"]


def test_write_tree_refuses_a_path_that_is_both_file_and_folder(tmp_path):
    with pytest.raises(ValueError, match="both a file and a folder"):
        write_tree(tmp_path / "d", {"a": b"1", "a/b": b"2"}, private=True)
    assert not (tmp_path / "d").exists() and os.listdir(tmp_path) == []


def test_write_tree_replaces_a_linked_destination_without_writing_through_it(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_bytes(b"precious")
    dest = tmp_path / "autograded" / "alice" / A
    dest.parent.mkdir(parents=True)
    os.symlink(outside, dest)
    write_tree(dest, {"deep_dive.ipynb": b"{}"}, private=True)
    assert not dest.is_symlink() and contents(dest) == {"deep_dive.ipynb": b"{}"}
    assert contents(outside) == {"precious.txt": b"precious"}


def test_write_tree_refuses_a_linked_parent(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "autograded").mkdir()
    os.symlink(outside, tmp_path / "autograded" / "alice")
    with pytest.raises(OSError):
        write_tree(tmp_path / "autograded" / "alice" / A, {"x": b"x"}, private=True)
    assert os.listdir(outside) == []


def test_write_tree_never_writes_through_a_link_planted_in_its_new_folder(tmp_path, monkeypatch):
    """Files are created with O_EXCL | O_NOFOLLOW: a link put in the new folder (by someone with the
    rights to) makes the write fail instead of writing outside."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "target.txt").write_bytes(b"untouched")
    dest = tmp_path / "autograded" / "alice" / A
    real_mkdir = os.mkdir

    def mkdir_and_plant(path, mode=0o777, *, dir_fd=None):
        real_mkdir(path, mode, dir_fd=dir_fd)
        if str(path).startswith(f".{A}.new-"):
            os.symlink(outside / "target.txt", f"{path}/evil.txt", dir_fd=dir_fd)

    monkeypatch.setattr(collect.os, "mkdir", mkdir_and_plant)
    with pytest.raises(FileExistsError):
        write_tree(dest, {"evil.txt": b"EVIL"}, private=True)
    monkeypatch.undo()
    assert (outside / "target.txt").read_bytes() == b"untouched"
    assert os.listdir(dest.parent) == []


def test_what_read_submission_returns_write_tree_writes_back_exactly(course, monkeypatch):
    root, outside = course
    m = mallory(root, outside, monkeypatch)
    c = read_submission(m)
    dest = root / "autograded" / "mallory" / A
    write_tree(dest, c.files, private=True)
    assert contents(dest) == c.files
    assert not any(p.is_symlink() for p in dest.rglob("*"))

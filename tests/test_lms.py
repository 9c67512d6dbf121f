"""miglab.grading.lms: LMS downloads (zip or folder) imported as nbgrader submissions, safely, with lateness.

Zips and folders are made for real: entries with ``..``, absolute paths, drive letters, NUL and
link bits; folders with links, hard links, pipes and linked folders; Canvas names with and
without ``LATE``, checked against the assignment's due date in a real nbgrader gradebook.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import stat
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest

from miglab.grading import lms
from miglab.grading.collect import FIFO, HARD_LINK, LINK
from miglab.grading.lms import LMSImportError, import_submissions, parse_name, student_id

A = "deep_dive"
DUE = dt.datetime(2026, 12, 1, 10, 0, 0)  # nbgrader keeps due dates as naive UTC
OLD = (1999, 1, 2, 3, 4, 6)  # the time Canvas/Moodle put on zip entries
NB = b'{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'


def nb(tag: str) -> bytes:
    return NB.replace(b"{}", b'{"who": "%s"}' % tag.encode())


@pytest.fixture(autouse=True)
def venv_on_path(monkeypatch):
    """nbgrader's Gradebook runs ``alembic`` by name (DESIGN.md): the venv's bin must be on PATH."""
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")


def tree(top: Path) -> dict:
    """Every path below ``top`` (links shown as links, never followed) -> bytes, 'dir' or 'link'."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(top).as_posix()
            out[rel] = "link" if p.is_symlink() else "dir" if p.is_dir() else p.read_bytes()
    return out


def submitted(root: Path) -> dict:
    """{student: {file: bytes}} of submitted/ (hidden previous folders left out)."""
    out = {}
    for d in sorted((root / "submitted").iterdir()):
        folder = d / A
        if folder.is_dir():
            out[d.name] = {p.name: p.read_bytes() for p in sorted(folder.iterdir())}
    return out


def stamp(root: Path, sid: str) -> str:
    return (root / "submitted" / sid / A / "timestamp.txt").read_text()


@pytest.fixture(scope="module")
def empty_gradebook(tmp_path_factory):
    """One real nbgrader gradebook, made once (making one runs alembic: seconds), copied per test."""
    from nbgrader.api import Gradebook

    db = tmp_path_factory.mktemp("gradebook") / "gradebook.db"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
        with Gradebook(f"sqlite:///{db}"):
            pass
    return db


@pytest.fixture
def gradebook(empty_gradebook):
    def make(root: Path, due: dt.datetime | None):
        from nbgrader.api import Gradebook

        shutil.copy(empty_gradebook, root / "gradebook.db")
        with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
            gb.add_assignment(A, duedate=due)

    return make


def seconds_late(root: Path, sid: str) -> float:
    """What nbgrader itself makes of the timestamp.txt written for ``sid``."""
    from nbgrader.api import Gradebook
    from nbgrader.utils import parse_utc

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        gb.update_or_create_student(sid)
        sub = gb.update_or_create_submission(A, sid, timestamp=parse_utc(stamp(root, sid)))
        return sub.total_seconds_late


def write_zip(path: Path, entries) -> Path:
    """entries: (name, bytes) or (ZipInfo, bytes); every entry dated 1999 unless its ZipInfo says otherwise."""
    with zipfile.ZipFile(path, "w") as z:
        for name, data in entries:
            info = name if isinstance(name, zipfile.ZipInfo) else zipfile.ZipInfo(name, date_time=OLD)
            z.writestr(info, data)
    return path


def special(name: str, mode: int, data: bytes = b"") -> tuple:
    info = zipfile.ZipInfo(name, date_time=OLD)
    info.create_system = 3
    info.external_attr = mode << 16
    return info, data


# ----------------------------------------------------------------------------- zips


def test_zip_entries_that_leave_the_folder_or_are_not_plain_files_are_refused_and_never_written(tmp_path):
    z = write_zip(
        tmp_path / "class.zip",
        [
            ("bob.ipynb", nb("bob")),
            ("../evil.ipynb", b"EVIL"),
            ("../../../tmp/evil.ipynb", b"EVIL"),
            ("/abs/evil.ipynb", b"EVIL"),
            ("C:/evil.ipynb", b"EVIL"),
            ("C:\\Users\\evil.ipynb", b"EVIL"),
            ("sub\\..\\..\\evil.ipynb", b"EVIL"),
            ("nulX.ipynb", b"EVIL"),  # the X becomes a NUL below
            special("alice.ipynb", stat.S_IFLNK | 0o777, b"/etc/shadow"),
            special("carol_deep_dive.ipynb", stat.S_IFLNK | 0o777, b"../../source/deep_dive/answer_key.json"),
            special("Eve Jones_555_assignsubmission_file_", stat.S_IFLNK | 0o777, b"/etc"),
            special("fifo.ipynb", stat.S_IFIFO | 0o644),
            special("dev.ipynb", stat.S_IFCHR | 0o644),
            special("frank.ipynb", stat.S_IFREG | 0o644, nb("frank")),  # a Unix zip's plain file: fine
            ("Dave Jones_777_assignsubmission_file_/deep_dive.ipynb", nb("dave")),
            ("__MACOSX/._bob.ipynb", b"junk"),
        ],
    )
    raw = z.read_bytes()
    assert raw.count(b"nulX.ipynb") == 2  # local header + central directory
    z.write_bytes(raw.replace(b"nulX.ipynb", b"nul\0.ipynb"))
    root = tmp_path / "course"
    report = import_submissions(z, root, A)
    assert report.problems == [
        ("../evil.ipynb", "a path that leaves the folder (..)"),
        ("../../../tmp/evil.ipynb", "a path that leaves the folder (..)"),
        ("/abs/evil.ipynb", "an absolute path"),
        ("C:/evil.ipynb", "a path with a drive letter"),
        ("C:\\Users\\evil.ipynb", "a path with a drive letter"),
        ("sub\\..\\..\\evil.ipynb", "a path that leaves the folder (..)"),
        ("nul\\0.ipynb", "a NUL character in its name"),
        ("alice.ipynb", LINK),
        ("carol_deep_dive.ipynb", LINK),
        ("Eve Jones_555_assignsubmission_file_", LINK),
        ("fifo.ipynb", FIFO),
        ("dev.ipynb", "a device"),
    ]
    assert sorted(report.imported) == ["777", "bob", "frank"]
    assert {s: f[f"{A}.ipynb"] for s, f in submitted(root).items()} == {
        "777": nb("dave"),
        "bob": nb("bob"),
        "frank": nb("frank"),
    }
    everything = tree(tmp_path)
    assert not [p for p in everything if "evil" in p or "nul" in p or p.startswith("course/submitted/alice")]
    assert not [p for p, v in everything.items() if v == "link"]
    assert not [p for p, v in everything.items() if isinstance(v, bytes) and b"EVIL" in v and p != "class.zip"]
    assert not (tmp_path.parent / "evil.ipynb").exists()


def test_oversized_damaged_and_too_many_zip_entries(tmp_path, monkeypatch):
    big = zipfile.ZipInfo("big.ipynb", date_time=OLD)
    big.compress_type = zipfile.ZIP_DEFLATED
    z = write_zip(
        tmp_path / "c.zip",
        [
            (big, b"0" * (lms.MAX_FILE_BYTES + 1)),  # 20 KB compressed
            ("bad.ipynb", b"CORRUPT-ME-PLEASE"),
            ("ok.ipynb", nb("ok")),
        ],
    )
    z.write_bytes(z.read_bytes().replace(b"CORRUPT-ME-PLEASE", b"CORRUPTED-PLEASE!"))
    root = tmp_path / "course"
    report = import_submissions(z, root, A)
    assert report.problems[0] == ("big.ipynb", "larger than 20 MB")
    assert report.problems[1][0] == "bad.ipynb" and report.problems[1][1].startswith("damaged in the zip (Bad CRC-32")
    assert report.imported == ["ok"] and len(report.problems) == 2
    monkeypatch.setattr(lms, "MAX_IMPORT_BYTES", 10)
    with pytest.raises(LMSImportError, match="holds more than 10 bytes of notebooks, the import limit: nothing"):
        import_submissions(
            write_zip(tmp_path / "d.zip", [("x.ipynb", b"123456"), ("y.ipynb", b"123456")]), tmp_path / "course2", A
        )
    monkeypatch.setattr(lms, "MAX_IMPORT_ENTRIES", 1)
    with pytest.raises(LMSImportError, match="has more than 1 entries"):
        import_submissions(tmp_path / "d.zip", tmp_path / "course2", A)
    assert not (tmp_path / "course2").exists()


# ----------------------------------------------------------------------------- folders


def test_a_folder_download_is_read_without_following_anything(tmp_path):
    outside = tmp_path / "outside"
    (outside / "moodle").mkdir(parents=True)
    (outside / "secret.ipynb").write_bytes(b"OUTSIDE-SECRET")
    (outside / "moodle" / f"{A}.ipynb").write_bytes(b"OUTSIDE-SECRET moodle")
    d = tmp_path / "downloads"
    d.mkdir()
    (d / "bob.ipynb").write_bytes(nb("bob"))
    os.symlink("/etc/shadow", d / "alice.ipynb")
    os.symlink(outside / "secret.ipynb", d / "carol_deep_dive.ipynb")
    os.link(outside / "secret.ipynb", d / "dave.ipynb")
    os.mkfifo(d / "erin.ipynb")
    os.symlink(outside / "moodle", d / "Frank Smith_888_assignsubmission_file_")
    (d / "Gina Lee_999_assignsubmission_file_").mkdir()
    (d / "Gina Lee_999_assignsubmission_file_" / f"{A}.ipynb").write_bytes(nb("gina"))
    (d / "notes.txt").write_text("not a notebook")
    (d / ".hidden").mkdir()
    (d / ".hidden" / "x.ipynb").write_bytes(b"{}")
    writer_released = threading.Event()

    def writer():  # let go only if someone opens erin.ipynb to read
        fd = os.open(d / "erin.ipynb", os.O_WRONLY)
        writer_released.set()
        os.close(fd)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    time.sleep(0.05)
    link = tmp_path / "my-downloads"  # the folder the instructor names may be a link
    os.symlink(d, link)
    root = tmp_path / "course"
    report = import_submissions(link, root, A)
    opened = writer_released.wait(0.3)
    os.close(os.open(d / "erin.ipynb", os.O_RDONLY | os.O_NONBLOCK))
    t.join(5)
    assert not opened
    assert report.problems == [
        ("Frank Smith_888_assignsubmission_file_", LINK),
        ("alice.ipynb", LINK),
        ("carol_deep_dive.ipynb", LINK),
        ("dave.ipynb", HARD_LINK),
        ("erin.ipynb", FIFO),
    ]
    assert report.imported == ["999", "bob"]
    assert submitted(root) == {
        "999": {f"{A}.ipynb": nb("gina"), "timestamp.txt": stamp(root, "999").encode()},
        "bob": {f"{A}.ipynb": nb("bob"), "timestamp.txt": stamp(root, "bob").encode()},
    }
    blob = b"".join(v for v in tree(root).values() if isinstance(v, bytes))
    assert b"OUTSIDE-SECRET" not in blob and b"root:" not in blob
    # what the import writes is the grader's: private modes
    assert {stat.S_IMODE(os.lstat(root / "submitted" / "bob" / A / n).st_mode) for n in ("", f"{A}.ipynb")} == {
        0o700,
        0o600,
    }


def test_a_planted_link_in_submitted_is_moved_aside_never_written_through(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / f"{A}.ipynb").write_bytes(b"precious")
    root = tmp_path / "course"
    (root / "submitted" / "bob").mkdir(parents=True)
    os.symlink(outside, root / "submitted" / "bob" / A)
    z = write_zip(tmp_path / "c.zip", [("bob.ipynb", nb("bob"))])
    report = import_submissions(z, root, A)
    assert report.imported == [] and report.problems == [
        (
            "bob.ipynb",
            f"{root}/submitted/bob/{A}/{A}.ipynb exists with other content (use --replace; the old folder is kept)",
        )
    ]
    report = import_submissions(z, root, A, replace=True)
    assert report.replaced == ["bob"]
    assert submitted(root)["bob"][f"{A}.ipynb"] == nb("bob")
    assert tree(outside) == {f"{A}.ipynb": b"precious"}
    kept = [p for p in (root / "submitted" / "bob").iterdir() if p.name.startswith(f".{A}.previous-")]
    assert len(kept) == 1 and kept[0].is_symlink()
    # a student folder that is a link: nothing is moved or written through it
    (outside / A).mkdir()
    (outside / A / f"{A}.ipynb").write_bytes(b"precious too")
    os.symlink(outside, root / "submitted" / "carol")
    z = write_zip(tmp_path / "c2.zip", [("carol.ipynb", nb("carol"))])
    report = import_submissions(z, root, A, replace=True)
    assert report.imported == report.replaced == [] and report.problems == [
        ("carol.ipynb", f"{root}/submitted/carol is {LINK}: nothing written")
    ]
    assert tree(outside) == {f"{A}.ipynb": b"precious", A: "dir", f"{A}/{A}.ipynb": b"precious too"}


# ----------------------------------------------------------------------------- names and lateness

CANVAS_CLASS = [
    ("smithalice_LATE_12345_67890_deep_dive.ipynb", "12345", True),
    ("jonesbob_12346_67891_deep_dive.ipynb", "12346", False),
    ("o_briencarol_late_12347_67892_deep_dive-1.ipynb", "12347", True),  # older Canvas: lowercased
    ("LATE_anon_x7Gq2_67893_deep_dive.ipynb", "anon_x7Gq2", True),  # anonymous grading
    ("anon_Zz9aa_67894_deep_dive.ipynb", "anon_Zz9aa", False),
]


def canvas_zip(tmp_path: Path) -> Path:
    return write_zip(tmp_path / "submissions.zip", [(name, nb(sid)) for name, sid, _ in CANVAS_CLASS])


def test_names_say_who_and_canvas_names_say_late():
    for name, sid, late in CANVAS_CLASS:
        assert parse_name(name, A, A) == lms.Named(student=sid, lms="canvas", late=late), name
    moodle = lms.Named("777", "moodle", None)
    assert parse_name("Alice Smith_777_assignsubmission_file_/deep_dive.ipynb", A, A) == moodle
    assert parse_name("Alice Smith_777_assignsubmission_file_hw_1_2_x.ipynb", A, A) == moodle
    assert parse_name("Participant_87681_assignsubmission_file/deep_dive.ipynb", A, A).student == "87681"
    assert parse_name("bob_deep_dive.ipynb", A, A) == lms.Named("bob", "plain", None)
    # what tests/test_grading.py relies on
    assert student_id("alice.ipynb", A, A) == "alice"
    assert student_id("bob_deep_dive.ipynb", A, A) == "bob"
    assert student_id("smithalice_12345_67890_deep_dive.ipynb", A, A) == "12345"
    assert student_id("smithalice_LATE_12345_67890_deep_dive-1.ipynb", A, A) == "12345"
    assert student_id("Alice Smith_777_assignsubmission_file_/deep_dive.ipynb", A, A) == "777"
    assert student_id("hw-s0042.ipynb", A, A, id_regex=r"s(?P<id>\d+)") == "0042"
    assert student_id("2024_01_deep_dive.ipynb", A, A) == "2024_01"
    with pytest.raises(ValueError):
        student_id("not an id!.ipynb", A, A)


def test_canvas_lateness_is_kept_against_the_gradebooks_due_date(tmp_path, gradebook):
    root = tmp_path / "course"
    root.mkdir()
    gradebook(root, DUE)
    report = import_submissions(canvas_zip(tmp_path), root, A)
    assert sorted(report.imported) == sorted(sid for _, sid, _ in CANVAS_CLASS) and not report.problems
    assert report.late == ["12345", "12347", "anon_x7Gq2"]
    late = ("2026-12-01 10:00:01.000000 UTC", "1 second after the due date 2026-12-01 10:00:00 UTC (LATE in Canvas)")
    on_time = ("2026-12-01 10:00:00.000000 UTC", "the due date 2026-12-01 10:00:00 UTC (on time in Canvas)")
    assert report.times == {"12345": late, "12346": on_time, "12347": late, "anon_Zz9aa": on_time, "anon_x7Gq2": late}
    assert report.warnings == []
    for _, sid, is_late in CANVAS_CLASS:
        assert stamp(root, sid) == (late if is_late else on_time)[0]
        assert seconds_late(root, sid) == (1.0 if is_late else 0.0), sid  # nbgrader agrees
    assert "  late (the LMS says so): 12345, 12347, anon_x7Gq2" in report.text()
    # the same download again: nothing changes
    again = import_submissions(canvas_zip(tmp_path), root, A)
    assert sorted(again.unchanged) == sorted(report.imported) and not again.problems and not again.times
    assert again.late == report.late


def test_without_a_due_date_the_import_time_is_written_and_the_instructor_is_told(tmp_path, gradebook):
    root = tmp_path / "course"
    root.mkdir()
    gradebook(root, None)
    before = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    report = import_submissions(canvas_zip(tmp_path), root, A)
    after = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    stamps = {stamp(root, sid) for _, sid, _ in CANVAS_CLASS}
    assert len(stamps) == 1
    from nbgrader.utils import parse_utc

    assert before <= parse_utc(stamps.pop()) <= after  # not 1999 (the zip's entry time)
    assert {sid: how for sid, (_, how) in report.times.items()} == {
        "12345": "the import time (Canvas says LATE; no due date is known)",
        "12346": "the import time (Canvas says on time; no due date is known)",
        "12347": "the import time (Canvas says LATE; no due date is known)",
        "anon_Zz9aa": "the import time (Canvas says on time; no due date is known)",
        "anon_x7Gq2": "the import time (Canvas says LATE; no due date is known)",
    }
    assert report.warnings == [
        "Canvas marks 12345, 12347, anon_x7Gq2 LATE, but deep_dive has no due date here: set it "
        "(nbgrader db assignment add deep_dive --duedate=...) and import again with --replace "
        "to record the lateness in timestamp.txt"
    ]
    # the instructor sets the due date and imports again: the times from Canvas replace the import time
    again = import_submissions(canvas_zip(tmp_path), root, A, due="2026-12-01 11:00:00 Europe/Paris")
    assert len(again.problems) == 5 and "holds another time" in again.problems[0][1]
    again = import_submissions(canvas_zip(tmp_path), root, A, due="2026-12-01 11:00:00 Europe/Paris", replace=True)
    assert sorted(again.replaced) == sorted(report.imported)
    assert stamp(root, "12345") == "2026-12-01 10:00:01.000000 UTC"
    assert stamp(root, "12346") == "2026-12-01 10:00:00.000000 UTC"
    kept = [p for p in (root / "submitted" / "12345").iterdir() if p.name.startswith(".")]
    assert len(kept) == 1 and (kept[0] / "timestamp.txt").read_text() != stamp(root, "12345")


def test_names_without_time_get_the_import_time_and_stay_unchanged_on_reimport(tmp_path, gradebook):
    z = write_zip(
        tmp_path / "moodle.zip",
        [
            ("Alice Smith_777_assignsubmission_file_/deep_dive.ipynb", nb("alice")),
            ("Bob Stone_778_assignsubmission_file_deep_dive.ipynb", nb("bob")),
            ("carol.ipynb", nb("carol")),
        ],
    )
    root = tmp_path / "course"
    root.mkdir()
    gradebook(root, DUE)
    report = import_submissions(z, root, A)
    how = "the import time (the download does not say when it was submitted)"
    assert {sid: h for sid, (_, h) in report.times.items()} == {"777": how, "778": how, "carol": how}
    assert report.late == [] and report.warnings == []
    first = stamp(root, "777")
    assert not first.startswith("1999")
    time.sleep(0.01)
    again = import_submissions(z, root, A)
    assert sorted(again.unchanged) == ["777", "778", "carol"] and not again.problems
    assert stamp(root, "777") == first


def test_the_due_date_can_be_given_and_a_bad_one_is_refused(tmp_path):
    root = tmp_path / "course"
    aware = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    report = import_submissions(canvas_zip(tmp_path), root, A, due=aware)  # no gradebook at all
    assert report.times["12345"][0] == "2026-12-01 10:00:01.000000 UTC"
    assert not (root / "gradebook.db").exists()
    with pytest.raises(LMSImportError, match="not a time nbgrader understands"):
        import_submissions(canvas_zip(tmp_path), tmp_path / "c2", A, due="next tuesday-ish")


def test_the_classic_zip_behaviour_is_kept(tmp_path):
    """The case tests/test_grading.py checks: two files for one student import neither, and say so."""
    z = write_zip(
        tmp_path / "class.zip",
        [
            ("carol.ipynb", b"{}"),
            ("carol_deep_dive.ipynb", b"{}"),
            ("dave.ipynb", b"{}"),
            ("__MACOSX/._dave.ipynb", b"junk"),
        ],
    )
    report = import_submissions(z, tmp_path, A)
    assert report.imported == ["dave"] and report.problems == [
        ("carol.ipynb, carol_deep_dive.ipynb", "several files for student carol: none imported")
    ]
    assert (tmp_path / "submitted" / "dave" / A / "timestamp.txt").exists()
    assert not (tmp_path / "submitted" / "carol").exists()
    assert report.text().splitlines()[0] == "imported 1, replaced 0, unchanged 0, not imported 1"

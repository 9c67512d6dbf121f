"""Make the production exercise's sample class: one submission per kind of student.

    python tests/submissions/production/make_production_class.py          # (re)write the notebooks and expected.json
    python tests/submissions/production/make_production_class.py --check  # exit 1 if the committed files are stale

Every submission is the student copy (release/production/) with the three
answer cells filled: from the instructor's solution, or with a variant
written here. ``expected.json`` gives each student's score per test cell and
status, worked out from what each variant does (never from running the
grader):

right        the solution: expand, backfill in batches in a non-atomic migration, contract   5 / 5
one_step     0002 adds ``due`` NOT NULL with a placeholder default and fills it in the same
             migration (lesson 8's one-step way); 0003 does nothing; 0004 the solution.
             End schema, rows and the way back are right; the column is NOT NULL right after
             0002 and 0003 writes no rows                                                      3 / 5
no_reverse   the solution, but the backfill's RunPython has no reverse function: migrating
             back from 0003 stops with IrreversibleError                                       4 / 5
misses_rows  batches by offset up to the row count, as if ids ran 1..count: right on the
             visible table (ids 1..2000), on the graded one (ids 250..6000 with gaps) the
             loans above id 5000 keep no due date and 0004 fails; only the batches are right  1 / 5
reaches_out  the solution, whose backfill first tries to reach what it must not: the
             superuser (peer and password), every other database of the server with its own
             role, every other role with its own password, COPY ... TO PROGRAM, files of the
             server, dblink. Anything it reaches stops the migration, so full marks mean it
             reached nothing                                                                   5 / 5
blank        the student copy as released                                                      0 / 5
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
ASSIGNMENT = "production"
MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")
CELLS = ("prod_end_schema", "prod_every_row", "prod_expand_contract", "prod_reversible", "prod_batches")

ONE_STEP_EXPAND = '''EXPAND = """
import datetime

from django.db import migrations, models
from django.db.models import F


def fill_due(apps, schema_editor):
    Loan = apps.get_model("loans", "Loan")
    Loan.objects.update(due=F("borrowed") + datetime.timedelta(days=14))


class Migration(migrations.Migration):
    dependencies = [("loans", "0001_initial")]
    operations = [
        migrations.AddField("loan", "due", models.DateField(default=datetime.date(2000, 1, 1)),
                            preserve_default=False),
        migrations.RunPython(fill_due, migrations.RunPython.noop),
    ]
"""
'''
ONE_STEP_BACKFILL = '''BACKFILL = """
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("loans", "0002_loan_due_nullable")]
    operations = [migrations.RunPython(migrations.RunPython.noop, migrations.RunPython.noop)]   # done in 0002
"""
'''
MISSES_ROWS_FILL = '''    Loan = apps.get_model("loans", "Loan")
    total = Loan.objects.count()
    for offset in range(0, total, BATCH):   # as if the ids were 1..total
        with transaction.atomic():
            Loan.objects.filter(id__gt=offset, id__lte=offset + BATCH, due=None).update(
                due=F("borrowed") + datetime.timedelta(days=14))'''
REACH_OUT = '''    import os

    import psycopg

    here = dict(host=os.environ["MIGLAB_PG_HOST"], port=os.environ["MIGLAB_PG_PORT"], connect_timeout=5)
    me, password, mine = (os.environ["MIGLAB_PG_USER"], os.environ["MIGLAB_PG_PASSWORD"],
                          os.environ["MIGLAB_PG_NAME"])
    reached = []

    def attempt(what, **kw):
        try:
            with psycopg.connect(**here, **kw) as con:
                reached.append(f"{what}: connected as {con.execute('SELECT current_user').fetchone()[0]}")
        except psycopg.Error:
            pass

    with psycopg.connect(**here, dbname=mine, user=me, password=password) as con:
        others = [r[0] for r in con.execute("SELECT datname FROM pg_database WHERE datname <> %s", (mine,))]
        roles = [r[0] for r in con.execute("SELECT rolname FROM pg_roles WHERE rolname <> %s", (me,))]
        for what, statement in (("COPY TO PROGRAM", "COPY (SELECT 1) TO PROGRAM 'true'"),
                                ("a server file", "SELECT pg_read_file('/etc/hostname')"),
                                ("dblink", "CREATE EXTENSION dblink")):
            try:
                with con.transaction():
                    con.execute(statement)
                reached.append(what)
            except psycopg.Error:
                pass
    for db in ["postgres", "template1", *others]:
        attempt(f"the superuser on {db} (peer)", dbname=db, user="postgres")
        attempt(f"the superuser on {db} (my password)", dbname=db, user="postgres", password=password)
        attempt(f"{db} as me", dbname=db, user=me, password=password)
    for role in roles:
        attempt(f"the role {role} with my password", dbname=mine, user=role, password=password)
    if reached:
        raise RuntimeError(f"reached: {reached}")
    print(f"tried {len(others) + 2} other databases and {len(roles)} other roles: reached nothing")
'''


def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def _solution(source: str) -> str:
    return "\n".join(line for line in source.splitlines() if line.strip() not in MARKERS)


def build(source_nb, release_nb) -> tuple[dict, dict]:
    """({student: notebook bytes}, {student: expected})."""
    answers = {_meta(c)["grade_id"]: _solution(c.source) for c in source_nb.cells if _meta(c).get("solution")}
    backfill = answers["answer_backfill"]
    no_reverse = backfill.replace("migrations.RunPython(fill_due, empty_due)", "migrations.RunPython(fill_due)")
    start = backfill.index("    Loan = apps.get_model", backfill.index("def fill_due"))
    end = backfill.index("\n\n\ndef empty_due")
    misses = backfill[:start] + MISSES_ROWS_FILL + backfill[end:]
    reaches = backfill.replace("def fill_due(apps, schema_editor):\n",
                               "def fill_due(apps, schema_editor):\n" + REACH_OUT, 1)
    assert no_reverse != backfill and misses != backfill and reaches != backfill
    variants = {
        "right": {},
        "one_step": {"answer_expand": ONE_STEP_EXPAND, "answer_backfill": ONE_STEP_BACKFILL},
        "no_reverse": {"answer_backfill": no_reverse},
        "misses_rows": {"answer_backfill": misses},
        "reaches_out": {"answer_backfill": reaches},
    }
    scores = {
        "right": (1, 1, 1, 1, 1),
        "one_step": (1, 1, 0, 1, 0),
        "no_reverse": (1, 1, 1, 0, 1),
        "misses_rows": (0, 0, 0, 0, 1),
        "reaches_out": (1, 1, 1, 1, 1),
        "blank": (0, 0, 0, 0, 0),
    }
    files = {}
    for student, changes in variants.items():
        nb = copy.deepcopy(release_nb)
        for cell in nb.cells:
            gid = _meta(cell).get("grade_id")
            if _meta(cell).get("solution"):
                cell.source = changes.get(gid, answers[gid]).rstrip("\n")
        files[student] = _dump(nb)
    files["blank"] = _dump(release_nb)
    expected = {s: {"status": "ok", "scores": {c: float(p) for c, p in zip(CELLS, pts)},
                    "total": float(sum(pts))} for s, pts in scores.items()}
    return files, expected


def _dump(nb) -> bytes:
    return (nbformat.writes(nb) + "\n").encode()


def render(root: Path = REPO) -> dict[str, bytes]:
    source = nbformat.read(str(root / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"), as_version=4)
    release = nbformat.read(str(root / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"), as_version=4)
    files, expected = build(source, release)
    out = {f"{name}.ipynb": data for name, data in files.items()}
    out["expected.json"] = (json.dumps(expected, indent=1, sort_keys=True) + "\n").encode()
    return out


def make_course(dest: Path, root: Path = REPO) -> Path:
    """A course at ``dest`` with this repo's nbgrader settings, ``source/production`` and this class
    submitted (one student per notebook here)."""
    import shutil

    from miglab.grading.lms import import_submissions

    dest.mkdir(parents=True, exist_ok=True)
    (dest / "nbgrader_config.py").write_text(
        "c = get_config()  # noqa: F821\n"
        f"load_subconfig({str(root / 'grader_config.py')!r})  # noqa: F821\n"
        f"c.CourseDirectory.root = {str(dest)!r}\n"
        f"c.CourseDirectory.db_url = {('sqlite:///' + str(dest / 'gradebook.db'))!r}\n")
    shutil.copytree(root / "source" / ASSIGNMENT, dest / "source" / ASSIGNMENT,
                    ignore=shutil.ignore_patterns("__pycache__"))
    report = import_submissions(HERE, dest, ASSIGNMENT, replace=True)
    if report.problems:
        raise RuntimeError(report.text())
    return dest


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="only check that the committed files are current")
    args = p.parse_args(argv)
    want = render()
    have = {f.name: f.read_bytes() for f in HERE.iterdir() if f.name != Path(__file__).name and f.is_file()}
    if args.check:
        stale = sorted(set(want) ^ set(have) | {k for k in want if have.get(k) != want[k]})
        if stale:
            print(f"stale sample class in {HERE}: {', '.join(stale)}; run {Path(__file__).relative_to(REPO)}")
            return 1
        print(f"{HERE} is current ({len(want)} files)")
        return 0
    for name in set(have) - set(want):
        (HERE / name).unlink()
    for name, data in want.items():
        (HERE / name).write_bytes(data)
    print(f"wrote {len(want)} files to {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

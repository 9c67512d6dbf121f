"""How lab results show in a notebook: a command like a terminal session, files, tables."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

TRACEBACK = re.compile(r"^Traceback \(most recent call last\):\n(?:(?:[ \t].*)?\n)+", re.MULTILINE)


class LabError(Exception):
    """A mistake in how the lab was asked to do something, explained plainly."""


@dataclass
class CommandResult:
    """One ``python manage.py ...`` run, displayed like a terminal session."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool = False
    input: str | None = None
    shell_code: str | None = None  # set by Lab.shell: shown as typed at the shell's prompt

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def output(self) -> str:
        """Everything the command printed, stdout then stderr."""
        return self.stdout + self.stderr

    def check(self) -> CommandResult:
        """Raise LabError (with Django's own message) unless the command succeeded."""
        if not self.ok:
            raise LabError(f"`{self.command}` failed with exit status {self.returncode}:\n{self.output.strip()}")
        return self

    @property
    def command(self) -> str:
        return "python manage.py " + " ".join(shlex.quote(a) for a in self.args)

    def __repr__(self) -> str:
        if self.shell_code is not None:
            lines = ["$ python manage.py shell"]
            lines += [
                (">>> " if not ln.startswith((" ", "\t")) else "... ") + ln for ln in self.shell_code.splitlines()
            ]
        else:
            lines = [f"$ {self.command}"]
        if self.input:
            typed = " | ".join(line for line in self.input.splitlines())
            lines.append(f"[typed at the prompts: {typed}]")
        # A Python traceback is shown by its last lines (the error itself); .stderr keeps it whole.
        out = self.stdout
        if out and self.stderr and not out.endswith("\n"):
            out += "\n"  # e.g. "Applying x..." then the error: start it on its own line
        body = TRACEBACK.sub(_fold_traceback, _last_traceback_only(out + self.stderr)).rstrip("\n")
        if body:
            lines.append(body)
        if self.timed_out:
            lines.append("[stopped: the command ran out of time]")
        elif self.returncode != 0:
            lines.append(f"[exit status {self.returncode}]")
        return "\n".join(lines)

    __str__ = __repr__


def _last_traceback_only(text: str) -> str:
    """Of a chain of tracebacks ("... was the direct cause of ..."), keep the last one."""
    head = "Traceback (most recent call last):"
    first, last = text.find(head), text.rfind(head)
    return text[:first] + text[last:] if first != last else text


def _fold_traceback(match: re.Match) -> str:
    return "Traceback (most recent call last):\n  ... (frames folded: the full traceback is in .stderr) ...\n"


class Source(str):
    """A file's text, displayed as the file itself (not as a quoted string)."""

    def __new__(cls, text: str, title: str = ""):
        obj = super().__new__(cls, text)
        obj.title = title
        return obj

    def __repr__(self) -> str:
        head = f"# {self.title}\n" if self.title else ""
        return head + str(self).rstrip("\n")


@dataclass
class Table:
    """Rows from the lab database, displayed as an aligned text table."""

    columns: list[str]
    rows: list[tuple] = field(default_factory=list)
    title: str = ""

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def dicts(self) -> list[dict]:
        return [dict(zip(self.columns, r)) for r in self.rows]

    def column(self, name: str) -> list:
        i = self.columns.index(name)
        return [r[i] for r in self.rows]

    def __repr__(self) -> str:
        cells = [list(self.columns)] + [["NULL" if v is None else str(v) for v in r] for r in self.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.columns))]
        fmt = lambda row: "  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip()
        out = [self.title] if self.title else []
        out += [fmt(cells[0]), "  ".join("-" * w for w in widths)]
        out += [fmt(r) for r in cells[1:]] or ["(no rows)"]
        return "\n".join(out)

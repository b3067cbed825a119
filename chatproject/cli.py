"""Console output for the management commands, in one place: tables, panels, Markdown, progress
bars and JSON.

On a terminal the commands draw with Rich (colours, boxes, live bars). When their output is piped
or captured (a file, ``| grep``, a test's StringIO) they write plain text: tab-separated rows
under a header, one line per progress step at most every so often, no escape codes. ``--json``
output is the same either way: one JSON document on stdout.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from typing import Any, TextIO

from django.core.management.base import BaseCommand, CommandError, OutputWrapper

# Exit statuses: 0 done, FAILED when the work failed or a check did not pass, USAGE when the
# arguments name nothing that exists or make no sense (argparse's own errors exit 2 too),
# INTERRUPTED when Ctrl-C ended it (128 + SIGINT, as shells report it).
FAILED = 1
USAGE = 2
INTERRUPTED = 130


def usage_error(message: str) -> CommandError:
    return CommandError(message, returncode=USAGE)


class InterruptibleCommand(BaseCommand):
    """A command people stop with Ctrl-C (``ask``, ``chat``, ``deliver_webhooks --loop``): one line
    and exit 130, no traceback. A reply cut short is ended as ``interrupted`` by the stale sweep, as
    for a worker that died."""

    def execute(self, *args: Any, **options: Any) -> str | None:
        try:
            return super().execute(*args, **options)
        except KeyboardInterrupt:
            raise CommandError("Interrupted.", returncode=INTERRUPTED) from None


AGE_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_age(text: str, *, option: str = "--older-than") -> timedelta:
    """A duration like ``30d``, ``12h``, ``2w`` or ``90m``; a usage error otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*([mhdw])\s*", text)
    if not match:
        raise usage_error(f"{option}: {text!r} is not a number followed by m, h, d or w (like 30d).")
    return timedelta(**{AGE_UNITS[match.group(2)]: int(match.group(1))})


def user_named(username: str):
    """The user with this username, else a usage error."""
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise usage_error(f'No user "{username}".')
    return user


def format_bytes(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"  # pragma: no cover


def age(moment: Any, now: Any = None) -> str:
    """How long ago, in the largest unit that fits: "42 s", "5 min", "3 h", "2 d"."""
    if moment is None:
        return ""
    from django.utils import timezone

    seconds = max(0, int(((now or timezone.now()) - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def _stream(out: OutputWrapper | TextIO) -> TextIO:
    return out._out if isinstance(out, OutputWrapper) else out


def is_terminal(out: OutputWrapper | TextIO) -> bool:
    stream = _stream(out)
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed, or not a real file
        return False


def console(out: OutputWrapper | TextIO):
    """A Rich console on the command's stream; colours only when it is a terminal."""
    from rich.console import Console

    stream = _stream(out)
    terminal = is_terminal(stream)
    return Console(file=stream, force_terminal=terminal, no_color=not terminal, highlight=False, soft_wrap=not terminal)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def table(
    out: OutputWrapper | TextIO,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    title: str | None = None,
    styles: dict[str, str] | None = None,
    value_styles: dict[str, dict[str, str]] | None = None,
) -> None:
    """Rows under a header: a Rich table on a terminal, tab-separated lines otherwise.

    ``styles`` colours a column; ``value_styles`` a cell by its value (``{"result": {"FAIL": "red"}}``).
    Cells are text, never Rich markup: titles and messages are users' words.
    """
    stream = _stream(out)
    if not is_terminal(stream):
        if title:
            stream.write(f"# {title}\n")
        stream.write("\t".join(columns) + "\n")
        for row in rows:
            stream.write("\t".join(_text(cell).replace("\t", " ").replace("\n", " ") for cell in row) + "\n")
        return
    from rich.table import Table
    from rich.text import Text

    grid = Table(title=title, header_style="bold")
    for column in columns:
        grid.add_column(column, style=(styles or {}).get(column))
    by_value = [(value_styles or {}).get(column, {}) for column in columns]
    for row in rows:
        cells = [_text(cell) for cell in row]
        grid.add_row(*(Text(cell, style=by_value[n].get(cell, "")) for n, cell in enumerate(cells)))
    console(stream).print(grid)


def panel(out: OutputWrapper | TextIO, text: str, *, title: str | None = None, style: str = "") -> None:
    """A boxed paragraph on a terminal; the title and the text as lines otherwise."""
    stream = _stream(out)
    if not is_terminal(stream):
        stream.write(f"{title}\n{text}\n" if title else f"{text}\n")
        return
    from rich.panel import Panel
    from rich.text import Text

    console(stream).print(Panel(Text(text), title=Text(title) if title else None, border_style=style or "none"))


def write_json(out: OutputWrapper | TextIO, data: Any) -> None:
    """One JSON document and a newline (dates and UUIDs as strings)."""
    _stream(out).write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")


@contextlib.contextmanager
def progress_bar(description: str, total: int | None, out: OutputWrapper | TextIO) -> Iterator[Callable[..., None]]:
    """Yields ``advance(n=1)``; a live bar on a terminal, else a line at every tenth of the way
    (or every 100 steps when the total is unknown) and at the end."""
    stream = _stream(out)
    if not is_terminal(stream):
        done = 0
        step = max(1, (total or 1000) // 10)
        next_line = step

        def advance(n: int = 1) -> None:
            nonlocal done, next_line
            done += n
            if done >= next_line or done == total:
                stream.write(f"{description}: {done}/{total if total is not None else '?'}\n")
                while next_line <= done:
                    next_line += step

        yield advance
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console(stream)) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n=1: progress.advance(task, n)


def confirm(question: str, *, stdin: TextIO, out: OutputWrapper | TextIO) -> bool:
    """Ask a yes/no question; only "y" or "yes" is a yes. No answer at all (end of input: run from
    cron or a script without ``--yes``) is a usage error, so an unattended run that did nothing
    exits non-zero instead of reporting success."""
    stream = _stream(out)
    stream.write(f"{question} [y/N] ")
    stream.flush()
    answer = stdin.readline()
    if not answer:
        stream.write("\n")
        raise usage_error("No answer (end of input): nothing done. Pass --yes to run without asking.")
    return answer.strip().lower() in {"y", "yes"}


class ReplyPrinter:
    """Prints an agent reply as it streams (``agent.services.ReplyEvent``s): text as it comes, tool
    steps dimmed on lines of their own (plain ``  [tool] ...`` lines when not on a terminal)."""

    def __init__(self, out: OutputWrapper | TextIO, *, prefix: str = "") -> None:
        self.stream = _stream(out)
        self.terminal = is_terminal(self.stream)
        self.console = console(self.stream) if self.terminal else None
        # Written before the first text of the answer (after any tool steps): "agent> ".
        self.prefix = prefix
        self.at_line_start = True

    def _line(self, text: str) -> None:
        if not self.at_line_start:
            self.stream.write("\n")
        if self.console is not None:
            self.console.print(text, style="dim", markup=False, highlight=False)
        else:
            self.stream.write(text + "\n")
        self.at_line_start = True
        self.stream.flush()

    def __call__(self, event: Any) -> None:
        status = getattr(event, "status", None)
        if status:
            step = status.get("step")
            if step == "tool_start":
                self._line(f"  [tool] {status.get('tool')}({json.dumps(status.get('input'), default=str)[:200]})")
            elif step == "tool_end":
                self._line(f"  [tool] {status.get('tool')} -> {str(status.get('output'))[:200]}")
            else:
                self._line(f"  [{step}] {status.get('message', '')}")
        if getattr(event, "delta", ""):
            if self.prefix:
                self.stream.write(self.prefix)
                self.prefix = ""
            self.stream.write(event.delta)
            self.stream.flush()
            self.at_line_start = event.delta.endswith("\n")

    def end(self) -> None:
        if not self.at_line_start:
            self.stream.write("\n")
            self.at_line_start = True


def default_user(username: str | None):
    """The user named, else the only user of the site; a usage error when neither is known."""
    if username:
        return user_named(username)
    from django.contrib.auth import get_user_model

    users = list(get_user_model().objects.order_by("pk")[:2])
    if len(users) != 1:
        raise usage_error("Name the user with --user (the site has " + ("none" if not users else "several") + ").")
    return users[0]


def thread_for(user: Any, thread_id: str | None):
    """The user's thread ``thread_id`` (a usage error when it is not theirs), else a new one."""
    from chatproject.errors import NotFound
    from threads.selectors import thread_get
    from threads.services import thread_create

    if thread_id is None:
        return thread_create(owner=user)
    try:
        return thread_get(user=user, thread_id=thread_id)
    except NotFound:
        raise usage_error(f"No thread {thread_id} of {user.get_username()}.") from None

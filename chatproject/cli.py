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
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TextIO

from django.core.management.base import OutputWrapper


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
) -> None:
    """Rows under a header: a Rich table on a terminal, tab-separated lines otherwise."""
    stream = _stream(out)
    if not is_terminal(stream):
        if title:
            stream.write(f"# {title}\n")
        stream.write("\t".join(columns) + "\n")
        for row in rows:
            stream.write("\t".join(_text(cell).replace("\t", " ").replace("\n", " ") for cell in row) + "\n")
        return
    from rich.table import Table

    grid = Table(title=title, header_style="bold")
    for column in columns:
        grid.add_column(column, style=(styles or {}).get(column))
    for row in rows:
        grid.add_row(*(_text(cell) for cell in row))
    console(stream).print(grid)


def panel(out: OutputWrapper | TextIO, text: str, *, title: str | None = None, style: str = "") -> None:
    """A boxed paragraph on a terminal; the title and the text as lines otherwise."""
    stream = _stream(out)
    if not is_terminal(stream):
        stream.write(f"{title}\n{text}\n" if title else f"{text}\n")
        return
    from rich.panel import Panel

    console(stream).print(Panel(text, title=title, border_style=style or "none"))


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
    """Ask a yes/no question; only "y" or "yes" is a yes (end of input is a no)."""
    stream = _stream(out)
    stream.write(f"{question} [y/N] ")
    stream.flush()
    answer = stdin.readline()
    return answer.strip().lower() in {"y", "yes"}

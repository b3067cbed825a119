"""A progress bar for the commands: Rich's when it is installed, else a line every so often."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TextIO


@contextlib.contextmanager
def progress_bar(description: str, total: int | None, stream: TextIO) -> Iterator[Callable[[int], None]]:
    """Yields ``advance(n)``; the bar is drawn on ``stream`` (a terminal: live; else plain)."""
    try:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    except ImportError:  # pragma: no cover - rich is in requirements.txt
        done = 0

        def advance(n: int = 1) -> None:
            nonlocal done
            done += n
            if done % 100 == 0 or done == total:
                stream.write(f"{description}: {done}/{total or '?'}\n")

        yield advance
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(file=stream)) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n=1: progress.advance(task, n)

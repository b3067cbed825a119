"""``manage.py rebuild_memory``: recompute the memory index's stored tokens from every user message."""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from agent.memory import memory_rebuild, memory_rebuild_count
from chatproject.cli import progress_bar


class Command(BaseCommand):
    help = "Rebuild the BM25 memory entries from all user messages (every process reloads its index)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=2000, help="Entries stored per query (default 2000).")

    def handle(self, *args: Any, batch_size: int, **options: Any) -> None:
        with progress_bar("messages", memory_rebuild_count(), self.stderr) as advance:
            count = memory_rebuild(batch_size=max(1, batch_size), on_batch=advance)
        self.stdout.write(f"Rebuilt memory: {count} message(s) indexed.")

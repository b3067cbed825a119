"""``manage.py rebuild_memory``: recompute the memory index's stored tokens from every user message."""

from typing import Any

from django.core.management.base import BaseCommand

from agent.memory import memory_rebuild


class Command(BaseCommand):
    help = "Rebuild the BM25 memory entries from all user messages (every process reloads its index)."

    def handle(self, *args: Any, **options: Any) -> None:
        count = memory_rebuild()
        self.stdout.write(f"Rebuilt memory: {count} message(s) indexed.")

"""``manage.py memory_search``: what the agent's memory finds for a user, with BM25 scores."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from agent.memory import memory_searcher
from chatproject.cli import table, user_named, write_json


class Command(BaseCommand):
    help = "Search a user's memory (BM25 over their messages, deleted threads left out) as the agent does."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("query", help="What to search for (quote it).")
        parser.add_argument("--user", required=True, help="Whose memory (a username).")
        parser.add_argument("--limit", type=int, default=10, help="Hits shown (default 10).")
        parser.add_argument("--json", action="store_true", help="A JSON list instead of a table.")

    def handle(self, *args: Any, query: str, user: str, limit: int, json: bool, **options: Any) -> None:
        owner = user_named(user)
        hits = memory_searcher(user_id=owner.pk)(query, max(1, limit))
        if json:
            write_json(self.stdout, hits)
            return
        rows = [(f"{h['score']:.4f}", h["date"], h["thread_title"], h["snippet"][:120]) for h in hits]
        table(self.stdout, ["score", "date", "thread", "message"], rows, title=f"{len(hits)} hit(s) for {query!r}")

"""``manage.py threads``: every user's threads in a table."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from chatproject.cli import age, table, user_named, write_json
from threads.models import ChatThread
from threads.selectors import thread_list_all


class Command(BaseCommand):
    help = "List threads of every user (or one), deleted ones included, most recently active first."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--user", help="Only this user's threads (a username).")
        parser.add_argument("--status", choices=ChatThread.Status.values, help="Only threads with this status.")
        parser.add_argument("--search", help="Only titles containing this (case-insensitive).")
        parser.add_argument("--limit", type=int, default=100, help="At most this many (default 100).")
        parser.add_argument("--json", action="store_true", help="A JSON list instead of a table.")

    def handle(
        self,
        *args: Any,
        user: str | None,
        status: str | None,
        search: str | None,
        limit: int,
        json: bool,
        **options: Any,
    ) -> None:
        owner = user_named(user) if user else None
        threads = list(
            thread_list_all(owner_id=owner.pk if owner else None, status=status, search=search)[: max(1, limit)]
        )
        if json:
            write_json(
                self.stdout,
                [
                    {
                        "id": str(thread.pk),
                        "title": thread.title,
                        "owner": thread.owner.get_username(),
                        "status": thread.status,
                        "model": thread.model,
                        "messages": thread.message_count,
                        "created_at": thread.created_at.isoformat(),
                        "updated_at": thread.updated_at.isoformat(),
                    }
                    for thread in threads
                ],
            )
            return
        now = timezone.now()
        rows = [
            (
                str(t.pk),
                t.title or "(untitled)",
                t.owner.get_username(),
                t.status,
                t.message_count,
                age(t.updated_at, now),
            )
            for t in threads
        ]
        table(
            self.stdout, ["id", "title", "owner", "status", "messages", "active"], rows, title=f"{len(rows)} thread(s)"
        )

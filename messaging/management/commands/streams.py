"""``manage.py streams``: reply streams with their status, age and last heartbeat."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from chatproject.cli import age, table, write_json
from messaging.selectors import stream_list

STATUS_STYLES = {"streaming": "yellow", "complete": "green", "error": "red", "interrupted": "red", "stopped": "dim"}


class Command(BaseCommand):
    help = "Reply streams, newest first: status, thread, owner, chunks, age, time since the last heartbeat."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--open", action="store_true", help="Only streams still streaming.")
        parser.add_argument("--limit", type=int, default=100, help="At most this many (default 100).")
        parser.add_argument("--json", action="store_true", help="A JSON list instead of a table.")

    def handle(self, *args: Any, open: bool, limit: int, json: bool, **options: Any) -> None:
        now = timezone.now()
        streams = stream_list(open_only=open, limit=max(1, limit))
        if json:
            write_json(
                self.stdout,
                [
                    {
                        "id": str(stream.pk),
                        "status": stream.status,
                        "thread": str(stream.thread_id),
                        "owner": stream.thread.owner.get_username(),
                        "reply_to": str(stream.reply_to_id),
                        "attempt": stream.attempt,
                        "chunks": stream.chunk_count,
                        "started_at": stream.started_at.isoformat(),
                        "heartbeat_at": stream.heartbeat_at.isoformat(),
                        "ended_at": stream.ended_at.isoformat() if stream.ended_at else None,
                        "age_seconds": round((now - stream.started_at).total_seconds(), 3),
                        "heartbeat_seconds_ago": round((now - stream.heartbeat_at).total_seconds(), 3),
                    }
                    for stream in streams
                ],
            )
            return
        rows = [
            (
                str(stream.pk)[:8],
                stream.status,
                str(stream.thread_id)[:8],
                stream.thread.owner.get_username(),
                str(stream.chunk_count),
                age(stream.started_at, now),
                age(stream.heartbeat_at, now) if stream.status == "streaming" else "",
            )
            for stream in streams
        ]
        columns = ["stream", "status", "thread", "owner", "chunks", "age", "heartbeat"]
        table(
            self.stdout,
            columns,
            rows,
            title="Open reply streams" if open else "Reply streams",
            value_styles={"status": STATUS_STYLES},
        )

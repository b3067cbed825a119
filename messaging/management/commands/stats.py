"""``manage.py stats``: what the site holds and how its replies are doing."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from chatproject.cli import format_bytes, table, write_json
from messaging.selectors import site_stats


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


class Command(BaseCommand):
    help = (
        "Users, threads by status, messages by role, replies of the last hour and day with p50/p95 latency "
        "(user message stored to reply ended), errors, open reply streams and attachment storage."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", action="store_true", help="One JSON document instead of tables.")

    def handle(self, *args: Any, json: bool, **options: Any) -> None:
        stats = site_stats()
        if json:
            write_json(self.stdout, stats)
            return
        rows = [("users", stats["users"])]
        rows += [(f"threads {status}", count) for status, count in stats["threads"].items()]
        rows += [(f"messages {role}", count) for role, count in stats["messages"].items()]
        rows += [
            ("error messages", stats["error_messages"]),
            ("open reply streams", stats["open_streams"]),
            ("attachments", f"{stats['attachments']['files']} files, {format_bytes(stats['attachments']['bytes'])}"),
        ]
        table(self.stdout, ["what", "count"], rows, title="Site")
        replies = [
            (
                window.replace("_", " "),
                data["replies"],
                data["errors"],
                _seconds(data["p50_seconds"]),
                _seconds(data["p95_seconds"]),
            )
            for window, data in stats["replies"].items()
        ]
        table(self.stdout, ["window", "replies", "errors", "p50", "p95"], replies, title="Replies")

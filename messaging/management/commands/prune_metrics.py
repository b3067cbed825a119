"""``manage.py prune_metrics``: delete old reply metrics now (the periodic sweep does it too)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from chatproject.cli import parse_age, progress_bar, write_json
from messaging.metrics import reply_metrics_prune
from messaging.rollup import reply_rollup_prune
from messaging.selectors import reply_metric_count


class Command(BaseCommand):
    help = (
        "Delete ReplyMetric and ToolCallMetric rows older than --older-than (default: "
        "REPLY_METRICS_RETENTION_DAYS), and their rollups. The dashboard and quotas read these rows; "
        "messages are untouched."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--older-than", help="Like 90d, 12w, 36h; default REPLY_METRICS_RETENTION_DAYS.")
        parser.add_argument("--dry-run", action="store_true", help="Count what would go; delete nothing.")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args: Any, older_than: str | None, dry_run: bool, json: bool, **options: Any) -> None:
        if older_than is None:
            if not settings.REPLY_METRICS_RETENTION_DAYS:
                self.stdout.write("REPLY_METRICS_RETENTION_DAYS is 0 (keep forever): pass --older-than to prune.")
                return
            older_than = f"{settings.REPLY_METRICS_RETENTION_DAYS}d"
        before = timezone.now() - parse_age(older_than)
        due = reply_metric_count(before=before)
        deleted = 0
        if not dry_run and due:
            with progress_bar("pruning", due, self.stderr) as advance:
                while batch := reply_metrics_prune(before=before):
                    deleted += batch
                    advance(batch)
        if not dry_run:
            reply_rollup_prune(before=before)
        if json:
            write_json(self.stdout, {"older_than": older_than, "due": due, "deleted": deleted, "dry_run": dry_run})
        elif dry_run:
            self.stdout.write(f"Dry run: {due} reply metric(s) older than {older_than} would be deleted.")
        else:
            self.stdout.write(self.style.SUCCESS(f"Deleted {deleted} reply metric(s) older than {older_than}."))

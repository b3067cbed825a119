"""``manage.py purge_threads``: delete soft-deleted threads for good, with their files."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from chatproject.cli import confirm, parse_age, progress_bar, table
from messaging.services import thread_purge
from threads.models import ChatThread
from threads.selectors import thread_list_purgeable


class Command(BaseCommand):
    help = (
        "Hard-delete threads with --status (default: deleted) untouched for --older-than (default 30d): "
        "messages, streams, memory and attachment files. Asks first unless --yes."
    )
    stealth_options = ("stdin",)

    def add_arguments(self, parser) -> None:
        parser.add_argument("--older-than", default="30d", help="Last activity at least this long ago: 30d, 12h, 2w.")
        parser.add_argument(
            "--status",
            default=ChatThread.Status.DELETED,
            choices=[ChatThread.Status.DELETED, ChatThread.Status.ARCHIVED],
            help="Which threads: deleted (default) or archived.",
        )
        parser.add_argument("--dry-run", action="store_true", help="List what would go; delete nothing.")
        parser.add_argument("--yes", action="store_true", help="Do not ask.")

    def handle(self, *args: Any, older_than: str, status: str, dry_run: bool, yes: bool, **options: Any) -> None:
        cutoff = timezone.now() - parse_age(older_than)
        threads = list(thread_list_purgeable(status=status, last_active_before=cutoff).select_related("owner"))
        if not threads:
            self.stdout.write(f"No {status} thread untouched for {older_than}.")
            return
        table(
            self.stdout,
            ["id", "title", "owner", "last active"],
            [(str(t.pk), str(t), t.owner.get_username(), t.updated_at.isoformat(timespec="seconds")) for t in threads],
            title=f"{len(threads)} {status} thread(s) untouched for {older_than}",
        )
        if dry_run:
            self.stdout.write(f"Dry run: {len(threads)} thread(s) would be deleted.")
            return
        if not yes and not confirm(
            f"Delete these {len(threads)} thread(s) for good?", stdin=options.get("stdin") or sys.stdin, out=self.stdout
        ):
            self.stdout.write("Nothing deleted.")
            return
        totals = {"threads": 0, "messages": 0, "files": 0}
        with progress_bar("purging", len(threads), self.stderr) as advance:
            for thread in threads:
                counts = thread_purge(thread=thread)
                totals["threads"] += 1
                totals["messages"] += counts["messages"]
                totals["files"] += counts["files"]
                advance()
        self.stdout.write(
            self.style.SUCCESS(
                f"Purged {totals['threads']} thread(s), {totals['messages']} message(s), {totals['files']} file(s)."
            )
        )

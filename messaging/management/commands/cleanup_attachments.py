"""``manage.py cleanup_attachments``: stored files and attachment rows made to agree."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from chatproject.cli import progress_bar, table, write_json
from messaging.selectors import attachment_count
from messaging.services import attachment_cleanup


class Command(BaseCommand):
    help = "Delete files under attachments/ that no row names, and attachment rows whose file is missing."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="List them; delete nothing.")
        parser.add_argument("--json", action="store_true", help="The lists as JSON.")

    def handle(self, *args: Any, dry_run: bool, json: bool, **options: Any) -> None:
        with progress_bar("attachments checked", attachment_count(), self.stderr) as advance:
            result = attachment_cleanup(dry_run=dry_run, on_row=advance)
        if json:
            write_json(self.stdout, {"dry_run": dry_run, **result})
            return
        rows = [("file without row", name) for name in result["orphan_files"]]
        rows += [("row without file", pk) for pk in result["missing_files"]]
        if rows:
            table(self.stdout, ["problem", "file or attachment id"], rows)
        verb = "would be deleted" if dry_run else "deleted"
        self.stdout.write(
            f"{len(result['orphan_files'])} file(s) without a row and "
            f"{len(result['missing_files'])} row(s) without a file {verb}."
        )

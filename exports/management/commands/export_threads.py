from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from chatproject.cli import progress_bar, usage_error
from chatproject.errors import InvalidInput
from exports.formats import FORMATS
from exports.selectors import export_thread_count
from exports.services import export_all_stream, export_request_parse


class Command(BaseCommand):
    help = "Export users' threads to files (the same documents as GET /api/export/), with a progress bar."

    def add_arguments(self, parser):
        who = parser.add_mutually_exclusive_group(required=True)
        who.add_argument("--user", help="Username whose threads to export.")
        who.add_argument("--all", action="store_true", help="Every user: one file each, in --output (a folder).")
        parser.add_argument("--format", default="json", choices=list(FORMATS), help="File format (default json).")
        parser.add_argument(
            "--branches", choices=["active", "all"], help="The branch shown (active) or every message (all)."
        )
        parser.add_argument("--archive", choices=["zip"], help="A ZIP: one file per thread plus attachment files.")
        parser.add_argument("--status", choices=["active", "archived"], help="Only threads with this status.")
        parser.add_argument("--since", help="Only threads active since this date (YYYY-MM-DD).")
        parser.add_argument("--output", help="File (--user) or folder (--all); default: the current folder.")

    def handle(self, *args, **options):
        User = get_user_model()
        if options["all"]:
            users = list(User.objects.order_by("pk"))
            folder = Path(options["output"] or ".")
            folder.mkdir(parents=True, exist_ok=True)
        else:
            user = User.objects.filter(username=options["user"]).first()
            if user is None:
                raise usage_error(f'No user "{options["user"]}".')
            users, folder = [user], None
        for user in users:
            try:
                request = export_request_parse(
                    format=options["format"],
                    branches=options["branches"],
                    archive=options["archive"],
                    status=options["status"],
                    since=options["since"],
                )
            except InvalidInput as exc:
                raise usage_error(exc.message) from None
            total = export_thread_count(user=user, status=request.status, since=request.since)
            with progress_bar(f"{user.get_username()}", total, self.stderr) as advance:
                name, chunks = export_all_stream(user=user, request=request, on_thread=advance)
                if folder is not None:
                    path = folder / f"{user.get_username()}-{name}"
                else:
                    path = Path(options["output"] or name)
                with path.open("wb") as output:
                    for chunk in chunks:
                        output.write(chunk)
            self.stdout.write(f"{path}: {request.counts['threads']} threads, {request.counts['messages']} messages")

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from chatproject.cli import progress_bar, usage_error
from chatproject.errors import DomainError
from exports.services import import_file_open, threads_import


class Command(BaseCommand):
    help = (
        "Import a file for a user: our JSON export, ChatGPT's conversations.json or an Open WebUI export "
        "(or a ZIP of one), with a progress bar. Limits as for POST /api/import/."
    )

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True, help="Username who will own the imported threads.")
        parser.add_argument("file", help="The file to import.")

    def handle(self, *args, user: str, file: str, **options):
        owner = get_user_model().objects.filter(username=user).first()
        if owner is None:
            raise usage_error(f'No user "{user}".')
        path = Path(file)
        if not path.is_file():
            raise usage_error(f"No file {file}.")
        with path.open("rb") as stream:
            try:
                checked = import_file_open(stream=stream, size=path.stat().st_size)
            except DomainError as exc:
                raise CommandError(exc.message) from None
            done = 0
            with progress_bar("conversations", checked.conversations, self.stderr) as advance:

                def progress(count: int) -> None:
                    nonlocal done
                    advance(count - done)
                    done = count

                result = threads_import(user=owner, file=checked, on_progress=progress)
        messages = sum(item["messages"] for item in result["imported"])
        self.stdout.write(f"Imported {len(result['imported'])} conversations ({messages} messages).")
        for skipped in result["skipped"]:
            self.stdout.write(f"Skipped #{skipped['index']} {skipped['title']!r}: {skipped['reason']}")

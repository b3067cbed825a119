from django.core.management.base import BaseCommand

from threads.services import demo_user_ensure


class Command(BaseCommand):
    help = "Create a demo user (and a welcome thread) when the site has no user yet."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="demo", help="The demo user's username (default demo).")
        parser.add_argument(
            "--password", default="demo-password", help="The demo user's password (default demo-password)."
        )

    def handle(self, *args, username: str, password: str, **options):
        user = demo_user_ensure(username=username, password=password)
        if user is None:
            self.stdout.write(
                f"Users exist already; no demo user created (one made earlier logs in as {username!r} / {password!r})."
            )
        else:
            self.stdout.write(self.style.SUCCESS(f"Demo user created: username {username!r}, password {password!r}"))

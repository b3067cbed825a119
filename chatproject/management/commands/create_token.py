"""``manage.py create_token``: an API token for a user (the one POST /api/auth/token/ gives)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from chatproject.cli import user_named
from chatproject.services import api_token_get


class Command(BaseCommand):
    help = (
        "Print USER's API token (created when they have none; the same one the token endpoint returns). "
        "--create makes the user first when missing (with an unusable password)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("user", help="A username.")
        parser.add_argument("--create", action="store_true", help="Create the user when there is none.")

    def handle(self, *args: Any, user: str, create: bool, **options: Any) -> None:
        if create:
            owner, created = get_user_model().objects.get_or_create(username=user)
            if created:
                owner.set_unusable_password()
                owner.save(update_fields=["password"])
                self.stderr.write(f"User {user!r} created.")
        else:
            owner = user_named(user)
        self.stdout.write(api_token_get(user=owner))

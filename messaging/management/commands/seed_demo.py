"""``manage.py seed_demo``: demo users, threads and messages in bulk."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from chatproject.cli import progress_bar, usage_error
from messaging.services import demo_seed

PASSWORD = "demo-password"


class Command(BaseCommand):
    help = (
        "Create demo data fast (bulk inserts): --users users (demo1, demo2, ...; password demo-password), "
        "each with --threads threads of --messages messages. Run rebuild_memory after it for memory search."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--users", type=int, default=1, help="Users to create or reuse (default 1).")
        parser.add_argument("--threads", type=int, default=10, help="Threads per user (default 10).")
        parser.add_argument("--messages", type=int, default=6, help="Messages per thread (default 6).")
        parser.add_argument("--prefix", default="demo", help="Usernames are PREFIX1, PREFIX2, ... (default demo).")

    def handle(self, *args: Any, users: int, threads: int, messages: int, prefix: str, **options: Any) -> None:
        if users < 1 or threads < 0 or messages < 0:
            raise usage_error("--users must be at least 1; --threads and --messages at least 0.")
        User = get_user_model()
        owners = []
        for number in range(1, users + 1):
            owner = User.objects.filter(username=f"{prefix}{number}").first()
            owners.append(owner or User.objects.create_user(username=f"{prefix}{number}", password=PASSWORD))
        with progress_bar("threads", users * threads, self.stderr) as advance:
            counts = demo_seed(
                owner_ids=[owner.pk for owner in owners], threads=threads, messages=messages, on_thread=advance
            )
        names = ", ".join(owner.get_username() for owner in owners)
        self.stdout.write(
            self.style.SUCCESS(f"Seeded {counts['threads']} threads, {counts['messages']} messages for {names}.")
        )

"""Send the webhook deliveries that are due, here, once or in a loop."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import CommandParser
from django.db import close_old_connections

from chatproject.cli import InterruptibleCommand
from webhooks.services import deliveries_run_due


class Command(InterruptibleCommand):
    help = (
        "Attempt every due webhook delivery (first attempts never queued, and retries); --loop keeps going "
        "until Ctrl-C (exit 130)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--loop", action="store_true", help="Keep going every SWEEP_INTERVAL_SECONDS.")

    def handle(self, *args: Any, loop: bool = False, **options: Any) -> None:
        while True:
            count = deliveries_run_due()
            if count or not loop:
                self.stdout.write(f"{count} deliveries attempted")
            if not loop:
                return
            close_old_connections()
            time.sleep(settings.SWEEP_INTERVAL_SECONDS)

"""``manage.py rollup_metrics``: roll up the reply metrics now (the periodic task does it too).

The first run back-fills the rollups from every ``ReplyMetric`` row there is; ``--rebuild``
deletes them and does that again (after rows were written into hours already rolled up, for
example by an import).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand

from chatproject.cli import write_json
from messaging.rollup import reply_rollup_rebuild, reply_rollup_run, rollup_through


class Command(BaseCommand):
    help = (
        "Roll up the reply metrics of every closed hour not rolled up yet (the dashboard's 24h and 7d "
        "windows read the rollups); --rebuild rolls up everything again."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--rebuild", action="store_true", help="Delete the rollups and roll up all metrics again.")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args: Any, rebuild: bool, json: bool, **options: Any) -> None:
        started = time.perf_counter()
        hours = reply_rollup_rebuild() if rebuild else reply_rollup_run()
        seconds = round(time.perf_counter() - started, 1)
        minute = rollup_through()
        through = datetime.fromtimestamp(minute * 60, tz=UTC).isoformat() if minute is not None else None
        if json:
            write_json(self.stdout, {"hours": hours, "through": through, "seconds": seconds})
        else:
            self.stdout.write(
                self.style.SUCCESS(f"Rolled up {hours} hour(s) in {seconds} s; rollups end at {through}.")
            )

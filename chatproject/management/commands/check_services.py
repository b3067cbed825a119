"""``manage.py check_services``: every part of this deployment checked for real, with latencies."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from chatproject.cli import FAILED, table, write_json
from chatproject.health import service_checks


class Command(BaseCommand):
    help = (
        "Check the database, Redis, a channel-layer round trip, a Celery worker ping, each model users may choose "
        "and the code sandbox (on the embedded default: SQLite, the in-memory layer, in-process replies). Exit 1 if "
        "one fails."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", action="store_true", help="One JSON document instead of a table.")

    def handle(self, *args: Any, json: bool, **options: Any) -> None:
        checks = service_checks()
        failing = [check.name for check in checks if not check.ok]
        if json:
            write_json(self.stdout, {"ok": not failing, "failing": failing, "checks": [c.as_dict() for c in checks]})
        else:
            rows = [(c.name, "ok" if c.ok else "FAIL", f"{c.seconds * 1000:.1f} ms", c.detail) for c in checks]
            table(
                self.stdout,
                ["check", "result", "latency", "detail"],
                rows,
                value_styles={"result": {"ok": "green", "FAIL": "bold red"}},
            )
        if failing:
            raise CommandError(f"Failing: {', '.join(failing)}.", returncode=FAILED)

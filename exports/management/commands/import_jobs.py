"""``manage.py import_jobs``: background imports with their progress; ``--run ID`` runs one here."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from chatproject.cli import FAILED, age, progress_bar, table, usage_error, write_json
from chatproject.errors import NotFound
from exports.models import ImportJob
from exports.selectors import import_job_get_any, import_job_list_all
from exports.services import import_job_payload, import_job_run

STATUS_STYLES = {"queued": "yellow", "running": "yellow", "done": "green", "failed": "red"}


class Command(BaseCommand):
    help = (
        "Background imports, newest first: status, owner, conversations done, imported and skipped, file kept. "
        "--run ID runs a queued job, or one left running by a worker or server that died, here and now: it goes "
        "on where it stopped (nothing is stored twice)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--status", choices=ImportJob.Status.values, help="Only jobs with this status.")
        parser.add_argument("--limit", type=int, default=100, help="At most this many (default 100).")
        parser.add_argument("--json", action="store_true", help="A JSON list instead of a table.")
        parser.add_argument("--run", metavar="ID", help="Run this queued or running job here, with a progress bar.")

    def handle(self, *args: Any, status: str | None, limit: int, json: bool, run: str | None, **options: Any) -> None:
        if run:
            self._run(run)
            return
        jobs = list(import_job_list_all(status=status)[: max(1, limit)])
        if json:
            write_json(
                self.stdout, [{**import_job_payload(j, results=False), "owner": j.owner.get_username()} for j in jobs]
            )
            return
        now = timezone.now()
        rows = [
            (
                str(job.pk),
                job.status,
                job.owner.get_username(),
                f"{job.conversations_done}/{job.conversations_total}",
                str(len(job.result.get("imported", []))),
                str(len(job.result.get("skipped", []))),
                "yes" if job.file else "",
                age(job.created_at, now),
                job.filename,
            )
            for job in jobs
        ]
        columns = ["job", "status", "owner", "done", "imported", "skipped", "file", "age", "filename"]
        table(self.stdout, columns, rows, title="Background imports", value_styles={"status": STATUS_STYLES})

    def _run(self, job_id: str) -> None:
        try:
            job = import_job_get_any(job_id=job_id)
        except NotFound:
            raise usage_error(f"No import {job_id}.") from None
        seen = 0
        with progress_bar("conversations", job.conversations_total, self.stderr) as advance:

            def progress(done: int) -> None:
                nonlocal seen
                advance(done - seen)
                seen = done

            ended = import_job_run(job_id=job.pk, on_progress=progress)
        if ended is None:
            raise CommandError(f"Import {job.pk} has ended already ({job.status}).", returncode=FAILED)
        payload = import_job_payload(ended, results=False)
        self.stdout.write(f"{ended.status}: {payload['imported_count']} imported, {payload['skipped_count']} skipped")
        if ended.status == ImportJob.Status.FAILED:
            raise CommandError(ended.error, returncode=FAILED)

"""Celery tasks of exports. Thin: the work is in ``exports.services``."""

from __future__ import annotations

from celery import shared_task

from .services import import_job_run


@shared_task(name="exports.import_run", ignore_result=True)
def import_run(job_id: str) -> None:
    """Import a queued job's file; a redelivered task finds the job no longer queued and stops."""
    import_job_run(job_id=job_id)

"""Celery tasks of the webhooks app. Thin: the work is in ``webhooks.services``."""

from __future__ import annotations

import logging

from celery import shared_task

from chatproject.errors import OUTAGE_ERRORS

from .services import deliveries_queue_due, deliveries_run_due, delivery_attempt, tasks_run_here

logger = logging.getLogger(__name__)


@shared_task(name="webhooks.deliver", ignore_result=True)
def deliver(delivery_id: str) -> None:
    """One attempt at one delivery; a delivery no longer pending is left alone."""
    delivery_attempt(delivery_id=delivery_id)


@shared_task(name="webhooks.deliver_due", ignore_result=True)
def deliver_due() -> int:
    """Send what is due (periodic: first attempts never queued, retries). With no broker (the
    server's own thread) the attempts run here; else they go to the workers."""
    try:
        if tasks_run_here():
            return deliveries_run_due()
        return deliveries_queue_due()
    except OUTAGE_ERRORS as exc:
        logger.warning("webhook delivery sweep skipped: %s", exc)
        return 0

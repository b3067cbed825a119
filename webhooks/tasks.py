"""Celery tasks of the webhooks app. Thin: the work is in ``webhooks.services``."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.core.cache import cache
from django.utils import timezone

from chatproject.errors import OUTAGE_ERRORS

from . import conf
from .services import deliveries_queue_due, deliveries_run_due, delivery_attempt, events_prune, tasks_run_here

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


@shared_task(name="webhooks.prune_events", ignore_result=True)
def prune_events() -> int:
    """Delete webhook events older than WEBHOOK_EVENT_RETENTION_DAYS (periodic: see settings)."""
    days = conf.event_retention_days()
    if not days or not cache.add("webhooks:prune-events", 1, timeout=conf.PRUNE_EVERY_SECONDS):
        return 0
    before = timezone.now() - timedelta(days=days)
    deleted = 0
    try:
        for _ in range(conf.PRUNE_BATCHES_PER_RUN):
            if not (batch := events_prune(before=before)):
                break
            deleted += batch
    except OUTAGE_ERRORS as exc:
        logger.warning("webhook events prune skipped: %s", exc)
    if deleted:
        logger.info("pruned %d webhook event(s) older than %d days", deleted, days)
    return deleted

"""Celery tasks of messaging. Thin: the work is in ``messaging.services``."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from chatproject.errors import OUTAGE_ERRORS

from .metrics import reply_metrics_prune
from .rollup import reply_rollup_prune, reply_rollup_run
from .services import stream_sweep_stale

logger = logging.getLogger(__name__)


@shared_task(name="messaging.sweep_streams", ignore_result=True)
def sweep_streams() -> int:
    """End the replies whose worker stopped beating, as ``interrupted`` (periodic: see settings).

    Connected clients' consumers do this for the threads they show; this covers the rest.
    """
    try:
        return stream_sweep_stale()
    except OUTAGE_ERRORS as exc:
        # The database is down: the next run, a few seconds on, tries again.
        logger.warning("stale stream sweep skipped: %s", exc)
        return 0


# The retention prune runs with the other periodic sweeps (every few seconds) but acts at most
# this often, in every process together (the cache is shared on the production stack).
PRUNE_EVERY_SECONDS = 600
PRUNE_BATCHES_PER_RUN = 20


@shared_task(name="messaging.prune_metrics", ignore_result=True)
def prune_metrics() -> int:
    """Delete reply metrics (and their rollups) older than REPLY_METRICS_RETENTION_DAYS (periodic: see settings)."""
    days = settings.REPLY_METRICS_RETENTION_DAYS
    if not days or not cache.add("messaging:prune-metrics", 1, timeout=PRUNE_EVERY_SECONDS):
        return 0
    before = timezone.now() - timedelta(days=days)
    deleted = 0
    try:
        for _ in range(PRUNE_BATCHES_PER_RUN):
            if not (batch := reply_metrics_prune(before=before)):
                break
            deleted += batch
        reply_rollup_prune(before=before)
    except OUTAGE_ERRORS as exc:
        logger.warning("reply metrics prune skipped: %s", exc)
    if deleted:
        logger.info("pruned %d reply metric(s) older than %d days", deleted, days)
    return deleted


# The roll-up runs with the other sweeps but acts at most this often in all processes together;
# a run rolls up at most this many hours (the first, a back-fill, goes on at the next runs).
ROLLUP_EVERY_SECONDS = 60
ROLLUP_HOURS_PER_RUN = 7 * 24


@shared_task(name="messaging.rollup_metrics", ignore_result=True)
def rollup_metrics() -> int:
    """Roll up the reply metrics of the hours closed since the last run (periodic: see settings)."""
    if not cache.add("messaging:rollup-metrics", 1, timeout=ROLLUP_EVERY_SECONDS):
        return 0
    try:
        return reply_rollup_run(max_hours=ROLLUP_HOURS_PER_RUN)
    except OUTAGE_ERRORS as exc:
        logger.warning("reply metrics roll-up skipped: %s", exc)
        return 0

"""Celery tasks of messaging. Thin: the work is in ``messaging.services``."""

from __future__ import annotations

import logging

from celery import shared_task

from chatproject.errors import OUTAGE_ERRORS

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

"""Celery tasks of the agent. Thin: the work is in ``agent.services``."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from celery.signals import worker_init, worker_process_init

from chatproject.errors import OUTAGE_ERRORS

from .services import reply_sweep_unanswered, reply_to_message

logger = logging.getLogger(__name__)


@worker_process_init.connect
def warm_up_agent(**kwargs: Any) -> None:
    """Load DSPy and build the program's pieces before the first task: about 0.4 s otherwise
    paid by the first reply each worker process gives."""
    _warm_up()


@worker_init.connect
def warm_up_thread_pool_worker(sender: Any = None, **kwargs: Any) -> None:
    """A worker whose pool runs tasks in its own process (``--pool threads``, ``solo``, gevent)
    starts no pool processes, so ``worker_process_init`` never comes: warm up here instead. A prefork
    worker's pool processes warm up themselves (the parent runs no task)."""
    pool = getattr(sender, "pool_cls", "prefork")  # a name, or the class the command line chose
    if "prefork" not in f"{getattr(pool, '__module__', '')}.{pool}" and pool != "processes":
        _warm_up()


def _warm_up() -> None:
    from .program import warm_up
    from .sandbox import sandbox_status

    try:
        warm_up()
    except Exception:
        logger.exception("warming up the agent failed; the first reply will load it")
    # Say which isolation runs users' code in this worker (logged once per process).
    sandbox_status()


@shared_task(name="agent.reply", ignore_result=True)
def agent_reply(message_id: str) -> str | None:
    """Stream and persist the agent's reply to one user message.

    Safe to deliver twice (acks_late redelivers after a lost worker): a message gets one stream.
    """
    message = reply_to_message(message_id)
    return str(message.pk) if message else None


@shared_task(name="agent.sweep_unanswered", ignore_result=True)
def sweep_unanswered() -> dict[str, int]:
    """Queue again the replies the broker never ran (periodic: see settings)."""
    try:
        return reply_sweep_unanswered()
    except OUTAGE_ERRORS as exc:
        # The database is down: the next run, a few seconds on, tries again.
        logger.warning("unanswered message sweep skipped: %s", exc)
        return {}

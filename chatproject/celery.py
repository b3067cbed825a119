"""The Celery application. With no REDIS_URL tasks run in-process (eager); see settings."""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

from celery import Celery
from celery.signals import before_task_publish, setup_logging, task_postrun, task_prerun
from celery.worker.consumer import Consumer as CeleryConsumer
from kombu.transport import redis as kombu_redis

from chatproject.logs import clean_request_id, current_request_id

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")

logger = logging.getLogger(__name__)

app = Celery("chatproject")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# The task header that carries the request id of whatever queued a task (an HTTP request, a
# WebSocket connection) to the worker, where its log lines carry it too.
REQUEST_ID_HEADER = "request_id"


@setup_logging.connect
def use_django_logging(**kwargs: Any) -> None:
    """Leave logging to Django's LOGGING (our format, filters and LOG_LEVEL) in workers and beat.

    Celery otherwise replaces the root logger's handlers with its own format, and with them the
    redaction filter. (Connecting to this signal is how Celery is told to keep its hands off.)
    """
    import logging.config

    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)


@before_task_publish.connect
def add_request_id_header(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    if headers is not None and (request_id := current_request_id.get()):
        headers.setdefault(REQUEST_ID_HEADER, request_id)


@task_prerun.connect
def restore_request_id(task: Any = None, **kwargs: Any) -> None:
    """Set the request id of the task's message for its run. An eager task (no broker: run in the
    caller) keeps the caller's; a worker's task without one has none, not the previous task's."""
    if task is None:
        return
    request = task.request
    carried = clean_request_id(getattr(request, REQUEST_ID_HEADER, None))
    request.previous_request_id = current_request_id.get()
    current_request_id.set(carried or (request.previous_request_id if request.is_eager else None))


@task_postrun.connect
def forget_request_id(task: Any = None, **kwargs: Any) -> None:
    if task is not None:
        current_request_id.set(getattr(task.request, "previous_request_id", None))


class Consumer(CeleryConsumer):
    """The worker's broker consumer, reconnecting every second after the broker is lost.

    Celery calls kombu's ``ensure_connection`` without intervals, so kombu's defaults apply
    (2, 4, 6 ... 30 s between attempts): measured here, a worker sat idle about 30 s after a 3 s
    Redis outage. The intervals come from ``redis_options.BROKER_RECONNECT``.
    """

    def ensure_connected(self, conn: Any) -> Any:
        from chatproject.redis_options import BROKER_RECONNECT

        conn.ensure_connection = functools.partial(conn.ensure_connection, **BROKER_RECONNECT)
        return super().ensure_connected(conn)


class RedisChannel(kombu_redis.Channel):
    """kombu's Redis channel, still able to reach Redis after Celery detached its connection.

    When the broker goes away while a task runs, Celery 5.7 ``collect()``s the lost connection,
    which detaches the transport from it (``client = None``) even though closing the channel
    failed; the channel is then closed again and, once the task ends, acknowledges it, and both
    build a new connection pool from ``self.connection.client``: kombu 5.7 raised AttributeError,
    which Celery does not expect, and the worker logged "Unrecoverable error" and shut down
    (measured here: a Redis restart during a reply stopped the worker for good). The parameters
    the channel connected with are kept, so the restore and the ack reach the broker again, or
    fail with a connection error Celery handles.
    """

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        known = self.__dict__.setdefault("_known_connparams", {})
        if self.connection.client is None and asynchronous in known:
            return dict(known[asynchronous])
        params = super()._connparams(asynchronous=asynchronous)
        known[asynchronous] = dict(params)
        return params


class RedisTransport(kombu_redis.Transport):
    Channel = RedisChannel

"""The Celery application. With no REDIS_URL tasks run in-process (eager); see settings."""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

from celery import Celery
from celery.worker.consumer import Consumer as CeleryConsumer
from kombu.transport import redis as kombu_redis

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")

logger = logging.getLogger(__name__)

app = Celery("chatproject")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


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

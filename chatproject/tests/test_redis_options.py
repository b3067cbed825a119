"""The Redis and Celery settings the outage fixes rely on, pinned against the installed libraries.

A dependency bump that moves a blocking read, renames an option or resets a default fails here
instead of in production (redis-py 8 moving ``socket_timeout`` to 5 s is how idle WebSockets
started dying). The production settings are built in a fresh process with REDIS_URL set, once
with the default channel layer (pubsub) and once with CHANNEL_LAYER_BACKEND=core; no Redis is
contacted. Only the check of the pubsub listener's reads needs a real Redis (REDIS_URL).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from channels_redis.core import RedisChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer
from kombu.transport import redis as kombu_redis

from chatproject import redis_options

ROOT = Path(__file__).resolve().parents[2]

# Run in a process configured for production: what each client would connect with.
INSPECT = r"""
import json, django
django.setup()
from django.conf import settings
from django.core.cache import caches
from channels.layers import get_channel_layer
from chatproject.celery import app

from channels_redis.core import RedisChannelLayer

layer = get_channel_layer()
if isinstance(layer, RedisChannelLayer):
    layer_conn = layer.create_pool(0).make_connection()  # core: one pool per host
else:
    # pubsub: a layer per event loop (so built in one), a shard per host, whose PUBLISH and
    # SUBSCRIBE connections come from one pool.
    import asyncio

    async def pubsub_connection():
        shard = layer._get_layer()._shards[0]
        shard._ensure_redis()
        assert shard._pubsub.connection_pool is shard._redis.connection_pool
        return shard._pubsub.connection_pool.make_connection()

    layer_conn = asyncio.run(pubsub_connection())
cache_client = caches["default"]._cache
cache_conn = cache_client._get_connection_pool(write=True).make_connection()

def conn_info(conn):
    return {
        "socket_timeout": conn.socket_timeout,
        "socket_connect_timeout": conn.socket_connect_timeout,
        "socket_keepalive": conn.socket_keepalive,
        "health_check_interval": conn.health_check_interval,
        "retries": conn.retry.get_retries(),
        "retry_on": sorted(e.__name__ for e in conn.retry._supported_errors),
        "retry_class": type(conn.retry).__module__,
    }

conf = app.conf
print("INFO=" + json.dumps({
    "layer_class": type(layer).__name__,
    "layer": conn_info(layer_conn),
    "cache": conn_info(cache_conn),
    "broker_transport": conf.broker_transport,
    "broker_transport_options": conf.broker_transport_options,
    "worker_consumer": conf.worker_consumer,
    "broker_connection_max_retries": conf.broker_connection_max_retries,
    "task_publish_retry_policy": conf.task_publish_retry_policy,
    "cancel_on_connection_loss": conf.worker_cancel_long_running_tasks_on_connection_loss,
    "beat_schedule": {
        k: {"task": v["task"], "schedule": v["schedule"], "expires": v["options"]["expires"]}
        for k, v in conf.beat_schedule.items()
    },
    "sweep_interval": settings.SWEEP_INTERVAL_SECONDS,
    "periodic_in_process": settings.PERIODIC_JOBS_IN_PROCESS,
}))
"""


# CHANNEL_LAYER_BACKEND unset (the default) and core: the options of both layers' connections.
@pytest.fixture(
    scope="module", params=[("", "RedisPubSubChannelLayer"), ("core", "RedisChannelLayer")], ids=["pubsub", "core"]
)
def production(request, tmp_path_factory):
    backend, expected_class = request.param
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env.update(
        REDIS_URL="redis://127.0.0.1:1/0",  # never contacted
        CHANNEL_LAYER_BACKEND=backend,
        DEBUG="1",
        DJANGO_SETTINGS_MODULE="chatproject.settings",
        VAR_DIR=str(tmp_path_factory.mktemp("var")),
    )
    result = subprocess.run(
        [sys.executable, "-c", INSPECT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("INFO="))
    info = json.loads(line.removeprefix("INFO="))
    assert info["layer_class"] == expected_class
    return info


def test_the_blocking_reads_the_timeouts_are_sized_for_have_not_moved():
    assert RedisChannelLayer.brpop_timeout == redis_options.LAYER_BLOCKING_READ_SECONDS
    assert kombu_redis.Transport.brpop_timeout == redis_options.BROKER_BLOCKING_READ_SECONDS
    assert redis_options.BROKER_SOCKET_TIMEOUT > 2 * redis_options.BROKER_BLOCKING_READ_SECONDS


class ConnectCounter:
    def __init__(self) -> None:
        self.connects = 0

    async def connected(self, _connection: object) -> None:
        self.connects += 1


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis: the listener's reads are watched live")
def test_the_pubsub_listener_reads_do_not_use_the_socket_timeout(caplog):
    """Why the pubsub layer's subscriber survives idle periods whatever socket_timeout is.

    A subscriber is left idle for several times a short socket_timeout. If channels-redis's
    listener read with it (as core's BZPOPMIN does), each read would time out and the listener
    would reconnect and subscribe again; it must instead keep its one connection and still
    deliver the next group event.
    """
    url = os.environ["REDIS_URL"]
    short = 0.2
    # PUBLISH reaches every database of the server: a unique prefix keeps other runs apart.
    prefix = f"test-redis-options-{uuid.uuid4().hex}"
    host = redis_options.channel_layer_host(url, socket_timeout=short)

    async def scenario() -> tuple[int, dict]:
        receiver = RedisPubSubChannelLayer(hosts=[host], prefix=prefix)
        sender = RedisPubSubChannelLayer(hosts=[host], prefix=prefix)
        channel = await receiver.new_channel()
        await receiver.group_add("idle", channel)
        shard = receiver._get_layer()._shards[0]
        counter = ConnectCounter()
        # redis-py keeps weak references to its connect callbacks: a bound method of a live object.
        shard._pubsub.connection.register_connect_callback(counter.connected)
        await asyncio.sleep(8 * short)
        await sender.group_send("idle", {"type": "after.idle"})
        async with asyncio.timeout(5):
            message = await receiver.receive(channel)
        await receiver.flush()
        await sender.flush()
        return counter.connects, message

    with caplog.at_level(logging.ERROR, logger="channels_redis.pubsub"):
        connects, message = asyncio.run(scenario())
    assert message == {"type": "after.idle"}
    assert connects == 0, "the idle subscriber's connection was replaced"
    assert not [record for record in caplog.records if record.name == "channels_redis.pubsub"]


def test_the_channel_layer_reads_never_time_out_and_stale_connections_are_replaced(production):
    layer = production["layer"]
    # No read timeout: a quiet core consumer waits on BZPOPMIN for as long as it likes; pubsub's
    # commands (SUBSCRIBE in a consumer's connect) stay out of wait_for (see redis_options).
    assert layer["socket_timeout"] is None
    assert 0 < layer["socket_connect_timeout"] <= 2
    assert layer["socket_keepalive"] is True
    assert 0 < layer["health_check_interval"] <= 30
    assert layer["retries"] >= 1 and {"ConnectionError", "TimeoutError"} <= set(layer["retry_on"])
    assert layer["retry_class"] == "redis.asyncio.retry"


def test_the_cache_fails_fast_and_replaces_stale_connections(production):
    cache = production["cache"]
    assert cache["socket_timeout"] is not None and cache["socket_timeout"] <= 5
    assert 0 < cache["socket_connect_timeout"] <= 2
    assert cache["health_check_interval"] > 0
    assert cache["retries"] >= 1 and {"ConnectionError", "TimeoutError"} <= set(cache["retry_on"])
    assert cache["retry_class"] == "redis.retry"


def test_celery_reconnects_every_second_for_as_long_as_it_takes(production):
    assert production["worker_consumer"] == "chatproject.celery:Consumer"
    assert redis_options.BROKER_RECONNECT["interval_max"] <= 1
    assert production["broker_connection_max_retries"] is None
    assert production["broker_transport"] == "chatproject.celery:RedisTransport"
    assert production["cancel_on_connection_loss"] is False
    options = production["broker_transport_options"]
    assert options["socket_timeout"] == redis_options.BROKER_SOCKET_TIMEOUT
    # kombu hands on only the options it knows: each of ours must be one of them.
    assert set(options) <= set(kombu_redis.Channel.from_transport_options)
    policy = production["task_publish_retry_policy"]
    assert policy["max_retries"] * policy["interval_max"] <= 2, "a request would wait long on a dead broker"


def test_beat_sends_the_sweeps_and_webhook_deliveries_every_interval_and_no_thread_does(production):
    schedule = production["beat_schedule"]
    assert {entry["task"] for entry in schedule.values()} == {
        "messaging.sweep_streams",
        "agent.sweep_unanswered",
        "webhooks.deliver_due",
        "messaging.prune_metrics",
        "messaging.rollup_metrics",
        "webhooks.prune_events",
    }
    assert {entry["schedule"] for entry in schedule.values()} == {production["sweep_interval"]}
    # Dropped only when far behind: a sweep waiting behind a short backlog of replies still runs.
    assert all(entry["expires"] >= 30 for entry in schedule.values())
    assert production["periodic_in_process"] is False

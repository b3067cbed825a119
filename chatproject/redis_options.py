"""How every Redis client of the project connects: the channel layer, the cache and Celery's broker.

One place, because the outage this prevents came from a default that changed under us: redis-py 8
made ``socket_timeout`` default to 5 s, while channels-redis 4.3's ``RedisChannelLayer`` (core)
blocks up to 5 s reading group events (``BZPOPMIN``), so every quiet WebSocket was closed with 1011
after about 5.5 s. Each value below says why it is what it is, for both channel layers
(``CHANNEL_LAYER_BACKEND``: ``pubsub``, the default, and ``core``), and
``chatproject/tests/test_redis_options.py`` pins what it depends on (channels-redis's and kombu's
blocking reads, redis-py's defaults) so that a dependency bump that moves them fails a test
instead of production.

Pinned against redis-py 8.1, channels-redis 4.3, kombu 5.7 and celery 5.7.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio.retry
import redis.retry
from redis.backoff import ExponentialWithJitterBackoff

# The longest read any client here blocks on, waiting for the server to have something:
# channels-redis's core layer waits for a consumer's events with BZPOPMIN of
# RedisChannelLayer.brpop_timeout (5 s); kombu waits for tasks with BRPOP of its
# Transport.brpop_timeout (1 s).
LAYER_BLOCKING_READ_SECONDS = 5
BROKER_BLOCKING_READ_SECONDS = 1
# The pubsub layer reads differently: consumers wait on a queue in their process, and one listener
# task per process reads the SUBSCRIBE connection with PubSub.get_message(timeout=0.1) in a loop.
# redis-py applies that per-call timeout instead of socket_timeout and answers None when it
# expires, without disconnecting, so a read timeout cannot end an idle subscriber, whatever
# socket_timeout is (test_redis_options checks this against a real Redis). socket_timeout only
# bounds its commands: SUBSCRIBE and UNSUBSCRIBE (a consumer's connect and close), and PUBLISH.

# How long a read may wait for Redis's answer.
# The core layer's reads block by design, so they get no timeout at all (None), which the
# issue allows ("or none for those reads") and which is the only safe value here: with any
# timeout, redis-py sends each command through asyncio.wait_for, and on Python 3.11 wait_for can
# swallow a cancellation that lands as the send completes. A consumer closing right after it
# connected then left its channel-layer read looping on BZPOPMIN for ever, and its client waited
# 20 s for the close (measured here after a Redis restart). A peer that vanished is found by TCP
# keepalive below; a Redis that stops answering by messaging.layer_watch, whose own client has a
# short timeout, and which closes the consumers.
# The pubsub layer gets None too. Its listener's reads do not depend on it (see the blocking
# reads above), so a finite value would only bound its commands, and buy them
# the same wait_for: a consumer's SUBSCRIBE (group_add, in its connect) and UNSUBSCRIBE (its
# close) are the commands a cancellation lands on. What a finite value would have bounded, a
# PUBLISH to a Redis that stopped answering (holding its shard's lock in that process meanwhile),
# layer_watch covers as for core: it closes the consumers and refuses new ones until Redis
# answers, and the PUBLISH completes then.
LAYER_SOCKET_TIMEOUT = None
# kombu's BRPOP: well above its blocking read (ten times it), so a quiet worker never times out;
# finite, so a broker that stops answering without closing the connection (a frozen host, a
# half-open TCP connection) is given up on and reconnected instead of holding the worker.
BROKER_SOCKET_TIMEOUT = 10 * BROKER_BLOCKING_READ_SECONDS
# The cache and the layer watch never block: Redis answers their commands in well under a
# millisecond, and a request checking a rate limit should not wait longer than this on a server
# that stopped answering.
CACHE_SOCKET_TIMEOUT = 2

# Connecting takes milliseconds between hosts on one network (TLS included): a connect that takes
# longer than this means Redis is down or unreachable, and the caller (a request, a consumer)
# should learn it now and answer "unavailable", not after redis-py's default of 5 s per attempt.
SOCKET_CONNECT_TIMEOUT = 1

# A pooled connection unused this long is PINGed before its next command, so a connection left
# over from before a Redis restart is found dead and reconnected (through the retry below) rather
# than failing its first command with "Connection closed by server". Short enough that a restart
# is noticed on first use after it; long enough that busy connections never pay for the PING.
# The pubsub layer's listener PINGs its SUBSCRIBE connection this often too (redis-py's PubSub
# does, and drops the answer): a Redis host that came back after vanishing answers the PING with
# a reset, and the listener reconnects and subscribes again within this interval instead of
# waiting out TCP keepalive.
HEALTH_CHECK_INTERVAL = 10

# TCP keepalive lets the kernel notice a peer that vanished (host down, network partition) while
# a connection sits in a blocking read that has no timeout, or would otherwise wait for it
# (redis-py's probes: after 30 s idle, every 5 s, 3 times).
SOCKET_KEEPALIVE = True

# A command that failed on a connection error or a timeout is retried this many times on a new
# connection (for the pubsub layer's SUBSCRIBE connection, redis-py's PubSub reconnects through
# this retry and subscribes again to every channel and group it had), after a short jittered
# back-off (at most 0.1, 0.2, 0.4 s: well under a second in all). Enough to replace stale pooled
# connections after a restart and ride out a blip; short enough that a Redis that stays down is
# reported within about a second, so REST answers and WebSocket consumers close promptly instead of
# hanging. Jitter keeps many processes that lost Redis at the same moment from reconnecting in
# lockstep.
RETRIES = 3
BACKOFF_BASE_SECONDS = 0.05
BACKOFF_CAP_SECONDS = 0.5

# Celery's worker reconnects to a lost broker with kombu's ensure_connection back-off, which
# Celery does not let us configure: 2, 4, 6 ... up to 30 s between attempts, so a worker stayed
# idle about 30 s after a 3 s Redis outage. chatproject.celery.Consumer passes these instead:
# try again every second, so a worker takes tasks again within a second or two of Redis's return.
BROKER_RECONNECT = {"interval_start": 0, "interval_step": 0.5, "interval_max": 1}

# Publishing a task (agent.reply from a request) while the broker is down: a few quick retries,
# then give up within about a second. The message is already stored and the periodic sweep
# queues its reply once the broker is back (see agent.services.reply_sweep_unanswered), so
# holding the request longer would only make the client wait.
TASK_PUBLISH_RETRY_POLICY = {"max_retries": 3, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}


def _backoff() -> ExponentialWithJitterBackoff:
    return ExponentialWithJitterBackoff(base=BACKOFF_BASE_SECONDS, cap=BACKOFF_CAP_SECONDS)


def _common() -> dict[str, Any]:
    return {
        "socket_connect_timeout": SOCKET_CONNECT_TIMEOUT,
        "socket_keepalive": SOCKET_KEEPALIVE,
        "health_check_interval": HEALTH_CHECK_INTERVAL,
    }


def channel_layer_host(url: str, **extra: Any) -> dict[str, Any]:
    """A ``hosts`` entry of channels-redis (passed to ``redis.asyncio.ConnectionPool.from_url``).

    The same for both layers: core and pubsub each build their pool from it (pubsub's PUBLISH
    and SUBSCRIBE connections share one pool per event loop).
    """
    return {
        "address": url,
        **_common(),
        "socket_timeout": LAYER_SOCKET_TIMEOUT,
        "retry": redis.asyncio.retry.Retry(_backoff(), RETRIES),
        **extra,
    }


def cache_options() -> dict[str, Any]:
    """``OPTIONS`` of Django's RedisCache (passed to ``redis.ConnectionPool.from_url``)."""
    return {**_common(), "socket_timeout": CACHE_SOCKET_TIMEOUT, "retry": redis.retry.Retry(_backoff(), RETRIES)}


def async_client_options() -> dict[str, Any]:
    """Options of a ``redis.asyncio`` client that never blocks (the channel layer's watch)."""
    return {
        **_common(),
        "socket_timeout": CACHE_SOCKET_TIMEOUT,
        "retry": redis.asyncio.retry.Retry(_backoff(), RETRIES),
    }


def broker_transport_options() -> dict[str, Any]:
    """Celery's ``broker_transport_options`` for kombu's Redis transport.

    kombu takes no redis-py ``retry``: it reconnects itself (publishes through
    TASK_PUBLISH_RETRY_POLICY, the worker through BROKER_RECONNECT). Its own check of the BRPOP
    connection runs every ``health_check_interval`` too.
    """
    return {**_common(), "socket_timeout": BROKER_SOCKET_TIMEOUT}

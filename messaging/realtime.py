"""Sending events to everyone connected to a thread, from sync code (services, Celery tasks).

Events go to the thread's channel-layer group; every consumer in the group relays them to its
WebSocket client. Delivery through the layer is at-most-once, so nothing relies on it alone:
rows are persisted first, stream chunks carry a ``seq``, and clients resync on a gap.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import uuid
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer

from chatproject.errors import OUTAGE_ERRORS

logger = logging.getLogger(__name__)

# The event loop serving WebSockets in this process, set by the consumer. The in-memory layer
# keeps asyncio queues that belong to that loop, so sends from other threads must run on it.
_home_loop: asyncio.AbstractEventLoop | None = None
_home_loop_lock = threading.Lock()


def thread_group(thread_id: uuid.UUID | str) -> str:
    return f"thread.{thread_id}"


def user_group(user_id: Any) -> str:
    """Every connection of one user, whatever the thread: for closing them when they sign out."""
    return f"user.{user_id}"


def register_home_loop(loop: asyncio.AbstractEventLoop) -> None:
    global _home_loop
    with _home_loop_lock:
        _home_loop = loop


_sender_loop: asyncio.AbstractEventLoop | None = None
_sender_pid: int | None = None


def _sender() -> asyncio.AbstractEventLoop:
    """A loop in a daemon thread of this process, kept for its publishes to a networked layer.

    ``async_to_sync`` would make a new loop, and so a new Redis connection, for every publish
    (about 4 ms each, measured); this one keeps its connections. Made again after a fork.
    """
    global _sender_loop, _sender_pid
    with _home_loop_lock:
        if _sender_loop is None or _sender_pid != os.getpid():
            _sender_loop = asyncio.new_event_loop()
            _sender_pid = os.getpid()
            threading.Thread(target=_sender_loop.run_forever, name="channel-layer-sender", daemon=True).start()
        return _sender_loop


def thread_broadcast(thread_id: uuid.UUID | str, event: dict[str, Any]) -> None:
    """Send ``event`` (a channel-layer message with a ``type``) to the thread's group.

    Never raises: a failed broadcast is logged, the persisted rows stay the source of truth.
    """
    group_broadcast(thread_group(thread_id), event)


def connections_close(group: str, reason: str, **match: str) -> None:
    """Close the connections in ``group`` (those whose credential digests equal ``match``, if given).

    ``reason`` (``thread_deleted``, ``signed_out``) picks the close code in the consumer. Call it
    after the change commits: a client told to go away must find the change when it looks.
    """
    group_broadcast(group, {"type": "connection.close", "reason": reason, **match})


def group_broadcast(group: str, event: dict[str, Any]) -> None:
    """Send ``event`` to a group from sync code; never raises (a failure is logged)."""
    groups_broadcast([(group, event)])


def groups_broadcast(sends: list[tuple[str, dict[str, Any]]]) -> None:
    """Send each ``(group, event)`` in order, from sync code, with one hand-over to the sending
    loop for all of them (a batch of chunks of many replies); never raises (failures are logged,
    one line per event that was not sent)."""
    if not sends:
        return
    layer = get_channel_layer()

    async def send_all() -> None:
        for group, event in sends:
            try:
                await layer.group_send(group, event)
            except OUTAGE_ERRORS as exc:
                # Redis is down: one line per lost event, not a traceback for every chunk of a reply.
                logger.warning("broadcast of %s to %s failed: %s", event.get("type"), group, exc)
            except Exception:
                logger.exception("broadcast of %s to %s failed", event.get("type"), group)

    try:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not None:
            # Called from async code by mistake of a caller: don't block its loop.
            running.create_task(send_all())
            return
        if isinstance(layer, InMemoryChannelLayer):
            # Its queues belong to the loop serving the WebSockets: send on that one.
            loop = _home_loop
            if loop is None or not loop.is_running():
                async_to_sync(send_all)()
                return
        else:
            loop = _sender()
        asyncio.run_coroutine_threadsafe(send_all(), loop).result(timeout=10)
    except Exception:
        logger.exception("broadcast of %d events failed", len(sends))

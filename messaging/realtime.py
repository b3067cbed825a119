"""Sending events to everyone connected to a thread, from sync code (services, Celery tasks).

Events go to the thread's channel-layer group; every consumer in the group relays them to its
WebSocket client. Delivery through the layer is at-most-once, so nothing relies on it alone:
rows are persisted first, stream chunks carry a ``seq``, and clients resync on a gap.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer

logger = logging.getLogger(__name__)

# The event loop serving WebSockets in this process, set by the consumer. The in-memory layer
# keeps asyncio queues that belong to that loop, so sends from other threads must run on it.
_home_loop: asyncio.AbstractEventLoop | None = None
_home_loop_lock = threading.Lock()


def thread_group(thread_id: uuid.UUID | str) -> str:
    return f"thread.{thread_id}"


def register_home_loop(loop: asyncio.AbstractEventLoop) -> None:
    global _home_loop
    with _home_loop_lock:
        _home_loop = loop


def thread_broadcast(thread_id: uuid.UUID | str, event: dict[str, Any]) -> None:
    """Send ``event`` (a channel-layer message with a ``type``) to the thread's group.

    Never raises: a failed broadcast is logged, the persisted rows stay the source of truth.
    """
    layer = get_channel_layer()
    group = thread_group(thread_id)
    try:
        loop = _home_loop
        if isinstance(layer, InMemoryChannelLayer) and loop is not None and loop.is_running():
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is not loop:
                asyncio.run_coroutine_threadsafe(layer.group_send(group, event), loop).result(timeout=5)
                return
        async_to_sync(layer.group_send)(group, event)
    except Exception:
        logger.exception("broadcast of %s to %s failed", event.get("type"), group)

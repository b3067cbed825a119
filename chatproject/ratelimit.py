"""Event counters per fixed time window in the shared cache (Redis when configured).

Every process of a deployment counts into the same keys, so a limit holds across Daphne
processes and workers. ``cache.add`` + ``cache.incr`` are atomic on Redis. While the shared cache
is down (a Redis outage), each process counts in memory of its own: limits still hold per
process, and what they guard (sending a message, logging in) keeps working.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from django.core.cache import cache
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.locmem import LocMemCache

from .errors import OUTAGE_ERRORS

# Where counts go while the shared cache is unreachable.
local_counts = LocMemCache("ratelimit-while-cache-is-down", {})


@dataclass(frozen=True)
class WindowCount:
    """Events counted in the current window and in the one before it."""

    current: int
    previous: int
    # Seconds until the current window ends.
    seconds_left: int


def _index(now: float, window: int) -> int:
    return int(now // window)


def window_seconds_left(window: int) -> int:
    """Seconds until the current window of ``window`` seconds ends (at least 1)."""
    return max(1, math.ceil(window - time.time() % window))


def _hit(counter: BaseCache, key: str, window: int) -> int:
    # Kept for two windows: window_count reads the previous one too.
    counter.add(key, 0, timeout=2 * window + 1)
    try:
        return counter.incr(key)
    except ValueError:  # the key expired between add and incr
        counter.set(key, 1, timeout=2 * window + 1)
        return 1


def window_hit(name: str, *, window: int) -> int:
    """Count one event under ``name`` in the current window of ``window`` seconds; the count so far."""
    key = f"{name}:{_index(time.time(), window)}"
    try:
        return _hit(cache, key, window)
    except OUTAGE_ERRORS:
        return _hit(local_counts, key, window)


def window_count(name: str, *, window: int) -> WindowCount:
    """The events counted under ``name`` in the current and the previous window, without counting one."""
    index = _index(time.time(), window)
    current, previous = f"{name}:{index}", f"{name}:{index - 1}"
    try:
        counts = cache.get_many([current, previous])
    except OUTAGE_ERRORS:
        counts = local_counts.get_many([current, previous])
    return WindowCount(
        current=counts.get(current, 0), previous=counts.get(previous, 0), seconds_left=window_seconds_left(window)
    )

"""Event counters per fixed time window in the shared cache (Redis when configured).

Every process of a deployment counts into the same keys, so a limit holds across Daphne
processes and workers. ``cache.add`` + ``cache.incr`` are atomic on Redis.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from django.core.cache import cache


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


def window_hit(name: str, *, window: int) -> int:
    """Count one event under ``name`` in the current window of ``window`` seconds; the count so far."""
    key = f"{name}:{_index(time.time(), window)}"
    # Kept for two windows: window_count reads the previous one too.
    cache.add(key, 0, timeout=2 * window + 1)
    try:
        return cache.incr(key)
    except ValueError:  # the key expired between add and incr
        cache.set(key, 1, timeout=2 * window + 1)
        return 1


def window_count(name: str, *, window: int) -> WindowCount:
    """The events counted under ``name`` in the current and the previous window, without counting one."""
    index = _index(time.time(), window)
    current, previous = f"{name}:{index}", f"{name}:{index - 1}"
    counts = cache.get_many([current, previous])
    return WindowCount(
        current=counts.get(current, 0), previous=counts.get(previous, 0), seconds_left=window_seconds_left(window)
    )

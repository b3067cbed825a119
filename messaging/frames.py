"""Frames a client sends on the chat WebSocket: the limits checked before any work, and parsing.

This runs on the event loop for every frame, before anything else looks at it, so it only does
work that is cheap and bounded: counting, comparing lengths, one linear regular-expression scan
of a frame too long to be anything but a file. What to answer is the consumer's business.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings

from chatproject.errors import DomainError

# A browser that went a little too fast has a few frames in flight when it hears "rate_limited";
# a client that has this many refused in a row without one taken is not listening.
REFUSALS_BEFORE_CLOSE = 10

# The base64 ``data`` of a file frame. Inside a JSON string every quote is escaped, so this literal
# `"data"` followed by a colon can only be a key. Possessive, so a run without its closing quote
# fails without backtracking through it. Clients must send base64 unescaped (no JSON "\/").
_FILE_DATA = re.compile(r'"data"\s*:\s*"([A-Za-z0-9+/=]*+)"')


class BadFrame(DomainError):
    """A frame refused before any handler saw it; ``code`` is the error event's code."""

    def __init__(self, code: str, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        if retry_after is not None:
            self.retry_after = retry_after


class TokenBucket:
    """``capacity`` tokens, refilled continuously at ``per_second``: bursts up to capacity, then the rate."""

    def __init__(self, capacity: int, per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = capacity
        self.per_second = per_second
        self.clock = clock
        self.tokens = float(capacity)
        self.updated = clock()

    def take(self, amount: int = 1) -> float:
        """Take ``amount`` tokens and return 0; or take none and return the seconds until there are enough."""
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.per_second)
        self.updated = now
        if self.tokens >= amount:
            self.tokens -= amount
            return 0.0
        return (amount - self.tokens) / self.per_second


def _retry_after(wait: float) -> int:
    return max(1, math.ceil(wait))


class FrameGate:
    """One connection's limits on what it sends: frames of any kind, and characters.

    ``admit`` is asked about every frame before it is parsed or queued; the consumer reports
    each frame it refused (``refused``, True when the connection should be closed) or took.
    """

    def __init__(
        self, *, frames: tuple[int, int], chars: tuple[int, int], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.frames = TokenBucket(frames[0], frames[0] / frames[1], clock)
        self.chars = TokenBucket(chars[0], chars[0] / chars[1], clock)
        self.refusals = 0

    def admit(self, size: int) -> BadFrame | None:
        """None when a frame of ``size`` characters may go on; else the refusal to answer."""
        if wait := self.frames.take():
            seconds = _retry_after(wait)
            return BadFrame("rate_limited", f"Too many frames: try again in {seconds} s.", retry_after=seconds)
        # A frame over the frame limit is refused as too large, unread: it spends no budget.
        if size <= settings.WEBSOCKET_MAX_FRAME_BYTES and (wait := self.chars.take(size)):
            seconds = _retry_after(wait)
            return BadFrame("rate_limited", f"Too much data: try again in {seconds} s.", retry_after=seconds)
        return None

    def refused(self) -> bool:
        self.refusals += 1
        return self.refusals >= REFUSALS_BEFORE_CLOSE

    def taken(self) -> None:
        self.refusals = 0


def too_large() -> BadFrame:
    return BadFrame("too_large", f"Frames are limited to {settings.WEBSOCKET_MAX_FRAME_BYTES} characters.")


def _loads(text: str) -> dict[str, Any]:
    try:
        frame = json.loads(text)
    except ValueError:
        raise BadFrame("invalid_json", "The frame is not valid JSON.") from None
    except RecursionError:
        raise BadFrame("invalid_json", "The frame is nested too deeply.") from None
    if not isinstance(frame, dict):
        raise BadFrame("invalid_json", "The frame must be a JSON object.")
    return frame


def parse_frame(text: str) -> dict[str, Any]:
    """The frame as a JSON object; BadFrame (``invalid_json``, ``too_large``) when it is not one.

    A frame longer than any frame but a file is not handed to ``json.loads`` whole (a 13 MB frame
    of empty objects takes it over a second and 300 MB): the file's base64 data is cut out, the
    rest (no longer than a text frame) is parsed, and the data put back.
    """
    if len(text) > settings.WEBSOCKET_MAX_FRAME_BYTES:
        raise too_large()
    limit = settings.WEBSOCKET_MAX_TEXT_FRAME_CHARS
    if len(text) <= limit:
        return _loads(text)
    match = _FILE_DATA.search(text)
    if match is None or len(text) - (match.end(1) - match.start(1)) > limit:
        raise BadFrame(
            "too_large",
            f"Frames over {limit} characters must be file frames whose base64 data makes up the excess.",
        )
    frame = _loads(text[: match.start(1)] + text[match.end(1) :])
    if frame.get("type") != "file" or frame.get("data") != "":
        raise BadFrame("too_large", f"Only a file frame's data may take a frame over {limit} characters.")
    frame["data"] = match.group(1)
    return frame

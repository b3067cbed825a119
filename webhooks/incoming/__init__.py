"""Incoming webhook handlers: one module each, registered by kind.

A handler checks a request's signature against the endpoint's secret and turns its body into an
``Incoming`` message (or None for an event it acknowledges and ignores). It raises
``webhooks.signing.SignatureError`` for a bad signature and InvalidInput for a bad body, and
stores nothing itself. To add one: a module here with a function decorated ``@register("kind")``,
imported at the bottom of this file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Incoming:
    content: str
    delivery_id: str  # the sender's id of this delivery: the same id twice stores one message
    reply: bool = True
    metadata: dict[str, Any] = field(default_factory=dict)


class Handler(Protocol):
    def __call__(self, *, secret: str, headers: dict[str, str], body: bytes, now: float) -> Incoming | None: ...


HANDLERS: dict[str, Handler] = {}


def register(kind: str) -> Callable[[Handler], Handler]:
    def add(handler: Handler) -> Handler:
        HANDLERS[kind] = handler
        return handler

    return add


from . import generic, github  # noqa: E402, F401  (registers the handlers)

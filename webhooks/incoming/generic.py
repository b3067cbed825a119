"""The generic handler: a Standard Webhooks signed JSON ``{"content", "reply", "metadata"}``."""

from __future__ import annotations

import json
from typing import Any

from chatproject.errors import InvalidInput

from .. import conf, signing
from . import Incoming, register


@register("generic")
def receive(*, secret: str, headers: dict[str, str], body: bytes, now: float) -> Incoming:
    signing.verify(
        secret=secret,
        msg_id=headers.get("webhook-id", ""),
        timestamp=headers.get("webhook-timestamp", ""),
        signatures=headers.get("webhook-signature", ""),
        body=body,
        now=now,
        tolerance=conf.TIMESTAMP_TOLERANCE_SECONDS,
    )
    try:
        payload: Any = json.loads(body)
    except (ValueError, RecursionError):
        raise InvalidInput.field("body", "Must be a JSON object.") from None
    if not isinstance(payload, dict):
        raise InvalidInput.field("body", "Must be a JSON object.")
    content = payload.get("content")
    if not isinstance(content, str):
        raise InvalidInput.field("content", "Must be a string.")
    reply = payload.get("reply", True)
    if not isinstance(reply, bool):
        raise InvalidInput.field("reply", "Must be true or false.")
    metadata = payload.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise InvalidInput.field("metadata", "Must be a JSON object.")
    return Incoming(content=content, delivery_id=headers["webhook-id"], reply=reply, metadata=metadata)

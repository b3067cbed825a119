"""The chat WebSocket's wire format: every event the server sends, every frame a client sends.

One constructor per server-to-client event; the services (which broadcast through the channel
layer) and the consumer (which answers frames and replays from the database) both build their
events here and nowhere else. ``docs/asyncapi.yaml`` publishes the same protocol, and a test checks
that the two name the same events and that what the server really sends matches the document.

The client frames' shapes are here for the document and for the consumer's list of known types;
the consumer validates them field by field (``messaging.consumers``).
"""

# No ``from __future__ import annotations``: the TypedDicts' required and optional keys are read at
# run time (the document's test compares them), and string annotations hide ``NotRequired``.
from typing import Any, Literal, NotRequired, TypedDict

from chatproject.errors import DomainError

# --- Close codes (after the handshake) ------------------------------------------------------------

CLOSE_UNAUTHENTICATED = 4401  # also: signed out, deactivated, or the token deleted while connected
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_THREAD_DELETED = 4410
CLOSE_TOO_MANY = 4429  # kept sending while refused (rate limited, or its queue full)
# The channel layer (Redis) or the database failed under the connection: reconnect with ?after=.
CLOSE_UNAVAILABLE = 4503


# --- Client to server -----------------------------------------------------------------------------


class MessageFrame(TypedDict):
    type: Literal["message"]
    content: str
    client_id: NotRequired[str]
    metadata: NotRequired[dict[str, Any]]
    parent: NotRequired[str | None]


class FileFrame(TypedDict):
    type: Literal["file"]
    filename: str
    data: str  # base64
    content_type: NotRequired[str]
    content: NotRequired[str]
    client_id: NotRequired[str]


class RegenerateFrame(TypedDict):
    type: Literal["regenerate"]
    message_id: str
    client_id: NotRequired[str]


class StopFrame(TypedDict):
    type: Literal["stop"]
    stream_id: str


class SwitchFrame(TypedDict):
    type: Literal["switch"]
    message_id: str


class ForkFrame(TypedDict):
    type: Literal["fork"]
    message_id: str
    mode: NotRequired[str]  # ForkMode: path (the default), path_with_branches, subtree


class SyncFrame(TypedDict):
    type: Literal["sync"]
    after: NotRequired[str | None]


class PingFrame(TypedDict):
    type: Literal["ping"]


ClientFrame = MessageFrame | FileFrame | RegenerateFrame | StopFrame | SwitchFrame | ForkFrame | SyncFrame | PingFrame
CLIENT_FRAME_TYPES = ("message", "file", "regenerate", "stop", "switch", "fork", "sync", "ping")


# --- Server to client -----------------------------------------------------------------------------


class MessageEvent(TypedDict):
    """A stored message, in the REST API's shape (``messaging.serializers.message_payload``)."""

    type: Literal["message"]
    message: dict[str, Any]


class StreamStartEvent(TypedDict):
    type: Literal["stream_start"]
    stream_id: str
    reply_to: str
    attempt: NotRequired[int]  # live starts carry it; a start replayed from the database does not


class StreamChunkEvent(TypedDict):
    type: Literal["stream_chunk"]
    stream_id: str
    seq: int
    delta: str


class StreamStatusEvent(TypedDict):
    """What the agent is doing: ``step`` (``tool_start``, ``tool_end``, ``model_fallback``) and its details."""

    type: Literal["stream_status"]
    stream_id: str
    step: str
    tool: NotRequired[str | None]
    input: NotRequired[Any]
    output: NotRequired[Any]
    duration_ms: NotRequired[int]
    ok: NotRequired[bool]
    error: NotRequired[str]
    model: NotRequired[str]
    message: NotRequired[str]


class StreamEndEvent(TypedDict):
    type: Literal["stream_end"]
    stream_id: str
    status: str  # ReplyStream.ENDED: complete, error, interrupted, stopped
    chunk_count: int
    message: dict[str, Any]


class ErrorEvent(TypedDict):
    type: Literal["error"]
    code: str
    message: str
    errors: NotRequired[dict[str, list[str]]]
    retry_after: NotRequired[int]
    client_id: NotRequired[str]
    # A daily quota's refusal (chatproject.errors.DailyQuotaExceeded's details).
    quota: NotRequired[str]
    limit: NotRequired[int]
    used: NotRequired[int]
    resets_at: NotRequired[str]


class PongEvent(TypedDict):
    type: Literal["pong"]


class ActiveLeafEvent(TypedDict):
    """The answer to a ``switch``: the thread's active leaf now (the newest message under the one chosen)."""

    type: Literal["active_leaf"]
    active_leaf: str


class ForkedEvent(TypedDict):
    """The answer to a ``fork``: the new thread, in the REST API's shape (``GET /api/threads/{id}/``)."""

    type: Literal["forked"]
    thread: dict[str, Any]


class ResyncRequiredEvent(TypedDict):
    """The client is too far behind to be replayed: it reloads the history, then resumes."""

    type: Literal["resync_required"]
    reason: Literal["too_far_behind"]
    after: str
    missed: int
    limit: int
    message: str


ServerEvent = (
    MessageEvent
    | StreamStartEvent
    | StreamChunkEvent
    | StreamStatusEvent
    | StreamEndEvent
    | ErrorEvent
    | PongEvent
    | ActiveLeafEvent
    | ForkedEvent
    | ResyncRequiredEvent
)
SERVER_EVENT_TYPES = (
    "message",
    "stream_start",
    "stream_chunk",
    "stream_status",
    "stream_end",
    "error",
    "pong",
    "active_leaf",
    "forked",
    "resync_required",
)


def message(payload: dict[str, Any]) -> MessageEvent:
    return {"type": "message", "message": payload}


def stream_start(stream_id: Any, *, reply_to: Any, attempt: int | None = None) -> StreamStartEvent:
    event: StreamStartEvent = {"type": "stream_start", "stream_id": str(stream_id), "reply_to": str(reply_to)}
    if attempt is not None:
        event["attempt"] = attempt
    return event


def stream_chunk(stream_id: Any, *, seq: int, delta: str) -> StreamChunkEvent:
    return {"type": "stream_chunk", "stream_id": str(stream_id), "seq": seq, "delta": delta}


def stream_status(stream_id: Any, status: dict[str, Any]) -> StreamStatusEvent:
    """``status`` is the agent's step (``step`` and its details); it cannot override type or stream."""
    return {**status, "type": "stream_status", "stream_id": str(stream_id)}  # type: ignore[typeddict-item]


def stream_end(stream_id: Any, *, status: str, chunk_count: int, message: dict[str, Any]) -> StreamEndEvent:
    return {
        "type": "stream_end",
        "stream_id": str(stream_id),
        "status": status,
        "chunk_count": chunk_count,
        "message": message,
    }


def error(
    code: str,
    message: str,
    *,
    errors: dict[str, list[str]] | None = None,
    retry_after: int | None = None,
    client_id: str | None = None,
) -> ErrorEvent:
    event: ErrorEvent = {"type": "error", "code": code, "message": message}
    if errors is not None:
        event["errors"] = errors
    if retry_after is not None:
        event["retry_after"] = retry_after
    if client_id:
        event["client_id"] = client_id
    return event


def error_for(exc: DomainError, *, client_id: str | None = None) -> ErrorEvent:
    """The error event of any domain error: its ``code``, with its ``errors``, ``retry_after`` and
    ``details`` when it has them."""
    event = error(exc.code, exc.message, errors=exc.errors, retry_after=exc.retry_after, client_id=client_id)
    event.update(exc.details)  # type: ignore[typeddict-item]
    return event


def pong() -> PongEvent:
    return {"type": "pong"}


def active_leaf(leaf_id: Any) -> ActiveLeafEvent:
    return {"type": "active_leaf", "active_leaf": str(leaf_id)}


def forked(thread: dict[str, Any]) -> ForkedEvent:
    return {"type": "forked", "thread": thread}


def resync_required(*, after: str, missed: int, limit: int) -> ResyncRequiredEvent:
    return {
        "type": "resync_required",
        "reason": "too_far_behind",
        "after": after,
        "missed": missed,
        "limit": limit,
        "message": (
            f"{missed} messages came after {after}, more than the {limit} a reconnect replays: "
            "load the thread's messages again, then resume after the newest."
        ),
    }


# --- Through the channel layer (not on the wire) --------------------------------------------------

# The channel-layer message type a thread's group gets; ``ChatConsumer.chat_event`` relays its event.
GROUP_EVENT = "chat.event"


def group_event(event: ServerEvent) -> dict[str, Any]:
    """``event`` wrapped for ``group_send`` to a thread's group."""
    return {"type": GROUP_EVENT, "event": event}

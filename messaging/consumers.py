"""The chat WebSocket: ``/ws/<thread_id>/<user_id>/``. The protocol is documented in README.md.

The consumer is thin: frames are validated here and handed to ``messaging.services``; what the
services broadcast to the thread's group is relayed to the client. Because channel-layer delivery
is at-most-once, the connection's ``StreamRelay`` (``messaging.relay``) keeps the client whole: it
drops events the client already has (replayed messages, repeated chunks) and fills gaps in a
stream from the database, through the loaders below. Every event is built by ``messaging.events``.

Frames are taken off the socket at once, checked against the connection's limits
(``messaging.frames``) before anything parses them, and queued (boundedly) for one task that
handles them in order: Channels handles one message at a time and Daphne would otherwise buffer
everything a client sends behind a slow frame, without limit.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
from typing import Any
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from rest_framework.renderers import JSONRenderer

from chatproject.errors import (
    OUTAGE_ERRORS,
    DomainError,
    InvalidInput,
    NotFound,
    ServiceUnavailable,
    TooLarge,
    as_domain_error,
)
from chatproject.websocket import credential_digest
from threads.models import ChatThread
from threads.selectors import parse_uuid, thread_get
from threads.serializers import ThreadSerializer
from threads.services import thread_update

from . import events
from .events import (
    CLIENT_FRAME_TYPES,
    CLOSE_FORBIDDEN,
    CLOSE_NOT_FOUND,
    CLOSE_THREAD_DELETED,
    CLOSE_TOO_MANY,
    CLOSE_UNAUTHENTICATED,
    CLOSE_UNAVAILABLE,
)
from .frames import BadFrame, FrameGate, parse_frame, too_large
from .layer_watch import watch_for
from .models import ForkMode, ReplyStream
from .realtime import register_home_loop, thread_group, user_group
from .relay import StreamRelay
from .selectors import (
    message_list_after,
    message_list_in_thread,
    message_tree_info,
    stream_chunk_list,
    stream_get,
    stream_list_open,
)
from .serializers import message_payload
from .services import (
    ACTIVE_LEAF,
    message_regenerate,
    message_send,
    message_send_file,
    stream_stop,
    thread_fork,
)
from .stream_watch import stream_watch

logger = logging.getLogger(__name__)

# ``messaging.realtime.connections_close`` reasons.
CLOSE_CODES = {"thread_deleted": CLOSE_THREAD_DELETED, "signed_out": CLOSE_UNAUTHENTICATED}


def _max_base64_chars() -> int:
    return 4 * -(-settings.MAX_UPLOAD_BYTES // 3)


def _thread_or_none(user: Any, thread_id: str) -> ChatThread | None:
    try:
        return thread_get(user=user, thread_id=thread_id)
    except NotFound:
        return None


def _replay(thread: ChatThread, after: str | None) -> tuple[list[dict], list[dict]]:
    """Messages after ``after`` (all when None) and the streams still open, as plain data."""
    later = message_tree_info(messages=list(message_list_after(thread=thread, after_id=after))) if after else []
    messages = [message_payload(m) for m in later]
    streams = [{"id": str(s.pk), "reply_to": str(s.reply_to_id)} for s in stream_list_open(thread_id=thread.pk)]
    return messages, streams


def _stream_state(thread_id: Any, stream_id: str, from_seq: int = 0) -> dict[str, Any] | None:
    """What the database knows of a stream: its chunks from ``from_seq`` on as ``(seq, delta)``,
    and its end when it has ended. The chunks are not read when the stream has none that new."""
    stream = stream_get(thread_id=thread_id, stream_id=stream_id)
    if stream is None:
        return None
    chunks = stream_chunk_list(stream_id=stream.pk, from_seq=from_seq) if stream.chunk_count > from_seq else []
    state: dict[str, Any] = {
        "reply_to": str(stream.reply_to_id),
        "attempt": stream.attempt,
        "chunks": chunks,
        "end": None,
    }
    if stream.status != ReplyStream.Status.STREAMING and stream.message is not None:
        message = stream.message.__class__.objects.prefetch_related("attachments").get(pk=stream.message.pk)
        state["end"] = {"status": stream.status, "chunk_count": stream.chunk_count, "message": message_payload(message)}
    return state


def _message_or_none(thread_id: Any, message_id: str) -> dict[str, Any] | None:
    message = message_list_in_thread(thread_id=thread_id).filter(pk=message_id).first()
    return message_payload(message) if message else None


def _switch_branch(user: Any, thread_id: Any, message_id: Any) -> ChatThread:
    """``PATCH active_leaf`` over the socket, on the thread as it is now (not as it was on connect)."""
    return thread_update(thread=thread_get(user=user, thread_id=thread_id), active_leaf=message_id)


def _fork(user: Any, thread_id: Any, message_id: Any, mode: Any) -> dict[str, Any]:
    """A fork of the thread as it is now, as plain data in the REST API's shape."""
    fork = thread_fork(thread=thread_get(user=user, thread_id=thread_id), message_id=message_id, mode=mode)
    return json.loads(JSONRenderer().render(ThreadSerializer(fork).data))


def _count_after(thread: ChatThread, after: str) -> int:
    """How many messages a replay after ``after`` would send; NotFound when it is not in the thread."""
    return message_list_after(thread=thread, after_id=after).count()


class ChatConsumer(AsyncWebsocketConsumer):
    """One client's connection to one thread."""

    # Set once connect() has admitted the client: events of the groups it joined before are ignored till then.
    admitted = False
    closing = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # However the connection ends (a channel-layer error ends it from inside Channels'
            # dispatch loop, past disconnect()), its watchdog and layer watch go with it.
            self._stop_watching()

    def _stop_watching(self) -> None:
        stream_watch().leave(self)
        if layer_watch := getattr(self, "layer_watch", None):
            layer_watch.leave(self)

    async def layer_lost(self, reason: str) -> None:
        """The channel layer may have dropped this connection's group (see ``layer_watch``)."""
        with contextlib.suppress(Exception):
            await self._send(events.error_for(ServiceUnavailable()))
            await self.close(code=CLOSE_UNAVAILABLE)

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        try:
            await super().websocket_connect(message)
        except OUTAGE_ERRORS as exc:
            # connect() accepted first: tell the client now, rather than once Channels has wound
            # this consumer down (CloseOnOutage would, later).
            await self._send(events.error_for(as_domain_error(exc) or ServiceUnavailable()))
            await self.close(code=CLOSE_UNAVAILABLE)

    async def connect(self) -> None:
        # Accept first: a close code sent before the handshake completes never reaches the client.
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if self.scope["url_route"]["kwargs"]["user_id"] != str(user.pk):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        thread_id = parse_uuid(self.scope["url_route"]["kwargs"]["thread_id"])
        if thread_id is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        # Which credential signed this socket in: signing out with it, or deleting it, closes it.
        self.token_digest: str | None = self.scope.get("auth_token_digest")
        session_key = None if self.token_digest else getattr(self.scope.get("session"), "session_key", None)
        self.session_digest = credential_digest(session_key) if session_key else None
        register_home_loop(asyncio.get_running_loop())
        # Before joining the groups: a Redis restart after this point is noticed (layer_watch).
        if layer_watch := watch_for(self.channel_layer):
            await layer_watch.join(self)
            self.layer_watch = layer_watch
        # Join before reading the thread: a deletion or sign-out committed after the check still
        # reaches this socket (its event waits until connect() returns).
        self.groups_joined = [thread_group(thread_id), user_group(user.pk)]
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        self.thread = await database_sync_to_async(_thread_or_none)(user, thread_id)
        if self.thread is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.user = user
        self.gate = FrameGate(frames=settings.WEBSOCKET_FRAME_RATE_LIMIT, chars=settings.WEBSOCKET_BYTE_RATE_LIMIT)
        # Frame texts (or the refusal to answer in their place) waiting for the frame task.
        self.inbox: asyncio.Queue[str | BadFrame | None] = asyncio.Queue(settings.WEBSOCKET_MAX_PENDING_FRAMES)
        thread = self.thread
        self.relay = StreamRelay(
            send=self._send,
            load_replay=lambda after: database_sync_to_async(_replay)(thread, after),
            load_stream=lambda stream_id, from_seq: database_sync_to_async(_stream_state)(
                thread.pk, stream_id, from_seq
            ),
            load_message=lambda message_id: database_sync_to_async(_message_or_none)(thread.pk, message_id),
            count_after=lambda after: database_sync_to_async(_count_after)(thread, after),
            replay_limit=settings.WEBSOCKET_REPLAY_LIMIT,
        )
        # The groups were joined before reading the database, so nothing that happens between the
        # two is missed; what arrives twice is dropped by the relay.
        query = parse_qs(self.scope.get("query_string", b"").decode("latin1"))
        await self.relay.resync((query.get("after") or [None])[0])
        self.admitted = True
        # This process's stream watch checks the streams in next_seq (see stream_lagging).
        stream_watch().join(self)
        self.frame_task = asyncio.create_task(self._handle_frames())

    async def disconnect(self, code: int) -> None:
        self._drop_pending()
        self._stop_watching()
        if frame_task := getattr(self, "frame_task", None):
            # Let the frame in hand finish (as before the queue, a frame is not cut off midway);
            # Daphne cancels an application that outlives its close timeout.
            self.inbox.put_nowait(None)
            with contextlib.suppress(asyncio.CancelledError):
                await frame_task
        for group in getattr(self, "groups_joined", []):
            # With Redis down the membership cannot be removed; it expires with the layer's group_expiry.
            with contextlib.suppress(*OUTAGE_ERRORS):
                await self.channel_layer.group_discard(group, self.channel_name)

    def _drop_pending(self) -> None:
        """Forget queued frames: a closing connection (thread deleted, signed out) stores nothing more."""
        self.closing = True
        inbox = getattr(self, "inbox", None)
        while inbox is not None and not inbox.empty():
            inbox.get_nowait()

    async def _close(self, code: int) -> None:
        if not self.closing:
            self._drop_pending()
            await self.close(code=code)

    async def connection_close(self, event: dict[str, Any]) -> None:
        """A thread deleted, a user deactivated or signed out, a token deleted (``realtime.connections_close``).

        The event closes every connection of its group, or only those signed in with the session
        or token whose digest it names.
        """
        if not self.admitted:
            return
        for credential, mine in (("session", self.session_digest), ("token", self.token_digest)):
            if credential in event and event[credential] != mine:
                return
        await self._close(CLOSE_CODES[event["reason"]])

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels' dispatch without its ``close_old_connections`` before every handler.

        Channels runs that in the one thread every consumer of the process shares for database
        work, so taking a frame off the socket would wait for any connection's database call, and
        Daphne would buffer meanwhile. No handler here touches the database outside
        ``database_sync_to_async``, which closes stale connections around each call itself.
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    # --- Client to server --------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Take a frame off the socket: count it, refuse it or queue it, without parsing it."""
        if self.closing or not self.admitted:
            return
        size = len(text_data) if text_data is not None else len(bytes_data or b"")
        if refusal := self.gate.admit(size):
            await self._refuse(refusal)
            return
        item: str | BadFrame = text_data
        if size > settings.WEBSOCKET_MAX_FRAME_BYTES:
            item = too_large()  # answered in its turn; the text itself is not kept
        elif text_data is None:
            item = BadFrame("invalid_json", "Send JSON in text frames.")
        try:
            self.inbox.put_nowait(item)
        except asyncio.QueueFull:
            await self._refuse(
                BadFrame("overloaded", "Too many frames waiting: send again in a moment.", retry_after=1)
            )
            return
        self.gate.taken()

    async def _refuse(self, refusal: BadFrame) -> None:
        """Answer a refused frame at once (it is not queued, so it carries no client_id)."""
        await self._send(events.error_for(refusal))
        if self.gate.refused():
            await self._close(CLOSE_TOO_MANY)

    async def _handle_frames(self) -> None:
        """The one task that handles this connection's frames, in the order they came."""
        while (item := await self.inbox.get()) is not None:
            if self.closing:
                continue
            try:
                if isinstance(item, BadFrame):
                    await self._send(events.error_for(item))
                else:
                    await self._handle_frame(item)
            except Exception:
                # This task must outlive any one frame, or every later frame would wait forever.
                logger.exception("frame on thread %s failed", self.thread.pk)

    async def _handle_frame(self, text: str) -> None:
        try:
            frame = parse_frame(text)
        except BadFrame as exc:
            await self._send(events.error_for(exc))
            return
        kind = frame.get("type")
        handler = {
            "message": self._receive_message,
            "file": self._receive_file,
            "sync": self._receive_sync,
            "ping": self._receive_ping,
            "regenerate": self._receive_regenerate,
            "stop": self._receive_stop,
            "switch": self._receive_switch,
            "fork": self._receive_fork,
        }.get(kind if isinstance(kind, str) else "")
        if handler is None:
            known = ", ".join(CLIENT_FRAME_TYPES)
            await self._send(events.error("unknown_type", f"Unknown frame type {frame.get('type')!r}; known: {known}."))
            return
        client_id = frame.get("client_id") if isinstance(frame.get("client_id"), str) else None
        try:
            await handler(frame)
        except (DomainError, *OUTAGE_ERRORS) as exc:
            # While the database alone is down, frames get "unavailable" and the connection stays.
            error = as_domain_error(exc) or ServiceUnavailable()
            await self._send(events.error_for(error, client_id=client_id))
        except Exception:
            logger.exception("frame %r on thread %s failed", frame.get("type"), self.thread.pk)
            await self._send(
                events.error("server_error", "The server could not handle this frame; nothing was stored.")
            )

    async def _receive_message(self, frame: dict[str, Any]) -> None:
        if "content" not in frame:
            raise InvalidInput.field("content", "This field is required.")
        message, created = await database_sync_to_async(message_send)(
            thread=self.thread,
            sender=self.user,
            content=frame["content"],
            metadata=frame.get("metadata"),
            parent_id=frame.get("parent", ACTIVE_LEAF),
            client_id=frame.get("client_id"),
        )
        if not created:
            # A retry of a message already stored: only the sender hears of it again.
            await self.relay.send_message(await database_sync_to_async(message_payload)(message), force=True)

    async def _receive_file(self, frame: dict[str, Any]) -> None:
        errors = {name: ["This field is required."] for name in ("filename", "data") if name not in frame}
        if errors:
            raise InvalidInput(errors)
        data = frame["data"]
        if not isinstance(data, str):
            raise InvalidInput.field("data", "Must be a base64 string.")
        if len(data) > _max_base64_chars():
            raise TooLarge.field("data", f"The file is larger than {settings.MAX_UPLOAD_BYTES} bytes.")
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput.field("data", "Not valid base64.") from None
        content_type = frame.get("content_type") or ""
        caption = frame.get("content") or ""
        if not isinstance(content_type, str):
            raise InvalidInput.field("content_type", "Must be a string.")
        message, created = await database_sync_to_async(message_send_file)(
            thread=self.thread,
            sender=self.user,
            filename=frame["filename"],
            data=raw,
            content_type=content_type,
            caption=caption,
            client_id=frame.get("client_id"),
        )
        if not created:
            await self.relay.send_message(await database_sync_to_async(message_payload)(message), force=True)

    async def _receive_regenerate(self, frame: dict[str, Any]) -> None:
        """The new reply arrives as a stream like any other; a repeated ``client_id`` asks nothing more."""
        if "message_id" not in frame:
            raise InvalidInput.field("message_id", "This field is required.")
        await database_sync_to_async(message_regenerate)(
            thread=self.thread, sender=self.user, message_id=frame["message_id"], client_id=frame.get("client_id")
        )

    async def _receive_stop(self, frame: dict[str, Any]) -> None:
        """Every client of the thread hears ``stream_end`` with ``status: "stopped"``."""
        if "stream_id" not in frame:
            raise InvalidInput.field("stream_id", "This field is required.")
        await database_sync_to_async(stream_stop)(
            user=self.user, stream_id=frame["stream_id"], thread_id=self.thread.pk
        )

    async def _receive_switch(self, frame: dict[str, Any]) -> None:
        """Switch branch, as ``PATCH active_leaf``; only this connection is answered."""
        if "message_id" not in frame:
            raise InvalidInput.field("message_id", "This field is required.")
        thread = await database_sync_to_async(_switch_branch)(self.user, self.thread.pk, frame["message_id"])
        await self._send(events.active_leaf(thread.active_leaf_id))

    async def _receive_fork(self, frame: dict[str, Any]) -> None:
        """Fork, as ``POST /api/threads/{id}/fork/``; only this connection hears of the new thread."""
        if "message_id" not in frame:
            raise InvalidInput.field("message_id", "This field is required.")
        fork = await database_sync_to_async(_fork)(
            self.user, self.thread.pk, frame["message_id"], frame.get("mode", ForkMode.PATH)
        )
        await self._send(events.forked(fork))

    async def _receive_sync(self, frame: dict[str, Any]) -> None:
        after = frame.get("after")
        if after is not None and not isinstance(after, str):
            raise InvalidInput.field("after", "Must be a message id.")
        await self.relay.resync(after)

    async def _receive_ping(self, frame: dict[str, Any]) -> None:
        await self._send(events.pong())

    # --- Server to client --------------------------------------------------------------------

    async def chat_event(self, event: dict[str, Any]) -> None:
        """An event broadcast to the thread's group (see ``messaging.realtime``)."""
        if not self.admitted:
            return
        await self.relay.relay(event["event"])

    async def _send(self, payload: events.ServerEvent) -> None:
        await self.send(text_data=json.dumps(payload))

    @property
    def next_seq(self) -> dict[str, int]:
        """Per stream this client has seen start, the next seq it expects (read by the stream watch)."""
        return self.relay.next_seq

    async def stream_lagging(self, stream_id: str) -> None:
        """The stream watch saw this stream ended, or chunks stored long ago that this client
        lacks (their events were lost): fill it from the database."""
        await self.relay.catch_up(stream_id)


class CloseOnOutage:
    """ASGI middleware around the whole WebSocket stack: an outage ends a connection clearly.

    When Redis or the database fails under a connection (the channel layer while waiting for
    events, the database while signing the client in or opening the thread), the client gets an
    ``unavailable`` error event and close code 4503, never Daphne's 1011 or a failed handshake,
    and reconnects with ``?after=``. Errors of a single frame are answered by the consumer itself.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        state = {"accepted": False, "closed": False}

        async def tracked_send(message: dict[str, Any]) -> None:
            state["accepted"] |= message["type"] == "websocket.accept"
            state["closed"] |= message["type"] == "websocket.close"
            await send(message)

        try:
            await self.app(scope, receive, tracked_send)
        except OUTAGE_ERRORS as exc:
            logger.warning("WebSocket %s closed by an outage: %s: %s", scope.get("path"), type(exc).__name__, exc)
            if state["closed"]:
                return
            with contextlib.suppress(Exception):  # the client may be gone already
                if not state["accepted"]:
                    await send({"type": "websocket.accept"})
                await send({"type": "websocket.send", "text": json.dumps(events.error_for(ServiceUnavailable()))})
                await send({"type": "websocket.close", "code": CLOSE_UNAVAILABLE})

"""The agent's reply to a user message, streamed to the thread while it is produced.

``reply_to_message`` is the one entry point (the Celery task calls it). It asks the reply
generator for events, coalesces text deltas so a fast model does not cause one channel-layer
publish per token, records them on the message's ``ReplyStream`` and persists the AI message at
the end. A background heartbeat proves the worker is alive while the model thinks; if the worker
dies, the stale sweep ends the stream as ``interrupted`` (see ``messaging.services``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from django.conf import settings
from django.core.cache import cache
from django.db import close_old_connections, connection
from django.utils import timezone
from django.utils.module_loading import import_string
from kombu.exceptions import OperationalError as BrokerError

from chatproject.errors import OUTAGE_ERRORS
from chatproject.logs import with_current_context
from messaging.models import ChatMessage, ReplyStream
from messaging.selectors import message_list_awaiting_reply
from messaging.services import stream_append, stream_finish, stream_heartbeat_many, stream_start, stream_status
from threads.models import ChatThread

logger = logging.getLogger(__name__)

# A delta is sent when this much text has gathered or this long has passed since the last send,
# whichever comes first: at most about 60 updates a second per reply, and a model that sends a
# piece every 20 ms (bench/run.py pipeline --gap-ms 20) has each sent as it comes. A reply that
# falls behind sends what piled up as one chunk anyway (agent.program._ready_batches).
COALESCE_CHARS = 200
COALESCE_SECONDS = 0.015


@dataclass(frozen=True)
class ReplyEvent:
    """What a reply generator yields: a piece of the answer, a step worth showing, or metadata."""

    delta: str = ""
    status: dict[str, Any] = field(default_factory=dict)
    # Kept in the AI message's metadata (the last one given wins per key).
    metadata: dict[str, Any] = field(default_factory=dict)


ReplyGenerator = Callable[[ChatMessage], Iterator[ReplyEvent]]


def generate_reply(message: ChatMessage) -> Iterator[ReplyEvent]:
    """The agent's reply: the DSPy ReAct program over the gathered context, streamed.

    Yields tool steps and answer text as they are produced, then one event whose ``metadata``
    (the final answer and the trajectory) goes into the AI message. Raises AgentError when the
    model fails.
    """
    from .context import gather, update_thread_after_reply
    from .program import run_program
    from .tools import build_tools

    context = gather(message)
    streamed: list[str] = []
    prediction = None
    usage: dict[str, Any] = {}
    model = context.model.name if context.model else settings.AGENT_LM
    # The worker's own numbers, should the model fail (the runner adds usage to the error reply).
    yield ReplyEvent(metadata={"model": model})
    if context.unavailable_model:
        yield ReplyEvent(status=model_fallback_status(context.unavailable_model, model))
    for kind, value in run_program(
        tools=build_tools(context.tools),
        history=context.history,
        memories=context.memories,
        message=context.message,
        instructions=context.instructions,
        model=context.model,
    ):
        if kind == "usage":
            usage = value
        elif kind == "delta":
            streamed.append(value)
            yield ReplyEvent(delta=value)
        elif kind == "status":
            yield ReplyEvent(status=value)
        else:
            prediction = value
    answer = str(getattr(prediction, "answer", "") or "")
    sent = "".join(streamed)
    if answer.startswith(sent) and len(answer) > len(sent):
        # The model did not stream (or not all of it): send the rest as it is.
        yield ReplyEvent(delta=answer[len(sent) :])
    trajectory = dict(getattr(prediction, "trajectory", {}) or {})
    update_thread_after_reply(message)
    extra = {"model_unavailable": context.unavailable_model} if context.unavailable_model else {}
    cost = usage.pop("cost_usd", None)
    yield ReplyEvent(
        metadata={"model": model, "usage": usage, "cost_usd": cost, **extra, "trajectory": _json_safe(trajectory)}
    )


def model_fallback_status(wanted: str, used: str) -> dict[str, Any]:
    """The step shown when a thread's model is no longer offered."""
    message = f"The model {wanted!r} is not available any more; this thread now uses {used!r}."
    return {"step": "model_fallback", "error": "unknown_model", "message": message, "model": used}


def _usage_of(error: BaseException) -> dict[str, Any]:
    """The tokens and cost a failed run had used (an AgentError knows them), for its metrics."""
    usage = dict(getattr(error, "usage", None) or {})
    if not usage:
        return {}
    return {"cost_usd": usage.pop("cost_usd", None), "usage": usage}


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _reply_generator() -> ReplyGenerator:
    generator: ReplyGenerator = import_string(settings.AGENT_REPLY_GENERATOR)
    return generator


class _Heartbeats:
    """The heartbeat of every reply this process is producing: one thread and one UPDATE every
    STREAM_HEARTBEAT_SECONDS for all of them. A thread-pool worker runs dozens of replies at once;
    a thread, a database connection and an UPDATE per reply would be dozens of each.

    ``join`` returns the reply's "lost" event, set once its stream has ended elsewhere (a stop,
    the stale sweep): the reply must stop. The thread starts with the first reply and ends when
    the last one leaves (and so is started again in a forked pool process).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lost: dict[Any, threading.Event] = {}
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()

    def join(self, stream_id: Any) -> threading.Event:
        lost = threading.Event()
        with self._lock:
            self._lost[stream_id] = lost
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="reply-heartbeats", daemon=True)
                self._thread.start()
        return lost

    def leave(self, stream_id: Any) -> None:
        with self._lock:
            self._lost.pop(stream_id, None)
            if not self._lost:
                self._wake.set()  # the thread ends now, not after its wait

    def _run(self) -> None:
        try:
            while True:
                self._wake.wait(settings.STREAM_HEARTBEAT_SECONDS)
                self._wake.clear()
                with self._lock:
                    ids = list(self._lost)
                    if not ids:
                        self._thread = None
                        return
                try:
                    alive = stream_heartbeat_many(stream_ids=ids)
                except OUTAGE_ERRORS as exc:
                    # A database blip: beat again on a new connection next time rather than fall
                    # silent for good and have healthy replies ended as interrupted.
                    logger.warning("heartbeat for %d reply streams missed: %s", len(ids), exc)
                    connection.close()
                    continue
                with self._lock:
                    for stream_id in set(ids) - alive:
                        if stream_id in self._lost:
                            self._lost[stream_id].set()
        except Exception:
            logger.exception("the reply heartbeat failed; the next reply starts it again")
        finally:
            connection.close()


_heartbeats = _Heartbeats()


class _Coalescer:
    """Gathers deltas and sends them as few, larger chunks."""

    def __init__(self, stream: ReplyStream) -> None:
        self.stream = stream
        self.pending: list[str] = []
        self.pending_chars = 0
        # The first delta goes out at once: time to first token is what people notice.
        self.last_sent = float("-inf")
        self.sent: list[str] = []

    def add(self, delta: str) -> bool:
        self.pending.append(delta)
        self.pending_chars += len(delta)
        if self.pending_chars >= COALESCE_CHARS or time.monotonic() - self.last_sent >= COALESCE_SECONDS:
            return self.flush()
        return True

    def flush(self) -> bool:
        if not self.pending:
            return True
        text = "".join(self.pending)
        self.pending, self.pending_chars, self.last_sent = [], 0, time.monotonic()
        if not stream_append(stream=self.stream, delta=text):
            return False
        self.sent.append(text)
        return True


def reply_to_message(message_id: Any, *, on_event: Callable[[ReplyEvent], None] | None = None) -> ChatMessage | None:
    """Produce, stream and persist the agent's reply to a user message.

    Returns the AI message, or None when there is nothing to do (the message is gone, is not a
    user's, already has a reply stream) or the stream was ended by someone else (the stale sweep).
    ``on_event`` sees every event of the generator as it comes, before coalescing (a terminal
    prints them); it runs in this thread, so a slow one slows the reply down.
    """
    message = ChatMessage.objects.select_related("thread").prefetch_related("attachments").filter(pk=message_id).first()
    if message is None or message.role != ChatMessage.Role.USER:
        return None
    stream = stream_start(reply_to=message)
    if stream is None:
        return None
    started = time.monotonic()
    logger.info("reply to message %s: stream %s started", message.pk, stream.pk)
    lost = _heartbeats.join(stream.pk)
    coalescer = _Coalescer(stream)
    metadata: dict[str, Any] = {}
    try:
        for event in _reply_generator()(message):
            if lost.is_set():
                return None
            if on_event is not None:
                on_event(event)
            if event.delta and not coalescer.add(event.delta):
                return None
            if event.status and (not coalescer.flush() or not stream_status(stream=stream, status=event.status)):
                return None
            metadata.update(event.metadata)
        if not coalescer.flush():
            return None
        return stream_finish(
            stream=stream, status=ReplyStream.Status.COMPLETE, content="".join(coalescer.sent), metadata=metadata
        )
    except Exception as exc:
        logger.exception("the agent failed to reply to message %s", message.pk)
        # What was produced stays visible in the error message, followed by what went wrong.
        try:
            coalescer.flush()
        except Exception:
            logger.exception("could not send the last part of the reply to %s", message.pk)
        partial = "".join(coalescer.sent)
        error_text = f"The agent failed: {type(exc).__name__}: {exc}"
        return stream_finish(
            stream=stream,
            status=ReplyStream.Status.ERROR,
            content=f"{partial}\n\n{error_text}" if partial else error_text,
            type=ChatMessage.Type.ERROR,
            metadata={
                **metadata,
                **_usage_of(exc),
                "error": type(exc).__name__,
                "error_message": error_text,
                "partial": partial,
            },
        )
    finally:
        _heartbeats.leave(stream.pk)
        logger.info(
            "reply to message %s: stream %s ended after %.1f ms",
            message.pk,
            stream.pk,
            (time.monotonic() - started) * 1000,
        )


# Replies the embedded default runs at once in its own threads; more wait their turn, as tasks
# wait for a free Celery worker. SQLite takes one writer at a time: more threads would mostly wait
# for its lock. (It was also once bound by DSPy's limiter: see agent.program.DSPY_ASYNC_THREADS.)
EMBEDDED_REPLY_WORKERS = 4
_embedded_pool: ThreadPoolExecutor | None = None
_embedded_pool_lock = threading.Lock()


def run_reply_in_background(message_id: Any) -> Future[None]:
    """Run the reply on this process's small reply pool (the embedded default has no worker)."""
    global _embedded_pool

    def run() -> None:
        close_old_connections()
        try:
            reply_to_message(message_id)
        except Exception:
            logger.exception("reply to %s failed", message_id)
        finally:
            connection.close()

    with _embedded_pool_lock:
        if _embedded_pool is None:
            _embedded_pool = ThreadPoolExecutor(max_workers=EMBEDDED_REPLY_WORKERS, thread_name_prefix="reply")
        # With the caller's request id: the reply's log lines carry it as a worker's would.
        return _embedded_pool.submit(with_current_context(run))


# --- The reply outbox ------------------------------------------------------------------------
# A user message is stored with ``awaiting_reply`` set and its reply queued after commit. When the
# broker did not take the task, or lost it (a Redis restart without persistence), the periodic
# sweep queues it again; a message gets at most one reply stream, so queuing twice is harmless.

# A reply queued less than this long ago is not queued again by the sweep: its task is most likely
# still waiting behind others. The marker lives in the cache, which on the production stack is
# the broker's Redis: a restart that loses queued tasks loses their markers with them, so the
# sweep queues those again at once.
REQUEUE_AFTER_SECONDS = 60
# Messages the sweep looks at per run; the rest wait for the next run (every SWEEP_INTERVAL_SECONDS).
SWEEP_BATCH = 200

Enqueued = Literal["queued", "already_queued", "unavailable"]


def _queued_key(message_id: Any) -> str:
    return f"agent:reply-queued:{message_id}"


def reply_enqueue(message_id: Any, *, again: bool = False) -> Enqueued:
    """Queue the agent's reply to a user message: a Celery task, or with no broker a thread here.

    ``again`` (the sweep) skips a message queued within REQUEUE_AFTER_SECONDS. Never raises for
    an outage: "unavailable" means the broker did not take it and the message stays in the outbox.
    """
    from .tasks import agent_reply

    try:
        if not cache.add(_queued_key(message_id), 1, timeout=REQUEUE_AFTER_SECONDS) and again:
            return "already_queued"
        if agent_reply.app.conf.task_always_eager and settings.AGENT_EAGER_IN_BACKGROUND:
            run_reply_in_background(message_id)
        else:
            agent_reply.delay(str(message_id))
    except (BrokerError, *OUTAGE_ERRORS) as exc:
        logger.warning("the reply to %s was not queued (%s); the outbox sweep will queue it", message_id, exc)
        return "unavailable"
    return "queued"


def _duration(seconds: int) -> str:
    number, unit = (seconds / 3600, "hour") if seconds >= 3600 else (seconds, "second")
    return f"{number:g} {unit}{'' if number == 1 else 's'}"


def reply_give_up(message: ChatMessage) -> ChatMessage | None:
    """End a message's wait with an error reply saying it was not answered; None if it has a reply."""
    stream = stream_start(reply_to=message)
    if stream is None:
        return None
    text = (
        f"No reply: the agent could not take this message up within "
        f"{_duration(settings.REPLY_GIVE_UP_SECONDS)}. Send it again to get an answer."
    )
    return stream_finish(
        stream=stream,
        status=ReplyStream.Status.ERROR,
        content=text,
        type=ChatMessage.Type.ERROR,
        # "partial": the model wrote nothing of it (its metrics count no tokens).
        metadata={"error": "unanswered", "error_message": text, "partial": ""},
    )


def reply_sweep_unanswered() -> dict[str, int]:
    """Empty the reply outbox: queue again each user message still waiting for its reply
    STREAM_STALE_SECONDS after it was stored, and give those waiting past REPLY_GIVE_UP_SECONDS
    an error reply instead, so that no stored message stays unanswered for ever.

    Safe to run from many places at once: a message gets one reply stream. Stops at the first
    message the broker does not take (it is down: the next run tries again).
    """
    now = timezone.now()
    waiting = message_list_awaiting_reply(
        stored_before=now - timedelta(seconds=settings.STREAM_STALE_SECONDS), limit=SWEEP_BATCH
    )
    give_up_before = now - timedelta(seconds=settings.REPLY_GIVE_UP_SECONDS)
    counts = {"queued": 0, "given_up": 0}
    for message in waiting:
        if (message.reply_requested_at or message.created_at) < give_up_before:
            counts["given_up"] += reply_give_up(message) is not None
            continue
        outcome = reply_enqueue(message.pk, again=True)
        if outcome == "unavailable":
            break
        counts["queued"] += outcome == "queued"
    return counts


def message_ask(
    *, thread: ChatThread, sender: Any, content: str, on_event: Callable[[ReplyEvent], None] | None = None
) -> tuple[ChatMessage, ChatMessage | None]:
    """Send a user message and produce the agent's reply in this process, as the terminal
    commands (``ask``, ``chat``) do: returns ``(user message, AI message)``.

    The user message is stored by ``message_send`` as one sent over REST is (checks, rate limit,
    broadcast, memory), and the reply by ``reply_to_message`` as a worker does (a ReplyStream,
    chunks and heartbeat, the AI message at the end), with ``on_event`` seeing every event as it
    comes. The message is not put in the reply outbox, since this process answers it at once: if
    the process dies mid-reply, the stale sweep ends its stream as ``interrupted``, as for a worker.
    The AI message is None when someone else ended the stream (a stop from another client).
    """
    from messaging.services import message_send

    message, _ = message_send(thread=thread, sender=sender, content=content, reply=False)
    return message, reply_to_message(message.pk, on_event=on_event)

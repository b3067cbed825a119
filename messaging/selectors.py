"""Reads of messages and attachments, always through a thread the user owns."""

from __future__ import annotations

import math
import re
import uuid
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, overload

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db import connection
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import Substr
from django.utils import timezone

from chatproject.errors import NotFound
from threads.models import ChatThread
from threads.selectors import parse_uuid
from threads.tree import newest_leaf, path_to

from .models import ChatAttachment, ChatMessage, ReplyChunk, ReplyMetric, ReplyStream, UserQuota


def message_list(*, thread: ChatThread) -> QuerySet[ChatMessage]:
    """The thread's messages, oldest first, attachments prefetched (one query per page for them)."""
    return ChatMessage.objects.filter(thread=thread).prefetch_related("attachments").order_by("created_at", "id")


def _tree_pairs(thread_id: uuid.UUID, *, ordered: bool = True) -> list[tuple[uuid.UUID, uuid.UUID | None]]:
    """Every message of the thread as ``(id, parent_id)`` (oldest first when ``ordered``): one narrow query."""
    pairs = ChatMessage.objects.filter(thread_id=thread_id).values_list("id", "parent_id")
    return list(pairs.order_by("created_at", "id") if ordered else pairs.order_by())


def message_path_ids(*, thread: ChatThread, leaf_id: uuid.UUID | None = None) -> list[uuid.UUID]:
    """The ids of ``message_path``, root first, without loading the messages."""
    leaf_id = thread.active_leaf_id if leaf_id is None else leaf_id
    if leaf_id is None:
        return []
    return path_to(_tree_pairs(thread.pk, ordered=False), leaf_id)


def _messages_in_order(ids: Sequence[uuid.UUID]) -> list[ChatMessage]:
    by_id = {m.pk: m for m in ChatMessage.objects.filter(pk__in=ids).prefetch_related("attachments")}
    return [by_id[pk] for pk in ids if pk in by_id]


class MessagesByIds(Sequence[ChatMessage]):
    """Messages known by their ids in order, loaded only when sliced: a path paginated without
    loading every message on it (Django's Paginator takes ``len`` and one slice)."""

    def __init__(self, ids: list[uuid.UUID]) -> None:
        self.ids = ids

    def __len__(self) -> int:
        return len(self.ids)

    @overload
    def __getitem__(self, index: int) -> ChatMessage: ...
    @overload
    def __getitem__(self, index: slice) -> list[ChatMessage]: ...
    def __getitem__(self, index: int | slice) -> ChatMessage | list[ChatMessage]:
        if isinstance(index, slice):
            return _messages_in_order(self.ids[index])
        return _messages_in_order([self.ids[index]])[0]


def message_path_pages(*, thread: ChatThread, leaf: ChatMessage | None = None) -> MessagesByIds:
    """``message_path`` for pagination: the ids now (one query), the messages of a page when sliced."""
    if leaf is not None and leaf.thread_id != thread.pk:
        raise NotFound("Message not found in this thread.")
    return MessagesByIds(message_path_ids(thread=thread, leaf_id=leaf.pk if leaf is not None else None))


def message_path(*, thread: ChatThread, leaf: ChatMessage | None = None) -> list[ChatMessage]:
    """The messages from the thread's root down to ``leaf``, in order, attachments prefetched.

    ``leaf=None`` means the thread's active leaf as loaded with ``thread`` (empty list for a
    thread without messages). NotFound when ``leaf`` is not a message of the thread. Two queries
    plus one for attachments, whatever the thread's size.
    """
    if leaf is not None and leaf.thread_id != thread.pk:
        raise NotFound("Message not found in this thread.")
    ids = message_path_ids(thread=thread, leaf_id=leaf.pk if leaf is not None else None)
    return _messages_in_order(ids) if ids else []


def message_get(*, thread: ChatThread, message_id: str | uuid.UUID) -> ChatMessage:
    """A message of the thread, or NotFound (malformed ids and other threads' messages alike)."""
    pk = parse_uuid(message_id)
    message = ChatMessage.objects.filter(pk=pk, thread=thread).first() if pk else None
    if message is None:
        raise NotFound("Message not found in this thread.")
    return message


def active_leaf_for(*, thread: ChatThread, message: ChatMessage) -> ChatMessage:
    """The leaf a click on ``message`` leads to: the newest message under it (itself if none)."""
    if message.thread_id != thread.pk:
        raise NotFound("Message not found in this thread.")
    leaf_id = newest_leaf(_tree_pairs(thread.pk), message.pk)
    return message if leaf_id == message.pk else ChatMessage.objects.get(pk=leaf_id)


def message_tree_info(*, messages: Sequence[ChatMessage]) -> Sequence[ChatMessage]:
    """Set ``children_count`` and ``sibling_ids`` (itself included, oldest first) on each message.

    Two queries for any number of messages (none for none), so a page of a list costs the same
    whatever its size; the serializer reads the attributes.
    """
    if not messages:
        return messages
    ids = [m.pk for m in messages]
    counts = dict(
        ChatMessage.objects.filter(parent_id__in=ids)
        .values("parent_id")
        .annotate(n=Count("id"))
        .values_list("parent_id", "n")
    )
    thread_ids = {m.thread_id for m in messages}
    parent_ids = {m.parent_id for m in messages if m.parent_id is not None}
    siblings = Q(parent_id__in=parent_ids)
    if any(m.parent_id is None for m in messages):
        siblings |= Q(parent__isnull=True, thread_id__in=thread_ids)
    by_parent: dict[tuple[uuid.UUID, uuid.UUID | None], list[str]] = {}
    for pk, parent_id, thread_id in (
        ChatMessage.objects.filter(siblings).order_by("created_at", "id").values_list("id", "parent_id", "thread_id")
    ):
        by_parent.setdefault((thread_id, parent_id), []).append(str(pk))
    for message in messages:
        message.children_count = counts.get(message.pk, 0)  # type: ignore[attr-defined]
        message.sibling_ids = by_parent.get((message.thread_id, message.parent_id), [str(message.pk)])  # type: ignore[attr-defined]
    return messages


PREVIEW_CHARS = 120
# Markdown marks dropped from previews: they are plain text.
_MARKS = re.compile(r"[*_`#>\[\]|~]+")


def preview_text(content: str) -> str:
    """The first PREVIEW_CHARS characters of a message as plain text on one line."""
    return " ".join(_MARKS.sub("", content).split())[:PREVIEW_CHARS]


def _uuid_text(value: Any) -> str | None:
    """A UUID column read raw: a UUID (PostgreSQL) or 32 hex digits (SQLite), as canonical text."""
    if value is None or isinstance(value, uuid.UUID):
        return None if value is None else str(value)
    return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"


def _time_text(value: datetime | str) -> str:
    """A timestamp read raw: an aware datetime (PostgreSQL) or UTC text (SQLite), as ISO 8601."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    # Microseconds always written out, so that the text sorts as the time does.
    return value.replace(" ", "T") + ("Z" if "." in value else ".000000Z")


def thread_tree(*, thread: ChatThread) -> dict[str, Any]:
    """Every message of the thread as a node ready for ``d3.stratify()`` (``id``, ``parent``),
    with its role, type, preview, time, child count and whether it is on the active path.

    One query whatever the thread's size, reading only the start of each message. Its rows are
    read without the ORM's per-value conversions (a third of the time on 5,000 messages: see
    ``bench/run.py tree``). A thread with several roots (an edited first message) has them all
    with ``parent`` null: the client adds a virtual root.
    """
    query = (
        ChatMessage.objects.filter(thread_id=thread.pk)
        .annotate(start=Substr("content", 1, PREVIEW_CHARS + 40))
        .values_list("id", "parent_id", "role", "type", "start", "created_at")
    )
    sql, params = query.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    nodes = [
        {
            "id": _uuid_text(pk),
            "parent": _uuid_text(parent),
            "role": role,
            "type": type_,
            "preview": preview_text(start or ""),
            "created_at": _time_text(created_at),
            "on_active_path": False,
            "children": 0,
        }
        for pk, parent, role, type_, start, created_at in rows
    ]
    # ISO 8601 text in UTC sorts as time does; the id breaks ties, as in every list of messages.
    nodes.sort(key=lambda node: (node["created_at"], node["id"]))
    by_id = {node["id"]: node for node in nodes}
    for node in nodes:
        if (parent_node := by_id.get(node["parent"])) is not None:
            parent_node["children"] += 1
    active_leaf = str(thread.active_leaf_id) if thread.active_leaf_id else None
    for pk in path_to(((node["id"], node["parent"]) for node in nodes), active_leaf) if active_leaf else []:
        by_id[pk]["on_active_path"] = True
    return {"thread": str(thread.pk), "active_leaf": active_leaf, "nodes": nodes}


def attachment_get(*, user: User | AnonymousUser, attachment_id: str | uuid.UUID) -> ChatAttachment:
    """An attachment in one of the user's visible threads, or NotFound."""
    pk = parse_uuid(attachment_id)
    if pk is None or not user.is_authenticated:
        raise NotFound("Attachment not found.")
    try:
        return ChatAttachment.objects.exclude(thread__status=ChatThread.Status.DELETED).get(pk=pk, thread__owner=user)
    except ChatAttachment.DoesNotExist:
        raise NotFound("Attachment not found.") from None


def attachment_list_on_path(*, thread_id: uuid.UUID, path_ids: Sequence[uuid.UUID]) -> list[ChatAttachment]:
    """The attachments of the messages on a path of the thread, in path order: one query over the
    thread's attachments (not an ``IN`` over the path, which may hold 100,000 ids)."""
    position = {pk: n for n, pk in enumerate(path_ids)}
    in_thread = ChatAttachment.objects.filter(thread_id=thread_id).order_by("created_at", "id")
    on_path = [a for a in in_thread if a.message_id in position]
    return sorted(on_path, key=lambda a: position[a.message_id])


def message_list_in_thread(*, thread_id: uuid.UUID) -> QuerySet[ChatMessage]:
    """A thread's messages by its id, for callers that already checked access (the consumer)."""
    return ChatMessage.objects.filter(thread_id=thread_id).prefetch_related("attachments")


def attachment_count() -> int:
    """Every attachment row of the site (what ``attachment_cleanup`` checks, for its progress)."""
    return ChatAttachment.objects.count()


def message_list_after(*, thread: ChatThread, after_id: str | uuid.UUID) -> QuerySet[ChatMessage]:
    """The thread's messages after the given one, oldest first; NotFound when it is not in the thread."""
    pk = parse_uuid(after_id)
    anchor = ChatMessage.objects.filter(pk=pk, thread=thread).only("created_at").first() if pk else None
    if anchor is None:
        raise NotFound("Message not found in this thread.")
    later = Q(created_at__gt=anchor.created_at) | Q(created_at=anchor.created_at, id__gt=anchor.pk)
    return message_list(thread=thread).filter(later)


def stream_list_open(*, thread_id: uuid.UUID) -> list[ReplyStream]:
    """The thread's replies still streaming, oldest first."""
    return list(
        ReplyStream.objects.filter(thread_id=thread_id, status=ReplyStream.Status.STREAMING).order_by("started_at")
    )


def stream_get(*, thread_id: uuid.UUID, stream_id: str | uuid.UUID) -> ReplyStream | None:
    """A reply stream of the thread, with its persisted message when it has ended."""
    pk = parse_uuid(stream_id)
    if pk is None:
        return None
    return ReplyStream.objects.select_related("message").filter(pk=pk, thread_id=thread_id).first()


def stream_chunk_list(*, stream_id: uuid.UUID, from_seq: int = 0) -> list[tuple[int, str]]:
    """The stream's deltas as ``(seq, delta)`` from ``from_seq`` on, in order: one range read of
    the ``(stream, seq)`` index, so resuming or filling a gap reads only what the client lacks."""
    rows = ReplyChunk.objects.filter(stream_id=stream_id, seq__gte=from_seq).order_by("seq")
    return list(rows.values_list("seq", "delta"))


@dataclass(frozen=True)
class StreamProgress:
    """How far a stream has got, as the stream watch needs it: no chunk is read."""

    ended: bool
    chunk_count: int
    # Still streaming, but its worker has not beaten for STREAM_STALE_SECONDS.
    stale: bool


def stream_progress(*, stream_ids: Collection[uuid.UUID | str]) -> dict[str, StreamProgress]:
    """The status and chunk count of each of these streams, by id: one primary-key lookup per id,
    in one query, whatever the number of streams or of connections following them."""
    if not stream_ids:
        return {}
    cutoff = timezone.now() - timedelta(seconds=settings.STREAM_STALE_SECONDS)
    rows = ReplyStream.objects.filter(pk__in=list(stream_ids)).values_list(
        "id", "status", "chunk_count", "heartbeat_at"
    )
    return {
        str(pk): StreamProgress(
            ended=status != ReplyStream.Status.STREAMING,
            chunk_count=count,
            stale=status == ReplyStream.Status.STREAMING and heartbeat_at < cutoff,
        )
        for pk, status, count, heartbeat_at in rows
    }


def stream_text(*, stream_id: uuid.UUID) -> str:
    """Every delta of the stream joined in order: the text it had sent so far."""
    return "".join(delta for _, delta in stream_chunk_list(stream_id=stream_id))


# A user message awaiting its reply is waiting for a worker (queued, or accepted while the broker
# was down and queued again by the outbox sweep). Past this age it no longer counts as a reply in
# progress, so a task lost for long cannot lock its sender out (the sweep still answers it).
REPLY_WAIT_WINDOW = timedelta(minutes=10)


def reply_in_progress_count(*, user: User) -> int:
    """Replies the user is waiting for: streams still open in their threads, plus their recent
    messages that no reply has started for yet."""
    return replies_in_progress_by_user(user_id=user.pk).get(user.pk, 0)


def replies_in_progress_by_user(*, user_id: int | None = None) -> dict[int, int]:
    """``reply_in_progress_count`` of every user who has any (or of ``user_id`` only), by user id:
    two grouped queries, over the open streams and the few messages in the reply outbox."""
    streams = ReplyStream.objects.filter(status=ReplyStream.Status.STREAMING)
    since = timezone.now() - REPLY_WAIT_WINDOW
    waiting = ChatMessage.objects.filter(role=ChatMessage.Role.USER, awaiting_reply=True).filter(
        Q(created_at__gte=since) | Q(reply_requested_at__gte=since)
    )
    if user_id is not None:
        streams = streams.filter(thread__owner_id=user_id)
        waiting = waiting.filter(sender_id=user_id)
    counts: dict[int, int] = defaultdict(int)
    for owner_id, n in streams.values_list("thread__owner_id").annotate(n=Count("id")).order_by():
        counts[owner_id] += n
    for sender_id, n in waiting.exclude(sender=None).values_list("sender_id").annotate(n=Count("id")).order_by():
        counts[sender_id] += n
    return dict(counts)


# --- Daily quotas ---------------------------------------------------------------------------------
# What counts against USER_DAILY_REPLY_LIMIT / USER_DAILY_TOKEN_LIMIT (README, Quotas): every reply
# that ended since UTC midnight whatever its status (a ReplyMetric row, written when a stream
# ends; regenerations are replies too), plus the replies in progress now, so that a burst of sends
# cannot pass the limit before their replies end. Tokens are those of the replies ended today
# (prompt + completion; a reply's tokens are known only when it ends).


@dataclass(frozen=True)
class QuotaLimits:
    """A user's daily limits in force; None is unlimited."""

    replies: int | None
    tokens: int | None


@dataclass(frozen=True)
class QuotaUsage:
    """What a user used of their limits on the UTC day from ``day_start`` to ``resets_at``."""

    user_id: int
    day_start: datetime
    resets_at: datetime
    replies_used: int
    replies_limit: int | None
    tokens_used: int
    tokens_limit: int | None

    def reached(self) -> list[str]:
        """The limits used up (``replies``, ``tokens``): another reply would pass them."""
        return [
            name
            for name, used, limit in (
                ("replies", self.replies_used, self.replies_limit),
                ("tokens", self.tokens_used, self.tokens_limit),
            )
            if limit is not None and used >= limit
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "day_start": self.day_start,
            "resets_at": self.resets_at,
            "replies": {"used": self.replies_used, "limit": self.replies_limit},
            "tokens": {"used": self.tokens_used, "limit": self.tokens_limit},
        }


def quota_day(now: datetime) -> tuple[datetime, datetime]:
    """The UTC day holding ``now``: its midnight and the next one (when the counts reset)."""
    start = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return start, start + timedelta(days=1)


def _limits(override: UserQuota | None) -> QuotaLimits:
    replies: int | None = settings.USER_DAILY_REPLY_LIMIT
    tokens: int | None = settings.USER_DAILY_TOKEN_LIMIT
    if override is not None:
        if override.unlimited_replies:
            replies = None
        elif override.daily_reply_limit is not None:
            replies = override.daily_reply_limit
        if override.unlimited_tokens:
            tokens = None
        elif override.daily_token_limit is not None:
            tokens = override.daily_token_limit
    return QuotaLimits(replies=replies, tokens=tokens)


def quota_limits(*, user_ids: Collection[int]) -> dict[int, QuotaLimits]:
    """The limits in force for each user: their own from the admin (``UserQuota``) where set, else
    the site's defaults. One query (none for no users)."""
    overrides = {row.pk: row for row in UserQuota.objects.filter(pk__in=user_ids)} if user_ids else {}
    return {user_id: _limits(overrides.get(user_id)) for user_id in user_ids}


def _quota_counts(*, now: datetime, user_id: int | None = None) -> dict[int, tuple[int, int]]:
    """``(replies, tokens)`` used on ``now``'s UTC day, by user id: one grouped range scan of
    ReplyMetric (the ``(user, created_at)`` index for one user, ``(created_at)`` for all), plus
    the replies in progress at the moment of the call."""
    start, end = quota_day(now)
    rows = ReplyMetric.objects.filter(created_at__gte=start, created_at__lt=end)
    rows = rows.filter(user_id=user_id) if user_id is not None else rows.exclude(user=None)
    counts: dict[int, tuple[int, int]] = {
        row["user_id"]: (row["replies"], row["tokens"])
        for row in rows.values("user_id")
        .annotate(replies=Count("id"), tokens=Sum("completion_tokens", default=0) + Sum("prompt_tokens", default=0))
        .order_by()
    }
    for owner_id, in_progress in replies_in_progress_by_user(user_id=user_id).items():
        replies, tokens = counts.get(owner_id, (0, 0))
        counts[owner_id] = (replies + in_progress, tokens)
    return counts


def _usage(user_id: int, counts: tuple[int, int], limits: QuotaLimits, now: datetime) -> QuotaUsage:
    start, end = quota_day(now)
    return QuotaUsage(
        user_id=user_id,
        day_start=start,
        resets_at=end,
        replies_used=counts[0],
        replies_limit=limits.replies,
        tokens_used=counts[1],
        tokens_limit=limits.tokens,
    )


def quota_usage_get(*, user_id: int, now: datetime | None = None, limits: QuotaLimits | None = None) -> QuotaUsage:
    """One user's daily usage and limits (``limits`` when the caller read them already). Four
    queries: the limits, the day's replies and tokens, the replies in progress (two)."""
    now = now or timezone.now()
    limits = limits or quota_limits(user_ids=[user_id])[user_id]
    counts = _quota_counts(now=now, user_id=user_id).get(user_id, (0, 0))
    return _usage(user_id, counts, limits, now)


def quota_usage_list(*, now: datetime | None = None) -> list[QuotaUsage]:
    """The daily usage of every user who used anything on ``now``'s UTC day (or has a reply in
    progress), with their limits; four queries whatever the number of users."""
    now = now or timezone.now()
    counts = _quota_counts(now=now)
    limits = quota_limits(user_ids=list(counts))
    return [_usage(user_id, used, limits[user_id], now) for user_id, used in counts.items()]


def attachment_bytes_total(*, user: User) -> int:
    """Bytes of every file stored in the user's threads, deleted threads included (their files stay)."""
    return ChatAttachment.objects.filter(thread__owner=user).aggregate(total=Sum("size"))["total"] or 0


def message_list_awaiting_reply(*, stored_before: datetime, limit: int) -> list[ChatMessage]:
    """User messages in the reply outbox stored (and, for a regenerate, asked again) before
    ``stored_before``, oldest first."""
    return list(
        ChatMessage.objects.filter(awaiting_reply=True, created_at__lt=stored_before)
        .filter(Q(reply_requested_at__isnull=True) | Q(reply_requested_at__lt=stored_before))
        .order_by("created_at", "id")[:limit]
    )


def message_list_in_threads(*, thread_ids: list[uuid.UUID]) -> QuerySet[ChatMessage]:
    """The messages of several threads (already access-checked), by thread then oldest first,
    for exports, which read many threads a batch at a time (attachments: ``attachments_by_message``)."""
    return ChatMessage.objects.filter(thread_id__in=thread_ids).order_by("thread_id", "created_at", "id")


def attachments_by_message(*, thread_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[ChatAttachment]]:
    """The attachments of several threads (already access-checked) by message, oldest first, in
    one query: cheaper than a prefetch, which builds a queryset for every message."""
    grouped: dict[uuid.UUID, list[ChatAttachment]] = {}
    for attachment in ChatAttachment.objects.filter(thread_id__in=thread_ids).order_by("created_at", "id"):
        grouped.setdefault(attachment.message_id, []).append(attachment)
    return grouped


# --- For operators (management commands) -------------------------------------------------------


def _percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile of sorted values, None when there are none."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def reply_stats(*, since: datetime) -> dict[str, Any]:
    """Replies ended since ``since``: how many, how many ended in error, and p50/p95 of the seconds
    from the user message being stored to its reply ending (``ReplyStream.ended_at``; a regenerate
    counts from when it was asked)."""
    rows = ReplyStream.objects.filter(ended_at__gte=since).values_list(
        "status", "ended_at", "started_at", "reply_to__created_at", "reply_to__reply_requested_at", "attempt"
    )
    seconds: list[float] = []
    errors = 0
    for status, ended_at, started_at, created_at, requested_at, attempt in rows:
        if ended_at is None:  # not after the filter; for the type checker
            continue
        errors += status == ReplyStream.Status.ERROR
        asked = requested_at if attempt and requested_at else created_at
        seconds.append(max(0.0, (ended_at - min(asked, started_at)).total_seconds()))
    seconds.sort()
    p50, p95 = _percentile(seconds, 0.5), _percentile(seconds, 0.95)
    return {
        "replies": len(seconds),
        "errors": errors,
        "p50_seconds": None if p50 is None else round(p50, 3),
        "p95_seconds": None if p95 is None else round(p95, 3),
    }


def site_stats(*, now: datetime | None = None) -> dict[str, Any]:
    """Counts over the whole site for an operator: users, threads by status, messages by role and
    error messages, replies of the last hour and day with their latency, open reply streams and
    the attachments' storage."""
    from django.contrib.auth import get_user_model

    from threads.selectors import thread_counts_by_status

    now = now or timezone.now()
    by_role = dict(ChatMessage.objects.values_list("role").annotate(n=Count("id")).values_list("role", "n"))
    storage = ChatAttachment.objects.aggregate(files=Count("id"), bytes=Sum("size"))
    return {
        "users": get_user_model().objects.count(),
        "threads": thread_counts_by_status(),
        "messages": {role: by_role.get(role, 0) for role in ChatMessage.Role.values},
        "error_messages": ChatMessage.objects.filter(type=ChatMessage.Type.ERROR).count(),
        "replies": {
            "last_hour": reply_stats(since=now - timedelta(hours=1)),
            "last_day": reply_stats(since=now - timedelta(days=1)),
        },
        "open_streams": ReplyStream.objects.filter(status=ReplyStream.Status.STREAMING).count(),
        "attachments": {"files": storage["files"], "bytes": storage["bytes"] or 0},
    }


def stream_list(*, open_only: bool = False, limit: int = 100) -> list[ReplyStream]:
    """Reply streams of every thread, newest first (``open_only``: those still streaming)."""
    streams = ReplyStream.objects.select_related("thread__owner").order_by("-started_at", "-id")
    if open_only:
        streams = streams.filter(status=ReplyStream.Status.STREAMING)
    return list(streams[:limit])


def reply_metric_count(*, before: datetime) -> int:
    """Reply metrics created before ``before`` (what a retention prune would delete)."""
    return ReplyMetric.objects.filter(created_at__lt=before).count()

"""Writes to messages, attachments and reply streams.

Every change that clients must see is broadcast to the thread's group only after the
transaction that stored it commits, so a client never hears of a row it cannot read.
"""

from __future__ import annotations

import hashlib
import json
import math
import mimetypes
import threading
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import PurePosixPath
from typing import Any, Literal, cast

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import SuspiciousFileOperation
from django.core.files.base import ContentFile
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, F, Value, When
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils import timezone
from django.utils.text import get_valid_filename

from chatproject.errors import (
    DailyQuotaExceeded,
    InvalidInput,
    NotFound,
    QuotaExceeded,
    RateLimited,
    TooLarge,
    TooManyReplies,
)
from chatproject.json_input import json_nul_free
from chatproject.ratelimit import window_hit, window_seconds_left
from threads.models import ChatThread
from threads.selectors import parse_uuid
from threads.services import TITLE_MAX_CHARS, thread_advance_leaf, thread_touch, validate_metadata
from threads.signals import thread_changed
from threads.tree import newest_leaf, path_to

from . import events
from .metrics import reply_metric_record, reply_metrics, token_counter_load, tool_step
from .models import ChatAttachment, ChatMessage, ForkMode, ReplyChunk, ReplyStream, UserQuota
from .realtime import groups_broadcast, thread_broadcast, thread_group
from .selectors import attachment_bytes_total, quota_limits, quota_usage_get, reply_in_progress_count, stream_text
from .serializers import message_payload
from .signals import reply_finished, user_message_created, user_message_posted

CLIENT_ID_MAX_CHARS = cast(int, ChatMessage._meta.get_field("client_id").max_length)  # a CharField: always set


class _ActiveLeaf:
    def __repr__(self) -> str:
        return "ACTIVE_LEAF"


# ``parent_id`` when none was given: the message continues the thread's active branch. An
# explicit None is a new root (an edit of a thread's first message).
ACTIVE_LEAF: Any = _ActiveLeaf()


def _clean_content(content: Any, *, allow_empty: bool) -> str:
    if not isinstance(content, str):
        raise InvalidInput.field("content", "Must be a string.")
    if not allow_empty and not content.strip():
        raise InvalidInput.field("content", "This field may not be blank.")
    if "\x00" in content:  # PostgreSQL cannot store it; DRF's CharField says the same
        raise InvalidInput.field("content", "Null characters are not allowed.")
    if len(content) > settings.MAX_MESSAGE_CHARS:
        raise TooLarge.field(
            "content",
            f"Ensure this field has no more than {settings.MAX_MESSAGE_CHARS} characters ({len(content)} given).",
        )
    return content


def _clean_client_id(client_id: Any) -> str | None:
    if client_id is None:
        return None
    if not isinstance(client_id, str) or not client_id.strip() or len(client_id) > CLIENT_ID_MAX_CHARS:
        raise InvalidInput.field(
            "client_id", f"Must be a non-empty string of at most {CLIENT_ID_MAX_CHARS} characters."
        )
    return client_id


def _resolve_parent(*, thread: ChatThread, parent_id: Any) -> uuid.UUID | None:
    if parent_id is ACTIVE_LEAF:
        # Read now, not from ``thread``: a consumer holds its thread for the whole connection.
        return ChatThread.objects.filter(pk=thread.pk).values_list("active_leaf_id", flat=True).first()
    if parent_id is None:
        return None
    pk = parse_uuid(parent_id)
    if pk is None:
        raise InvalidInput.field("parent", "Must be a message id.")
    if not ChatMessage.objects.filter(pk=pk, thread=thread).exists():
        # Like any id that names nothing of yours (another thread's message included): 404.
        raise NotFound("Parent message not found in this thread.")
    return pk


def _check_rate_limit(user: User) -> None:
    """Fixed-window counter per user in the shared cache (Redis when configured; per process while
    Redis is down, so a message can still be stored then and the limit still holds)."""
    limit, window = settings.MESSAGE_RATE_LIMIT
    if window_hit(f"ratelimit:message:{user.pk}", window=window) > limit:
        raise RateLimited(retry_after=window_seconds_left(window))


# A reply takes seconds: the hint given to a user refused for having too many in progress.
REPLY_BUSY_RETRY_SECONDS = 5


def _lock_sender(user: User) -> None:
    """Serialize this user's sends until the transaction ends, so the per-user checks that
    follow (replies in progress, upload quota) see every earlier send: without it, N sends at
    once on N connections would all pass. A no-op on SQLite, whose writers queue anyway."""
    list(get_user_model().objects.select_for_update(no_key=True).filter(pk=user.pk).values_list("pk"))


def _check_replies_in_progress(user: User) -> None:
    """Refuse a message that would give the user more than MAX_CONCURRENT_REPLIES replies at once.

    Refused rather than deferred: the message is not stored, the client hears at once and can
    send it again, and no backlog of one user's messages waits for (and then takes) the workers.
    """
    in_progress = reply_in_progress_count(user=user)
    if in_progress >= settings.MAX_CONCURRENT_REPLIES:
        replies = "reply" if in_progress == 1 else "replies"
        raise TooManyReplies(
            REPLY_BUSY_RETRY_SECONDS,
            f"You already have {in_progress} {replies} in progress (at most {settings.MAX_CONCURRENT_REPLIES}): "
            "wait for one to finish, then send again.",
        )


def _check_daily_quota(user: User) -> None:
    """Refuse a message that asks for a reply when the user has used up a daily limit (replies or
    tokens, see ``messaging.selectors.QuotaUsage``); nothing is stored. Call under ``_lock_sender``,
    so that sends at once cannot pass the reply limit together. One query when no limit applies."""
    limits = quota_limits(user_ids=[user.pk])[user.pk]
    if limits.replies is None and limits.tokens is None:
        return
    now = timezone.now()
    usage = quota_usage_get(user_id=user.pk, now=now, limits=limits)
    if reached := usage.reached():
        quota = reached[0]
        raise DailyQuotaExceeded(
            quota=quota,
            limit=cast(int, usage.replies_limit if quota == "replies" else usage.tokens_limit),
            used=usage.replies_used if quota == "replies" else usage.tokens_used,
            resets_at=usage.resets_at.isoformat().replace("+00:00", "Z"),
            retry_after=max(1, math.ceil((usage.resets_at - now).total_seconds())),
        )


@transaction.atomic
def message_create(
    *,
    thread: ChatThread,
    role: str,
    content: str,
    sender: User | None = None,
    type: str = ChatMessage.Type.TEXT,
    metadata: dict[str, Any] | None = None,
    parent_id: Any = ACTIVE_LEAF,
    client_id: str | None = None,
    awaiting_reply: bool = False,
    activate: bool = True,
) -> ChatMessage:
    """Store a message of any role and bump the thread's activity time. Triggers nothing.

    Without ``parent_id`` the message continues the thread's active branch (its parent is the
    active leaf); ``None`` makes it a new root. ``activate`` makes it the thread's active leaf.
    ``awaiting_reply`` puts the message in the reply outbox (see ``ChatMessage.awaiting_reply``).
    """
    if role not in ChatMessage.Role.values:
        raise InvalidInput.field("role", f'"{role}" is not a valid choice.')
    if type not in ChatMessage.Type.values:
        raise InvalidInput.field("type", f'"{type}" is not a valid choice.')
    message = ChatMessage.objects.create(
        thread=thread,
        sender=sender if role == ChatMessage.Role.USER else None,
        role=role,
        type=type,
        content=_clean_content(
            # What the agent and its tools write is kept, minus the NULs no database column takes.
            content if role == ChatMessage.Role.USER else json_nul_free(content)[0],
            allow_empty=role != ChatMessage.Role.USER or type == ChatMessage.Type.FILE,
        ),
        # What users send is bounded; the agent's own metadata (its trajectory) is ours.
        metadata=validate_metadata(metadata, limited=role == ChatMessage.Role.USER),
        parent_id=_resolve_parent(thread=thread, parent_id=parent_id),
        client_id=client_id,
        awaiting_reply=awaiting_reply,
    )
    if activate:
        thread_touch(thread_id=thread.pk, active_leaf_id=message.pk)
        thread.active_leaf_id = message.pk
    else:
        thread_touch(thread_id=thread.pk)
    return message


def _announce_user_message(message: ChatMessage) -> None:
    """After commit: show the message to everyone in the thread, then let the agent reply (unless
    it was stored with ``reply=False``). Sends ``user_message_created`` now, in the transaction.

    The message is stored whatever happens here: a failure to announce it (Redis or the broker
    down) is logged, not reported to the sender, and its reply is queued again from the outbox.
    """

    def announce() -> None:
        thread_broadcast(message.thread_id, events.group_event(events.message(payload)))
        if message.awaiting_reply:
            user_message_posted.send(sender=ChatMessage, message_id=message.pk, thread_id=message.thread_id)

    payload = message_payload(message)
    user_message_created.send(sender=ChatMessage, message=message)
    transaction.on_commit(announce, robust=True)


def _existing_by_client_id(thread: ChatThread, client_id: str | None) -> ChatMessage | None:
    if client_id is None:
        return None
    return ChatMessage.objects.prefetch_related("attachments").filter(thread=thread, client_id=client_id).first()


def _send_once(
    *,
    thread: ChatThread,
    sender: User,
    client_id: Any,
    validate: Callable[[], Any],
    store: Callable[[str | None], ChatMessage],
    reply: bool = True,
) -> tuple[ChatMessage, bool]:
    """Store a user message once per ``client_id`` and announce it; ``(message, created)``.

    The order matters: a retry of a stored message is answered before any check; a message that
    fails validation does not count against the rate limit; nothing is stored or announced when
    the daily quota (``reply``: only a message that asks for a reply), the cap on replies in
    progress or ``store`` refuses it.
    """
    client_id = _clean_client_id(client_id)
    if existing := _existing_by_client_id(thread, client_id):
        return existing, False
    validate()
    _check_rate_limit(sender)
    try:
        with transaction.atomic():
            _lock_sender(sender)
            if reply:
                _check_daily_quota(sender)
            _check_replies_in_progress(sender)
            message = store(client_id)
            _announce_user_message(message)
    except IntegrityError:
        # The same client_id raced in from another connection: the first one won.
        if existing := _existing_by_client_id(thread, client_id):
            return existing, False
        raise
    return message, True


def message_send(
    *,
    thread: ChatThread,
    sender: User,
    content: str,
    metadata: dict[str, Any] | None = None,
    parent_id: Any = ACTIVE_LEAF,
    client_id: str | None = None,
    reply: bool = True,
) -> tuple[ChatMessage, bool]:
    """Store a user's text message; returns ``(message, created)``. ``reply=False``: no agent reply.

    Without ``parent_id`` it continues the thread's active branch; with one it starts a branch
    there (an edit: the parent of the message edited; ``None`` for a new root). Either way it
    becomes the active leaf.

    The same ``client_id`` in a thread returns the stored message with ``created`` False and
    announces nothing. A new message is broadcast to the thread after commit and sends
    ``user_message_posted`` (the agent replies). Raises RateLimited past MESSAGE_RATE_LIMIT,
    DailyQuotaExceeded past the user's daily limits (when ``reply``) and TooManyReplies when the
    user already waits for MAX_CONCURRENT_REPLIES replies.
    """

    def store(client_id: str | None) -> ChatMessage:
        return message_create(
            thread=thread,
            role=ChatMessage.Role.USER,
            sender=sender,
            content=content,
            metadata=metadata,
            parent_id=parent_id,
            client_id=client_id,
            awaiting_reply=reply,
        )

    return _send_once(
        thread=thread,
        sender=sender,
        client_id=client_id,
        validate=lambda: _clean_content(content, allow_empty=False),
        store=store,
        reply=reply,
    )


def message_regenerate(
    *, thread: ChatThread, sender: User, message_id: Any, client_id: Any = None
) -> tuple[ChatMessage, bool]:
    """Ask the agent for another reply to a user message (or, given an AI message, to the message
    it answers): a new AI sibling streams like any reply. Returns ``(user message, created)``.

    The user message becomes the thread's active leaf, so the new reply is the one shown when it
    ends. The same ``client_id`` again asks nothing more (``created`` False). Sends
    ``user_message_posted`` after commit (the agent queues the reply); the rate limit, the daily
    quota and the cap on replies in progress apply as to a send.
    """
    client_id = _clean_client_id(client_id)
    pk = parse_uuid(message_id) if isinstance(message_id, str | uuid.UUID) else None
    message = ChatMessage.objects.filter(pk=pk, thread=thread).first() if pk else None
    if message is None:
        raise NotFound("Message not found in this thread.")
    if message.role == ChatMessage.Role.AI and message.parent_id is not None:
        message = ChatMessage.objects.get(pk=message.parent_id)
    if message.role != ChatMessage.Role.USER:
        raise InvalidInput.field("message_id", "Only a user message, or an AI reply to one, can be answered again.")

    def asked_already() -> bool:
        return client_id is not None and (
            ChatMessage.objects.filter(pk=message.pk, reply_client_id=client_id).exists()
            or ReplyStream.objects.filter(reply_to=message, client_id=client_id).exists()
        )

    if asked_already():
        return message, False
    _check_rate_limit(sender)
    with transaction.atomic():
        _lock_sender(sender)
        if asked_already():  # the same request raced in on another connection
            return message, False
        _check_daily_quota(sender)
        _check_replies_in_progress(sender)
        ChatMessage.objects.filter(pk=message.pk).update(
            reply_attempt=F("reply_attempt") + 1,
            reply_client_id=client_id,
            reply_requested_at=timezone.now(),
            awaiting_reply=True,
        )
        thread_touch(thread_id=thread.pk, active_leaf_id=message.pk)
        transaction.on_commit(
            lambda: user_message_posted.send(sender=ChatMessage, message_id=message.pk, thread_id=thread.pk),
            robust=True,
        )
    message.refresh_from_db()
    return message, True


# Fork copies are written in batches of this many rows.
FORK_BATCH = 500


@transaction.atomic
def thread_fork(*, thread: ChatThread, message_id: Any, mode: str = ForkMode.PATH) -> ChatThread:
    """A new thread of the same owner, titled "<title> (fork)", holding copies of part of the tree:

    - ``path``: the messages from the root down to the message;
    - ``path_with_branches``: that path plus the siblings of every message on it (not their subtrees);
    - ``subtree``: the message and everything under it, the message becoming the root.

    Copies get new ids and keep role, type, content, sender, metadata and their original
    timestamps (so their order); their parents are the copies of their parents. Attachments are
    copied as rows pointing at the same stored file (files are never rewritten, so sharing is
    safe; the copy counts against the owner's quota again). The copy of the message (for
    ``subtree``, of the newest message under it) is the new thread's active leaf. The fork keeps
    the thread's model and custom instructions. Sends ``thread_changed`` (created) in its
    transaction, as any new thread does; no reply is asked for.
    """
    if mode not in ForkMode.values:
        raise InvalidInput.field("mode", f'"{mode}" is not a valid choice: {", ".join(ForkMode.values)}.')
    pk = parse_uuid(message_id) if isinstance(message_id, str | uuid.UUID) else None
    pairs = list(ChatMessage.objects.filter(thread=thread).order_by("created_at", "id").values_list("id", "parent_id"))
    if pk is None or pk not in dict(pairs):
        # Like a parent or a leaf naming no message of the thread: not found, not invalid.
        raise NotFound("Message not found in this thread.")
    if mode == ForkMode.SUBTREE:
        wanted = {pk}
        for node, parent in pairs:
            if parent in wanted:
                wanted.add(node)
        leaf = newest_leaf(pairs, pk)
    else:
        wanted = set(path_to(pairs, pk))
        if mode == ForkMode.PATH_WITH_BRANCHES:
            parents_on_path = {parent for node, parent in pairs if node in wanted}
            wanted |= {node for node, parent in pairs if parent in parents_on_path}
        leaf = pk
    originals = list(
        ChatMessage.objects.filter(pk__in=wanted).order_by("created_at", "id").prefetch_related("attachments")
    )
    fork = ChatThread.objects.create(
        owner=thread.owner,
        title=f"{thread.title or 'Untitled'}"[: TITLE_MAX_CHARS - len(" (fork)")] + " (fork)",
        metadata={"forked_from": {"thread": str(thread.pk), "message": str(pk), "mode": mode}},
        # The conversation goes on as it was set up: same model, same custom instructions.
        model=thread.model,
        instructions=thread.instructions,
    )
    new_ids: dict[uuid.UUID | None, uuid.UUID] = {m.pk: uuid.uuid4() for m in originals}
    copies = [
        ChatMessage(
            id=new_ids[m.pk],
            thread=fork,
            sender_id=m.sender_id,
            role=m.role,
            type=m.type,
            content=m.content,
            metadata={k: v for k, v in m.metadata.items() if k != "stream_id"},
            parent_id=None if m.pk == pk and mode == ForkMode.SUBTREE else new_ids.get(m.parent_id),
        )
        for m in originals
    ]
    ChatMessage.objects.bulk_create(copies, batch_size=FORK_BATCH)
    # auto_now_add stamped every copy "now": give them back their times, one statement a batch.
    for start in range(0, len(originals), FORK_BATCH):
        batch = originals[start : start + FORK_BATCH]
        ChatMessage.objects.filter(pk__in=[new_ids[m.pk] for m in batch]).update(
            created_at=Case(*(When(pk=new_ids[m.pk], then=Value(m.created_at)) for m in batch))
        )
    attachments = []
    for m in originals:
        for a in m.attachments.all():
            copy = ChatAttachment(
                message_id=new_ids[m.pk],
                thread=fork,
                file=a.file.name,
                filename=a.filename,
                file_type=a.file_type,
                size=a.size,
                sha256=a.sha256,
                metadata=a.metadata,
            )
            copy.url = reverse("attachment-download", kwargs={"attachment_id": copy.id})
            attachments.append(copy)
    ChatAttachment.objects.bulk_create(attachments, batch_size=FORK_BATCH)
    ChatThread.objects.filter(pk=fork.pk).update(active_leaf_id=new_ids[leaf])
    fork.refresh_from_db()
    thread_changed.send(sender=ChatThread, thread=fork, change="created")
    return fork


def _safe_filename(filename: Any) -> str:
    """The last path component, reduced to safe characters; refuses names with nothing left."""
    if not isinstance(filename, str):
        raise InvalidInput.field("filename", "Must be a string.")
    base = PurePosixPath(filename.replace("\\", "/")).name.strip()
    try:
        return get_valid_filename(base)[-200:]
    except SuspiciousFileOperation:  # nothing usable left, e.g. "..", "???"
        raise InvalidInput.field("filename", "A file name is required.") from None


def _check_file_size(data: bytes) -> None:
    if not data:
        raise InvalidInput.field("data", "The file is empty.")
    if len(data) > settings.MAX_UPLOAD_BYTES:
        raise TooLarge.field("data", f"The file is larger than {settings.MAX_UPLOAD_BYTES} bytes.")


def attachment_create(
    *, message: ChatMessage, filename: str, data: bytes, content_type: str = "", metadata: dict[str, Any] | None = None
) -> ChatAttachment:
    """Store ``data`` as a file of ``message`` with its size and sha256; refuses empty or oversized files."""
    _check_file_size(data)
    safe_name = _safe_filename(filename)
    file_type = content_type or mimetypes.guess_type(safe_name)[0] or "application/octet-stream"
    attachment = ChatAttachment(
        message=message,
        thread_id=message.thread_id,
        filename=safe_name,
        file_type=file_type[:100],
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        metadata=validate_metadata(metadata),
    )
    attachment.url = reverse("attachment-download", kwargs={"attachment_id": attachment.id})
    attachment.file.save(safe_name, ContentFile(data), save=False)
    try:
        attachment.save()
    except Exception:
        # The row did not land: do not leave an orphan file behind.
        attachment.file.delete(save=False)
        raise
    return attachment


def _type_kind(file_type: str) -> str:
    """Types that differ only as names for UTF-8 text (.py sent as text/plain) are one kind."""
    return "text" if file_type.startswith("text/") or file_type == "application/json" else file_type


def upload_type_check(*, filename: str, content_type: str) -> str:
    """The file's type if uploads of it are allowed; InvalidInput naming the field otherwise.

    The type is the declared one, else the one the name's extension gives; when both are known
    they must agree (a "photo.png" declared as a PDF, a "page.html" declared as an image: refused).
    """
    declared = (content_type or "").split(";")[0].strip().lower()
    guessed = mimetypes.guess_type(filename if isinstance(filename, str) else "")[0] or ""
    file_type = declared or guessed
    if file_type not in settings.ALLOWED_UPLOAD_TYPES:
        allowed = ", ".join(settings.ALLOWED_UPLOAD_TYPES)
        raise InvalidInput.field(
            "content_type", f'Files of type "{file_type or "unknown"}" are not accepted ({allowed}).'
        )
    if guessed and _type_kind(guessed) != _type_kind(file_type):
        raise InvalidInput.field("filename", f'The name says "{guessed}" but the file is declared as "{file_type}".')
    return file_type


# What each binary type's content starts with (its "magic bytes").
_SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "application/pdf": (b"%PDF-",),
}


def upload_content_check(*, file_type: str, data: bytes) -> None:
    """Refuse content that is not what its type says (InvalidInput naming ``data``).

    Binary types by their magic bytes; text types must be UTF-8 without NUL bytes, and JSON must
    parse. Types without a known signature (an operator's addition to ALLOWED_UPLOAD_TYPES) pass:
    downloads are always sent as attachments with nosniff, so a browser never renders them.
    """
    if file_type == "image/webp":
        if not (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
            raise InvalidInput.field("data", f'The file\'s content is not "{file_type}", as it is declared.')
    elif file_type in _SIGNATURES:
        if not data.startswith(_SIGNATURES[file_type]):
            raise InvalidInput.field("data", f'The file\'s content is not "{file_type}", as it is declared.')
    elif _type_kind(file_type) == "text":
        if b"\x00" in data:
            raise InvalidInput.field("data", f'A "{file_type}" file must be text: this one contains NUL bytes.')
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InvalidInput.field("data", f'A "{file_type}" file must be UTF-8 text: this one is not.') from None
        if file_type == "application/json":
            try:
                json.loads(text)
            except (ValueError, RecursionError):
                raise InvalidInput.field("data", "The file is not valid JSON.") from None


def _check_upload_quota(user: User, size: int) -> None:
    used = attachment_bytes_total(user=user)
    quota = settings.UPLOAD_QUOTA_BYTES
    if used + size > quota:
        raise QuotaExceeded(
            f"This file ({filesizeformat(size)}) would take your stored files past your quota: "
            f"{filesizeformat(used)} of {filesizeformat(quota)} used."
        )


def message_send_file(
    *,
    thread: ChatThread,
    sender: User,
    filename: str,
    data: bytes,
    content_type: str = "",
    caption: str = "",
    client_id: str | None = None,
) -> tuple[ChatMessage, bool]:
    """Store a user message of type ``file`` with its attachment; otherwise as ``message_send``.

    Nothing is stored when any check fails (type, content against type, size, name, caption,
    rate, replies in progress); QuotaExceeded when the user's files would pass UPLOAD_QUOTA_BYTES.
    """

    def validate() -> None:
        file_type = upload_type_check(filename=filename, content_type=content_type)
        _check_file_size(data)
        upload_content_check(file_type=file_type, data=data)
        _clean_content(caption, allow_empty=True)
        # Early and cheap; checked again in store(), under the sender's lock, against racing uploads.
        _check_upload_quota(sender, len(data))

    def store(client_id: str | None) -> ChatMessage:
        _check_upload_quota(sender, len(data))
        message = message_create(
            thread=thread,
            role=ChatMessage.Role.USER,
            sender=sender,
            content=caption,
            type=ChatMessage.Type.FILE,
            client_id=client_id,
            awaiting_reply=True,
        )
        file_type = upload_type_check(filename=filename, content_type=content_type)
        attachment_create(message=message, filename=filename, data=data, content_type=file_type)
        return ChatMessage.objects.prefetch_related("attachments").get(pk=message.pk)

    return _send_once(thread=thread, sender=sender, client_id=client_id, validate=validate, store=store)


# --- Reply streams ------------------------------------------------------------------------------
# The worker producing a reply is the only writer of its stream until the stream ends; every
# write is conditional on the stream still streaming, so a worker that lost its stream to the
# stale sweep (or a second, redelivered task) learns it must stop.


def stream_start(*, reply_to: ChatMessage) -> ReplyStream | None:
    """Open the reply stream for the user message's current reply attempt; None when that attempt
    has its stream already (a redelivered task, or a task queued again by the outbox sweep).

    The message leaves the reply outbox in the same transaction: this attempt has its reply now.
    """
    try:
        with transaction.atomic():
            attempt, client_id, stored_at, requested_at = (
                ChatMessage.objects.filter(pk=reply_to.pk)
                .values_list("reply_attempt", "reply_client_id", "created_at", "reply_requested_at")
                .get()
            )
            stream = ReplyStream.objects.create(
                thread_id=reply_to.thread_id,
                reply_to=reply_to,
                attempt=attempt,
                client_id=client_id,
                heartbeat_at=timezone.now(),
                requested_at=requested_at or stored_at,
            )
            ChatMessage.objects.filter(pk=reply_to.pk, awaiting_reply=True, reply_attempt=attempt).update(
                awaiting_reply=False
            )
    except (IntegrityError, ChatMessage.DoesNotExist):
        return None
    event = events.group_event(events.stream_start(stream.pk, reply_to=reply_to.pk, attempt=stream.attempt))
    transaction.on_commit(lambda: thread_broadcast(stream.thread_id, event))
    return stream


def stream_append(*, stream: ReplyStream, delta: str) -> bool:
    """Record one delta as the next ``seq`` and broadcast it; False when the stream has ended.

    One INSERT of a ``ReplyChunk`` and one UPDATE of the stream's fixed-size row (its count and
    heartbeat), so what a delta writes does not grow with the reply; the chunks of every reply this
    process is streaming at that moment are written together (see ``_ChunkWriter``). The seq is the
    producing worker's own count, as it is the stream's only writer; the UPDATE, conditional on
    the stream still streaming, takes the stream's row lock (SQLite: the write lock) until commit,
    so ``stream_finish`` (a stop, the stale sweep) either waits for this chunk and persists it, or
    has ended the stream first and this delta is refused, stored nowhere and never broadcast. A
    second writer would break the ``(stream, seq)`` unique constraint.
    """
    if not delta:
        return True
    delta = json_nul_free(delta)[0]  # a tool's output may hold NULs; PostgreSQL's text takes none
    seq = stream.chunk_count
    chunk = _Chunk(stream_id=uuid.UUID(str(stream.pk)), thread_id=stream.thread_id, seq=seq, delta=delta)
    if not _chunk_writer.write(chunk):
        return False
    stream.chunk_count = seq + 1
    return True


@dataclass
class _Chunk:
    stream_id: uuid.UUID
    thread_id: uuid.UUID
    seq: int
    delta: str
    done: bool = False
    stored: bool = False
    error: BaseException | None = None


class _ChunkWriter:
    """Group commit of reply chunks: the chunks of every reply this process streams go to the
    database together, one statement for all of them, and out to the channel layer with one
    hand-over to the sending loop.

    A thread-pool worker streams dozens of replies at once; a statement, a round trip and a
    publish hand-over per chunk made the chunk write the largest part of a streaming worker's time
    (``bench/run.py pipeline``). The first reply to write becomes the leader: it writes every chunk
    waiting (its own among them) and wakes the others, whose chunks are then stored and
    broadcast, as if each had written its own. While it writes, chunks of other replies gather for
    the next leader. Alone, a reply writes its chunk at once, as before.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._waiting: list[_Chunk] = []
        self._leading = False

    def write(self, chunk: _Chunk) -> bool:
        """Store and broadcast the chunk; True when stored, False when its stream has ended."""
        with self._changed:
            self._waiting.append(chunk)
            while not chunk.done and self._leading:
                self._changed.wait()
            if chunk.done:
                return self._outcome(chunk)
            self._leading = True
            batch, self._waiting = self._waiting, []
        try:
            stored = _chunks_insert(batch)
            for each in batch:
                each.stored = each.stream_id in stored
            sends = [
                (
                    thread_group(each.thread_id),
                    events.group_event(events.stream_chunk(each.stream_id, seq=each.seq, delta=each.delta)),
                )
                for each in batch
                if each.stored
            ]
            transaction.on_commit(lambda: groups_broadcast(sends))  # at once in autocommit
        except BaseException as exc:
            for each in batch:
                each.error = exc
            raise
        finally:
            with self._changed:
                for each in batch:
                    each.done = True
                self._leading = False
                self._changed.notify_all()
        return self._outcome(chunk)

    @staticmethod
    def _outcome(chunk: _Chunk) -> bool:
        if chunk.error is not None:
            raise chunk.error
        return chunk.stored


_chunk_writer = _ChunkWriter()

# PostgreSQL does the UPDATEs and the INSERTs as one statement (one round trip instead of four per
# chunk with BEGIN and COMMIT). The streams' rows are locked in id order, as the heartbeat does,
# so the two never deadlock over the rows of one worker's streams.
_CHUNKS_INSERT_SQL = f"""
WITH chunk (stream_id, seq, delta) AS (VALUES {{values}}),
locked AS (
    SELECT id FROM {ReplyStream._meta.db_table}
    WHERE id IN (SELECT stream_id FROM chunk) AND status = %s
    ORDER BY id FOR UPDATE
),
open_stream AS (
    UPDATE {ReplyStream._meta.db_table} AS stream
    SET chunk_count = stream.chunk_count + 1, heartbeat_at = %s,
        first_chunk_at = CASE WHEN chunk.seq = 0 THEN %s ELSE stream.first_chunk_at END
    FROM chunk
    WHERE stream.id = chunk.stream_id AND stream.id IN (SELECT id FROM locked)
    RETURNING stream.id
)
INSERT INTO {ReplyChunk._meta.db_table} (stream_id, seq, delta)
SELECT chunk.stream_id, chunk.seq, chunk.delta FROM chunk JOIN open_stream ON open_stream.id = chunk.stream_id
RETURNING stream_id
"""


def _chunks_insert(chunks: list[_Chunk]) -> set[uuid.UUID]:
    """Store each chunk whose stream is still streaming (see ``stream_append``); the ids of the
    streams whose chunk was stored. At most one chunk per stream: its writer waits for it."""
    now = timezone.now()
    if connection.vendor == "postgresql":
        values = ", ".join(["(%s::uuid, %s::integer, %s::text)"] * len(chunks))
        params: list[Any] = [value for c in chunks for value in (str(c.stream_id), c.seq, c.delta)]
        params += [str(ReplyStream.Status.STREAMING), now, now]
        with connection.cursor() as cursor:
            cursor.execute(_CHUNKS_INSERT_SQL.format(values=values), params)
            return {uuid.UUID(str(row[0])) for row in cursor.fetchall()}
    stored = set()
    with transaction.atomic():
        for chunk in chunks:
            first = {"first_chunk_at": now} if chunk.seq == 0 else {}
            if ReplyStream.objects.filter(pk=chunk.stream_id, status=ReplyStream.Status.STREAMING).update(
                chunk_count=F("chunk_count") + 1, heartbeat_at=now, **first
            ):
                stored.add(chunk.stream_id)
        ReplyChunk.objects.bulk_create(
            ReplyChunk(stream_id=c.stream_id, seq=c.seq, delta=c.delta) for c in chunks if c.stream_id in stored
        )
    return stored


def stream_status(*, stream: ReplyStream, status: dict[str, Any]) -> bool:
    """Tell clients what the agent is doing (a tool call, its result); False when the stream has ended.

    A ``tool_end`` step is also kept on the stream for the reply's metrics.
    """
    step = tool_step(status)
    if step is None:
        if not stream_heartbeat(stream=stream):
            return False
    else:
        tools = [*stream.tools, step]
        if not ReplyStream.objects.filter(pk=stream.pk, status=ReplyStream.Status.STREAMING).update(
            tools=tools, heartbeat_at=timezone.now()
        ):
            return False
        stream.tools = tools
    event = events.group_event(events.stream_status(stream.pk, status))
    transaction.on_commit(lambda: thread_broadcast(stream.thread_id, event))
    return True


def stream_heartbeat(*, stream: ReplyStream) -> bool:
    """Prove the producing worker is alive; False when the stream has ended."""
    return bool(
        ReplyStream.objects.filter(pk=stream.pk, status=ReplyStream.Status.STREAMING).update(
            heartbeat_at=timezone.now()
        )
    )


def stream_heartbeat_many(*, stream_ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
    """Prove the producing worker is alive for each of these streams in one UPDATE; returns the ids
    still streaming (the others have ended: their replies must stop).

    Rows locked by someone else are skipped, not waited for: a chunk write (which beats the
    stream itself) or the stream's end holds them, and waiting would hold the locks already taken
    on the others, stalling their chunk writes behind one reply's end. The rest are locked in id
    order, as the chunk writer locks them (``_chunks_insert``), so the two never deadlock.
    """
    ids = list(stream_ids)
    if not ids:
        return set()
    with transaction.atomic():
        streaming = ReplyStream.objects.filter(pk__in=ids, status=ReplyStream.Status.STREAMING).order_by("pk")
        free = list(streaming.select_for_update(skip_locked=True).values_list("pk", flat=True))
        ReplyStream.objects.filter(pk__in=free).update(heartbeat_at=timezone.now())
    return set(streaming.values_list("pk", flat=True))  # a plain read: it waits for no lock


def stream_finish(
    *,
    stream: ReplyStream,
    status: str,
    content: str | None = None,
    type: str = ChatMessage.Type.TEXT,
    metadata: dict[str, Any] | None = None,
) -> ChatMessage | None:
    """End the stream and persist the AI message; None when the stream had already ended.

    ``content`` defaults to the deltas joined in order. The reply's metrics (see
    ``messaging.metrics``) go into the message's metadata and a ``ReplyMetric`` row, whatever the
    status. Clients get ``stream_end`` with the message after commit (and an ``agent_error`` event
    when the status is ``error``); sends ``reply_finished`` in the transaction.
    """
    if status not in ReplyStream.ENDED:
        raise InvalidInput.field("status", f'"{status}" does not end a stream.')
    if "usage" not in (metadata or {}):
        token_counter_load()  # its text will be counted in the transaction: not the first load there
    with transaction.atomic():
        won = ReplyStream.objects.filter(pk=stream.pk, status=ReplyStream.Status.STREAMING).update(
            status=status, ended_at=timezone.now()
        )
        if not won:
            return None
        # After the winning UPDATE: an append that held the row lock has committed its chunk, and
        # none can follow, so these rows are exactly the chunks clients were sent.
        stream.refresh_from_db(fields=["chunk_count", "status", "ended_at", "started_at", "first_chunk_at", "tools"])
        text = stream_text(stream_id=stream.pk) if content is None else content
        metrics = reply_metrics(stream=stream, status=status, text=text, given=metadata or {})
        message = message_create(
            thread=stream.thread,
            role=ChatMessage.Role.AI,
            content=text[: settings.MAX_MESSAGE_CHARS],
            type=type,
            parent_id=stream.reply_to_id,
            metadata={**(metadata or {}), **metrics, "stream_id": str(stream.pk), "stream_status": status},
            activate=False,
        )
        reply_metric_record(stream=stream, metrics=metrics, message_id=message.pk)
        thread_advance_leaf(thread_id=stream.thread_id, from_id=stream.reply_to_id, to_id=message.pk)
        ReplyStream.objects.filter(pk=stream.pk).update(message=message)
        stream.message = message
        reply_finished.send(sender=ReplyStream, message=message, status=status)
        payload = message_payload(message)
        chunk_count = stream.chunk_count

        def announce() -> None:
            if status == ReplyStream.Status.ERROR:
                error_text = (metadata or {}).get("error_message") or text
                thread_broadcast(stream.thread_id, events.group_event(events.error("agent_error", error_text)))
            end = events.stream_end(stream.pk, status=status, chunk_count=chunk_count, message=payload)
            thread_broadcast(stream.thread_id, events.group_event(end))

        transaction.on_commit(announce)
    return message


def stream_stop(*, user: User | AnonymousUser, stream_id: Any, thread_id: uuid.UUID | None = None) -> ReplyStream:
    """Stop a reply of one of the user's threads: it ends at once as ``stopped`` with the text sent
    so far persisted (clients get ``stream_end``); the worker learns it at its next delta or ReAct
    step and quits. Stopping a reply that has ended already changes nothing. NotFound for another
    user's stream, a deleted thread's, one outside ``thread_id`` when given, or a malformed id.
    """
    pk = parse_uuid(stream_id) if isinstance(stream_id, str | uuid.UUID) else None
    stream = (
        ReplyStream.objects.select_related("thread")
        .filter(pk=pk, thread__owner=user)
        .filter(**({"thread_id": thread_id} if thread_id else {}))
        .exclude(thread__status=ChatThread.Status.DELETED)
        .first()
        if pk and user.is_authenticated
        else None
    )
    if stream is None:
        raise NotFound("Reply stream not found.")
    if stream.status == ReplyStream.Status.STREAMING:
        stream_finish(stream=stream, status=ReplyStream.Status.STOPPED, metadata={"stopped": True})
    stream.refresh_from_db()
    return stream


def stream_sweep_stale(*, thread_id: uuid.UUID | None = None, stream_ids: Collection[Any] | None = None) -> int:
    """End every stream whose worker stopped beating as ``interrupted``, keeping its partial text
    (of one thread, or among ``stream_ids``, when given).

    Safe to run from many places at once (the stream watch of each server, the periodic sweep, the
    ops command): one caller wins each stream.
    """
    cutoff = timezone.now() - timedelta(seconds=settings.STREAM_STALE_SECONDS)
    stale = ReplyStream.objects.filter(status=ReplyStream.Status.STREAMING, heartbeat_at__lt=cutoff)
    if thread_id is not None:
        stale = stale.filter(thread_id=thread_id)
    if stream_ids is not None:
        stale = stale.filter(pk__in=list(stream_ids))
    ended = 0
    for stream in stale.select_related("thread"):
        if stream_finish(stream=stream, status=ReplyStream.Status.INTERRUPTED, metadata={"interrupted": True}):
            ended += 1
    return ended


# --- Imports --------------------------------------------------------------------------------------


@dataclass
class AttachmentImport:
    filename: str
    data: bytes
    content_type: str = ""


@dataclass
class MessageImport:
    """A message from another export. ``key`` names it within its conversation; ``parent_key`` is
    the key of an earlier message of the same list (None for a root)."""

    key: str
    role: str
    content: str
    parent_key: str | None = None
    type: str = ChatMessage.Type.TEXT
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    attachments: list[AttachmentImport] = field(default_factory=list)


IMPORT_BATCH = 1000


def message_import_bulk(
    *,
    thread: ChatThread,
    owner: User,
    messages: Sequence[MessageImport],
    active_leaf_key: str | None = None,
) -> dict[str, ChatMessage]:
    """Store a whole conversation's messages in a few queries, keeping roles, types, contents,
    metadata, tree shape (``parent_key``) and times; returns them by key. The message named by
    ``active_leaf_key`` (else the newest) becomes the thread's active leaf.

    Triggers nothing: nothing is broadcast, no ``user_message_posted`` is sent and no message
    waits for a reply. Content is not held to MAX_MESSAGE_CHARS (what another product stored is
    kept whole; the import file's size bounds it). Raises InvalidInput for an unknown role or
    type, a parent that is not an earlier message, metadata that is not an object, or a file
    that is empty, over MAX_UPLOAD_BYTES or past the owner's UPLOAD_QUOTA_BYTES; nothing of the
    conversation is stored then (the caller's transaction is rolled back).
    """
    stored: dict[str, ChatMessage] = {}
    now = timezone.now()
    for number, item in enumerate(messages):
        where = f"message {number + 1}"
        if item.role not in ChatMessage.Role.values:
            raise InvalidInput.field("role", f'{where}: "{item.role}" is not a valid choice.')
        if item.type not in ChatMessage.Type.values:
            raise InvalidInput.field("type", f'{where}: "{item.type}" is not a valid choice.')
        if not isinstance(item.content, str):
            raise InvalidInput.field("content", f"{where}: must be a string.")
        if item.key in stored:
            raise InvalidInput.field("id", f'{where}: "{item.key}" appears twice.')
        parent = None
        if item.parent_key is not None:
            parent = stored.get(item.parent_key)
            if parent is None:
                raise InvalidInput.field("parent", f"{where}: its parent is not an earlier message.")
        stored[item.key] = ChatMessage(
            thread=thread,
            sender=owner if item.role == ChatMessage.Role.USER else None,
            role=item.role,
            type=item.type,
            content=item.content,
            metadata=validate_metadata(item.metadata, limited=False),
            parent_id=parent.pk if parent else None,
            created_at=item.created_at or now,
        )
    files = [(stored[m.key], a) for m in messages for a in m.attachments]
    for _, attachment in files:
        _check_file_size(attachment.data)
    if files:
        _check_upload_quota(owner, sum(len(a.data) for _, a in files))
    rows = list(stored.values())
    times = [row.created_at for row in rows]
    ChatMessage.objects.bulk_create(rows, batch_size=IMPORT_BATCH)
    # auto_now_add replaced the times on insert: put the original ones back.
    for row, created_at in zip(rows, times, strict=True):
        row.created_at = created_at
    ChatMessage.objects.bulk_update(rows, ["created_at"], batch_size=IMPORT_BATCH)
    for message, attachment in files:
        attachment_create(
            message=message, filename=attachment.filename, data=attachment.data, content_type=attachment.content_type
        )
    if rows:
        latest = max(times)
        type(thread).objects.filter(pk=thread.pk, updated_at__lt=latest).update(updated_at=latest)
        newest = max(rows, key=lambda row: row.created_at)
        leaf = stored.get(active_leaf_key) if active_leaf_key is not None else None
        thread_advance_leaf(thread_id=thread.pk, from_id=None, to_id=(leaf or newest).pk)
        thread.active_leaf_id = (leaf or newest).pk
    return stored


# --- For operators: purges, storage clean-up, demo data ----------------------------------------


def _delete_files(names: list[str]) -> None:
    from django.core.files.storage import default_storage

    for name in names:
        try:
            default_storage.delete(name)
        except OSError:
            # The row is gone already; a file left behind is found by cleanup_attachments.
            continue


def thread_purge(*, thread: ChatThread) -> dict[str, int]:
    """Delete a thread for good with everything in it (messages, streams, attachments, memory
    entries: their rows cascade), then, after commit, its attachment files that no other thread's
    attachment shares (a fork's copies keep theirs). Returns the counts of messages and files
    removed. Sends nothing: a purged thread was deleted (and its sockets closed) before."""
    with transaction.atomic():
        names = set(ChatAttachment.objects.filter(thread=thread).values_list("file", flat=True))
        messages = ChatMessage.objects.filter(thread=thread).count()
        # The active leaf points into the messages being deleted: unhook it first (no cycle to
        # resolve on databases that check foreign keys at once).
        ChatThread.objects.filter(pk=thread.pk).update(active_leaf=None)
        ChatThread.objects.filter(pk=thread.pk).delete()
        shared = set(ChatAttachment.objects.filter(file__in=names).values_list("file", flat=True))
        files = sorted(names - shared)
        transaction.on_commit(lambda: _delete_files(files))
    return {"messages": messages, "files": len(files)}


ATTACHMENTS_DIR = "attachments"


def _stored_files(storage: Any, folder: str) -> Iterator[str]:
    """Every file name under ``folder`` of the storage, recursively."""
    try:
        folders, files = storage.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return
    for name in files:
        yield f"{folder}/{name}"
    for name in folders:
        yield from _stored_files(storage, f"{folder}/{name}")


def attachment_cleanup(*, dry_run: bool = False, on_row: Callable[[], None] | None = None) -> dict[str, list[str]]:
    """Make stored files and attachment rows agree: delete files under ``attachments/`` that no
    row names (a crash between writing the file and the row, a purge interrupted) and rows whose
    file is gone (their downloads could only fail). ``dry_run``: only report them. ``on_row`` is
    called after each row's file was looked for in storage (the slow part: one storage call each).

    Returns ``orphan_files`` (storage names) and ``missing_files`` (ids of the rows).
    """
    from django.core.files.storage import default_storage

    known = set(ChatAttachment.objects.values_list("file", flat=True))
    orphans = sorted(name for name in _stored_files(default_storage, ATTACHMENTS_DIR) if name not in known)
    missing: list[str] = []
    for pk, name in ChatAttachment.objects.values_list("id", "file").iterator(chunk_size=2000):
        if not name or not default_storage.exists(name):
            missing.append(str(pk))
        if on_row is not None:
            on_row()
    if not dry_run:
        ChatAttachment.objects.filter(pk__in=missing).delete()
        _delete_files(orphans)
    return {"orphan_files": orphans, "missing_files": missing}


# A daily limit for ``user_quota_set``: a number (0 allows none), unlimited, or the site's default.
QUOTA_DEFAULT = "default"
QUOTA_UNLIMITED = "unlimited"
QuotaSetting = int | Literal["default", "unlimited"]


# Per limit of ``user_quota_set``: its number field, its "unlimited" field on UserQuota, and the
# largest number the column holds (PositiveIntegerField, PositiveBigIntegerField).
_QUOTA_FIELDS = {
    "replies": ("daily_reply_limit", "unlimited_replies", 2**31 - 1),
    "tokens": ("daily_token_limit", "unlimited_tokens", 2**63 - 1),
}


def _quota_fields(name: str, value: QuotaSetting) -> dict[str, Any]:
    limit_field, unlimited_field, largest = _QUOTA_FIELDS[name]
    if value == QUOTA_UNLIMITED:
        return {limit_field: None, unlimited_field: True}
    if value == QUOTA_DEFAULT:
        return {limit_field: None, unlimited_field: False}
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= largest:
        raise InvalidInput.field(name, f'A whole number from 0 to {largest}, "unlimited" or "default".')
    return {limit_field: value, unlimited_field: False}


def user_quota_set(*, user: User, replies: QuotaSetting | None = None, tokens: QuotaSetting | None = None) -> UserQuota:
    """Set a user's own daily limits (what staff do in the admin): each of ``replies`` and
    ``tokens`` is a number, ``"unlimited"`` or ``"default"`` (the site's setting applies); None
    leaves it as it is. Takes effect at the user's next message; triggers nothing."""
    fields = {
        **(_quota_fields("replies", replies) if replies is not None else {}),
        **(_quota_fields("tokens", tokens) if tokens is not None else {}),
    }
    quota, _ = UserQuota.objects.update_or_create(user=user, defaults=fields)
    return quota


DEMO_TOPICS = [
    ("Trip planning", "Can you plan three days in Lisbon for me?", "Day 1: Alfama and the castle. Day 2: Belém."),
    ("Budget", "What is 15% of 2400?", "15% of 2400 is **360**."),
    ("Python help", "How do I read a CSV file in Python?", "Use the `csv` module:\n\n```python\nimport csv\n```"),
    ("Recipes", "A quick vegetarian dinner idea?", "A chickpea curry: onions, garlic, tomatoes, 25 minutes."),
    ("Weather", "Will it rain in Paris tomorrow?", "I cannot see forecasts offline, but pack an umbrella."),
    ("Reading list", "Suggest three classic science fiction novels.", "*Dune*, *Foundation* and *Solaris*."),
    ("Workout", "A 20-minute routine without equipment?", "Squats, push-ups, lunges and planks, 4 rounds."),
    ("Email draft", "Help me decline a meeting politely.", "Thank you for the invitation; I cannot attend."),
]
SEED_BATCH = 200


def demo_seed(
    *,
    owner_ids: Sequence[int],
    threads: int,
    messages: int,
    text: str | None = None,
    on_thread: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Store ``threads`` threads of ``messages`` messages for each user of ``owner_ids``, in bulk (a few queries
    per SEED_BATCH threads): alternating user and AI turns, each the reply to the one before, the
    last one the active leaf. For demos and benchmarks (all are stored now: ``created_at`` is set
    on insert, and putting other times back would double the cost).

    ``text`` (a format string of ``n``, the turn) replaces the demo conversations' contents.
    Triggers nothing (no broadcast, no reply, no memory entry: ``rebuild_memory`` indexes them).
    ``on_thread(n)`` is called as batches of threads are stored.
    """
    total_threads = total_messages = 0
    for owner_id in owner_ids:
        for start in range(0, threads, SEED_BATCH):
            count = min(SEED_BATCH, threads - start)
            with transaction.atomic():
                batch = []
                for n in range(start, start + count):
                    title = DEMO_TOPICS[n % len(DEMO_TOPICS)][0]
                    batch.append(
                        ChatThread(owner_id=owner_id, title=f"{title} {n + 1}" if n >= len(DEMO_TOPICS) else title)
                    )
                ChatThread.objects.bulk_create(batch)
                rows: list[ChatMessage] = []
                for number, thread in enumerate(batch, start=start):
                    _, question, answer = DEMO_TOPICS[number % len(DEMO_TOPICS)]
                    parent = None
                    for turn in range(messages):
                        user_turn = turn % 2 == 0
                        message = ChatMessage(
                            id=uuid.uuid4(),
                            thread=thread,
                            sender_id=owner_id if user_turn else None,
                            role=ChatMessage.Role.USER if user_turn else ChatMessage.Role.AI,
                            content=text.format(n=turn)
                            if text is not None
                            else (question if turn < 2 else f"A follow-up ({turn}): {question}")
                            if user_turn
                            else answer,
                            parent_id=parent,
                        )
                        rows.append(message)
                        parent = message.pk
                    thread.active_leaf_id = parent
                ChatMessage.objects.bulk_create(rows, batch_size=5000)
                ChatThread.objects.bulk_update(batch, ["active_leaf"], batch_size=500)
            total_threads += count
            total_messages += len(rows)
            if on_thread:
                on_thread(count)
    return {"threads": total_threads, "messages": total_messages}

import uuid

from django.conf import settings
from django.db import models

from threads.models import ChatThread


class ChatMessage(models.Model):
    class Role(models.TextChoices):
        USER = "user", "User"
        AI = "ai", "AI"
        SYSTEM = "system", "System"

    class Type(models.TextChoices):
        TEXT = "text", "Text"
        PLOT = "plot", "Plot"
        TABLE = "table", "Table"
        ERROR = "error", "Error"
        FILE = "file", "File"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No single-column index: the (thread, created_at) index below starts with thread.
    thread = models.ForeignKey(ChatThread, on_delete=models.CASCADE, related_name="messages", db_index=False)
    sender = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="chat_messages"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(blank=True, default="")
    type = models.CharField(max_length=16, choices=Type.choices, default=Type.TEXT)
    metadata = models.JSONField(default=dict, blank=True)
    # The message this one answers or branches from; edit/regenerate branches and the tree view use it.
    parent = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True, related_name="children")
    # The sender's idempotency key: the same key twice in a thread stores one message. NULL, not
    # "", for "none given": the unique constraint must not treat every key-less message as equal.
    client_id = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    # The outbox of agent replies: set in the transaction that stores a user message sent for an
    # answer, cleared when its reply stream starts. A message still waiting after a few seconds
    # had its task lost (the broker was down, or restarted) and is queued again by the sweep.
    awaiting_reply = models.BooleanField(default=False)
    # Replies asked of this user message so far (a regenerate adds one): the attempt the next
    # reply stream takes, so a redelivered task cannot start a second stream for one attempt.
    reply_attempt = models.PositiveIntegerField(default=0)
    # The client_id of the regenerate that asked for ``reply_attempt``, until its stream takes it.
    reply_client_id = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    # When the last regenerate asked for a reply (the outbox's clock for it, instead of created_at).
    reply_requested_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            # The order of every list of a thread's messages, id included: a page (by cursor or
            # by offset) is read in index order, never sorted.
            models.Index(fields=["thread", "created_at", "id"], name="message_thread_created_id"),
            # A thread's roots (the siblings of a first message, on every list page that holds one):
            # without it, a read of every index entry of the thread to find the one or two roots.
            models.Index(fields=["thread"], condition=models.Q(parent__isnull=True), name="message_thread_roots"),
            # The sweep reads only the few messages still waiting, oldest first.
            models.Index(fields=["created_at"], condition=models.Q(awaiting_reply=True), name="message_awaiting_reply"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["thread", "client_id"],
                condition=models.Q(client_id__isnull=False),
                name="message_client_id_unique",
            ),
            models.CheckConstraint(condition=models.Q(role__in=["user", "ai", "system"]), name="message_role_valid"),
            # AI and system messages have no human sender.
            models.CheckConstraint(
                condition=models.Q(role="user") | models.Q(sender__isnull=True), name="message_only_user_has_sender"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:60]}"


def attachment_upload_to(attachment: "ChatAttachment", filename: str) -> str:
    return f"attachments/{attachment.thread_id}/{attachment.id}/{filename}"


class ChatAttachment(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    message = models.ForeignKey(ChatMessage, on_delete=models.CASCADE, related_name="attachments")
    thread = models.ForeignKey(ChatThread, on_delete=models.CASCADE, related_name="attachments")
    file = models.FileField(upload_to=attachment_upload_to, max_length=500)
    filename = models.CharField(max_length=255)
    # Where clients download it: the owner-only API endpoint, never a public media URL.
    url = models.CharField(max_length=500, blank=True, default="")
    file_type = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return self.filename


class ReplyStream(models.Model):
    """An AI reply while it is being produced: what clients need to resume it, and a heartbeat.

    The worker producing the reply is its only writer until it ends. When its heartbeat stops
    (the worker died) the stream is ended as ``interrupted`` and its partial text persisted.
    Its deltas are ``ReplyChunk`` rows, one inserted per delta.
    """

    class Status(models.TextChoices):
        STREAMING = "streaming", "Streaming"
        COMPLETE = "complete", "Complete"
        ERROR = "error", "Error"
        INTERRUPTED = "interrupted", "Interrupted"
        STOPPED = "stopped", "Stopped"

    # The statuses a stream ends with.
    ENDED = (Status.COMPLETE, Status.ERROR, Status.INTERRUPTED, Status.STOPPED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    thread = models.ForeignKey(ChatThread, on_delete=models.CASCADE, related_name="reply_streams")
    reply_to = models.ForeignKey(ChatMessage, on_delete=models.CASCADE, related_name="reply_streams")
    # Which reply to ``reply_to`` this is: 0 for the first, one more per regenerate.
    attempt = models.PositiveIntegerField(default=0)
    # The regenerate request's idempotency key, when one asked for this attempt.
    client_id = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.STREAMING)
    # How many deltas (ReplyChunk rows) it has: the next delta's ``seq``. Raised by one in the
    # transaction that inserts each chunk, so readers can tell "nothing new" without reading chunks.
    chunk_count = models.PositiveIntegerField(default=0)
    # The AI message persisted when the stream ended.
    message = models.OneToOneField(
        ChatMessage, on_delete=models.SET_NULL, null=True, blank=True, related_name="source_stream"
    )
    started_at = models.DateTimeField(auto_now_add=True)
    heartbeat_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    # For the reply's metrics (see ReplyMetric): when its user message asked for it (stored, or
    # the regenerate), when the first chunk went out, and each tool step as it ended.
    requested_at = models.DateTimeField(null=True, blank=True)
    first_chunk_at = models.DateTimeField(null=True, blank=True)
    tools = models.JSONField(default=list, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="stream_status_heartbeat")]
        constraints = [
            # One stream per reply attempt: a redelivered task cannot start a second one.
            models.UniqueConstraint(fields=["reply_to", "attempt"], name="stream_one_per_attempt"),
        ]

    def __str__(self) -> str:
        return f"stream {self.id} ({self.status})"


class ReplyChunk(models.Model):
    """One delta of a reply stream, as it was sent: insert-only while the stream is open.

    A reply of N deltas costs N small inserts (its text written once), where a JSON list
    rewritten on every delta cost writes growing with the square of N. Clients that resume or
    fill a gap read ``seq >= the next they expect`` through the ``(stream, seq)`` unique index.
    """

    id = models.BigAutoField(primary_key=True)
    # No single-column index: the (stream, seq) unique constraint's index starts with stream.
    stream = models.ForeignKey(ReplyStream, on_delete=models.CASCADE, related_name="chunk_rows", db_index=False)
    seq = models.PositiveIntegerField()
    delta = models.TextField()

    class Meta:
        constraints = [
            # A second writer (there should be none) fails instead of storing a seq twice.
            models.UniqueConstraint(fields=["stream", "seq"], name="replychunk_stream_seq"),
        ]

    def __str__(self) -> str:
        return f"chunk {self.seq} of stream {self.stream_id}"


class ReplyMetric(models.Model):
    """One row per ended reply, whatever its status: what the dashboard aggregates.

    The same numbers are in the AI message's ``metadata``; this table exists so that aggregates
    over a time window are indexed range scans, not reads of message JSON. ``minute`` (minutes
    since the epoch of ``created_at``) lets both databases bucket by integer division.
    """

    id = models.BigAutoField(primary_key=True)
    created_at = models.DateTimeField()
    minute = models.BigIntegerField()
    # Kept when the reply or its user goes: the numbers stay true of the past.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_index=False
    )
    message = models.ForeignKey(
        ChatMessage, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_index=False
    )
    model = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=ReplyStream.Status.choices)
    queue_ms = models.PositiveIntegerField()
    first_chunk_ms = models.PositiveIntegerField(null=True, blank=True)
    total_ms = models.PositiveIntegerField()
    # NULL: not known (a reply ended by someone else than its worker counts only its own text).
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.FloatField(null=True, blank=True)
    tool_calls = models.PositiveSmallIntegerField(default=0)
    tool_errors = models.PositiveSmallIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(fields=["created_at"], name="replymetric_created"),
            models.Index(fields=["user", "created_at"], name="replymetric_user_created"),
        ]

    def __str__(self) -> str:
        return f"reply metric {self.pk} ({self.status})"


class ToolCallMetric(models.Model):
    """One tool step of a reply, for tool usage and failure counts over a time window."""

    id = models.BigAutoField(primary_key=True)
    reply = models.ForeignKey(ReplyMetric, on_delete=models.CASCADE, related_name="tool_metrics")
    created_at = models.DateTimeField()
    name = models.CharField(max_length=100)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    ok = models.BooleanField(default=True)

    class Meta:
        indexes = [models.Index(fields=["created_at"], name="toolmetric_created")]

    def __str__(self) -> str:
        return f"{self.name} ({'ok' if self.ok else 'error'})"


class UserQuota(models.Model):
    """A user's own daily limits, set by staff in the admin: each replaces the site's default
    (USER_DAILY_REPLY_LIMIT, USER_DAILY_TOKEN_LIMIT) for this user. A day is a UTC day.

    Per limit: a number (0 allows none), "unlimited", or neither (empty: the default applies).
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="chat_quota"
    )
    daily_reply_limit = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="AI replies this user may get per UTC day (regenerations included; 0: none). "
        "Empty: the site default, USER_DAILY_REPLY_LIMIT.",
    )
    unlimited_replies = models.BooleanField(
        default=False,
        help_text="No daily reply limit for this user, whatever USER_DAILY_REPLY_LIMIT says "
        "(leave the number above empty).",
    )
    daily_token_limit = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text="Tokens (prompt + completion) of this user's replies per UTC day (0: none). "
        "Empty: the site default, USER_DAILY_TOKEN_LIMIT.",
    )
    unlimited_tokens = models.BooleanField(
        default=False,
        help_text="No daily token limit for this user, whatever USER_DAILY_TOKEN_LIMIT says "
        "(leave the number above empty).",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "user quota"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(unlimited_replies=False) | models.Q(daily_reply_limit__isnull=True),
                name="userquota_replies_limit_or_unlimited",
                violation_error_message="Give a daily reply limit or tick unlimited replies, not both.",
            ),
            models.CheckConstraint(
                condition=models.Q(unlimited_tokens=False) | models.Q(daily_token_limit__isnull=True),
                name="userquota_tokens_limit_or_unlimited",
                violation_error_message="Give a daily token limit or tick unlimited tokens, not both.",
            ),
        ]

    def __str__(self) -> str:
        return f"daily quota of user {self.user_id}"


class ReplyRollup(models.Model):
    """Ended replies per 15-minute slot, model and status: what the dashboard's wide windows sum
    instead of scanning ``ReplyMetric`` (see ``messaging.rollup``, which writes every rollup table
    from the closed hours' ``ReplyMetric`` rows)."""

    id = models.BigAutoField(primary_key=True)
    # The slot's first minute (minutes since the epoch, a multiple of 15), like ReplyMetric.minute.
    minute = models.BigIntegerField()
    model = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=ReplyStream.Status.choices)
    replies = models.PositiveIntegerField()
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    # NULL when no reply of the group had a price (as SUM over ReplyMetric.cost_usd would be).
    cost_usd = models.FloatField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["minute", "model", "status"], name="replyrollup_slot")]

    def __str__(self) -> str:
        return f"{self.replies} {self.model} {self.status} at minute {self.minute}"


class ToolRollup(models.Model):
    """Tool steps per 15-minute slot and tool (by ``ToolCallMetric.created_at``)."""

    id = models.BigAutoField(primary_key=True)
    minute = models.BigIntegerField()
    name = models.CharField(max_length=100)
    calls = models.PositiveIntegerField()
    failures = models.PositiveIntegerField()
    # Of the steps that have a duration (the average leaves the others out, as AVG does).
    duration_ms_sum = models.BigIntegerField(default=0)
    duration_ms_count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["minute", "name"], name="toolrollup_slot")]

    def __str__(self) -> str:
        return f"{self.calls} {self.name} at minute {self.minute}"


class LatencyRollup(models.Model):
    """A latency histogram per hour or per UTC day (``minutes``: 60 or 1440): how many replies'
    ``kind`` latency fell in each of ``messaging.rollup``'s fixed log-scale buckets."""

    class Kind(models.IntegerChoices):
        QUEUE = 0, "queue"
        FIRST_CHUNK = 1, "first_chunk"
        TOTAL = 2, "total"

    id = models.BigAutoField(primary_key=True)
    minutes = models.PositiveSmallIntegerField()
    minute = models.BigIntegerField()
    kind = models.PositiveSmallIntegerField(choices=Kind.choices)
    bucket = models.PositiveSmallIntegerField()
    count = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["minutes", "minute", "kind", "bucket"], name="latencyrollup_period")
        ]

    def __str__(self) -> str:
        return f"{self.count} in bucket {self.bucket} of {self.get_kind_display()} at minute {self.minute}"


class UserRollup(models.Model):
    """Replies and tokens per user and hour or UTC day (``minutes``: 60 or 1440), for top users.

    Deleted with the user: ``ReplyMetric`` rows lose their user then, and top users leave them out.
    """

    id = models.BigAutoField(primary_key=True)
    minutes = models.PositiveSmallIntegerField()
    minute = models.BigIntegerField()
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    replies = models.PositiveIntegerField()
    # Prompt (where known) plus completion tokens.
    tokens = models.BigIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["minutes", "minute", "user"], name="userrollup_period")]

    def __str__(self) -> str:
        return f"{self.replies} replies of user {self.user_id} at minute {self.minute}"


class RollupCursor(models.Model):
    """How far the rollups go: every hour before ``through`` (a minute since the epoch, a
    multiple of 60) is rolled up; NULL before the first run. One row, made by the migration."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    through = models.BigIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"rollups through minute {self.through}"


class ForkMode(models.TextChoices):
    """What ``thread_fork`` copies: the root-to-message path, that path with the siblings along
    it, or the message's subtree."""

    PATH = "path"
    PATH_WITH_BRANCHES = "path_with_branches"
    SUBTREE = "subtree"

from django.conf import settings
from django.contrib import admin

from .models import ChatAttachment, ChatMessage, ReplyStream, UserQuota
from .selectors import quota_usage_get, stream_text


class ChatMessageInline(admin.TabularInline):
    model = ChatMessage
    fk_name = "thread"
    fields = ["created_at", "role", "type", "sender", "content"]
    readonly_fields = ["created_at", "role", "type", "sender", "content"]
    extra = 0
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        # Messages come from people and the agent, not from the admin.
        return False


class ChatAttachmentInline(admin.TabularInline):
    model = ChatAttachment
    fk_name = "message"
    fields = ["filename", "file_type", "size", "sha256", "file", "created_at"]
    readonly_fields = ["filename", "file_type", "size", "sha256", "file", "created_at"]
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ChatMessage)
class ChatMessageAdmin(admin.ModelAdmin):
    list_display = ["short_content", "thread", "role", "type", "sender", "created_at"]
    list_filter = ["role", "type", "created_at"]
    search_fields = ["content", "=id", "=thread__id", "sender__username"]
    list_select_related = ["thread", "sender"]
    raw_id_fields = ["thread", "sender", "parent"]
    readonly_fields = ["id", "created_at"]
    date_hierarchy = "created_at"
    inlines = [ChatAttachmentInline]

    @admin.display(description="content")
    def short_content(self, message: ChatMessage) -> str:
        return message.content[:80]


@admin.register(ChatAttachment)
class ChatAttachmentAdmin(admin.ModelAdmin):
    list_display = ["filename", "file_type", "size", "thread", "message", "created_at"]
    list_filter = ["file_type", "created_at"]
    search_fields = ["filename", "sha256", "=thread__id"]
    list_select_related = ["thread", "message"]
    raw_id_fields = ["thread", "message"]
    readonly_fields = ["id", "url", "size", "sha256", "created_at"]


@admin.register(ReplyStream)
class ReplyStreamAdmin(admin.ModelAdmin):
    """Replies as they stream: for support, to see a stuck or interrupted one. Read-only."""

    list_display = ["id", "thread", "status", "chunk_count", "started_at", "heartbeat_at", "ended_at"]
    list_filter = ["status", "started_at"]
    search_fields = ["=id", "=thread__id", "=reply_to__id"]
    list_select_related = ["thread"]
    readonly_fields = [
        "id",
        "thread",
        "reply_to",
        "status",
        "chunk_count",
        "text_so_far",
        "message",
        "started_at",
        "heartbeat_at",
        "ended_at",
    ]

    @admin.display(description="text so far")
    def text_so_far(self, stream: ReplyStream) -> str:
        return stream_text(stream_id=stream.pk)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


def _limit_text(limit: int | None) -> str:
    return "unlimited" if limit is None else f"{limit:,}"


def _own_limit(unlimited: bool, limit: int | None, default: int | None) -> str:
    if unlimited:
        return "unlimited"
    return f"default ({_limit_text(default)})" if limit is None else f"{limit:,}"


@admin.register(UserQuota)
class UserQuotaAdmin(admin.ModelAdmin):
    """Per-user daily limits: what replaces USER_DAILY_REPLY_LIMIT / USER_DAILY_TOKEN_LIMIT for one user."""

    list_display = ["user", "replies", "tokens", "updated_at"]
    search_fields = ["user__username"]
    list_select_related = ["user"]
    raw_id_fields = ["user"]
    readonly_fields = ["used_today", "updated_at"]

    def get_fieldsets(self, request, obj=None):
        defaults = (
            "A day is a UTC day: the counts start again at midnight UTC. Site defaults now: "
            f"{_limit_text(settings.USER_DAILY_REPLY_LIMIT)} replies (USER_DAILY_REPLY_LIMIT), "
            f"{_limit_text(settings.USER_DAILY_TOKEN_LIMIT)} tokens (USER_DAILY_TOKEN_LIMIT). "
            "Leave a limit empty and unticked to keep the default for this user."
        )
        return [
            (None, {"fields": ["user"], "description": defaults}),
            ("Replies", {"fields": ["daily_reply_limit", "unlimited_replies"]}),
            ("Tokens", {"fields": ["daily_token_limit", "unlimited_tokens"]}),
            ("Today", {"fields": ["used_today", "updated_at"]}),
        ]

    @admin.display(description="replies a day")
    def replies(self, quota: UserQuota) -> str:
        return _own_limit(quota.unlimited_replies, quota.daily_reply_limit, settings.USER_DAILY_REPLY_LIMIT)

    @admin.display(description="tokens a day")
    def tokens(self, quota: UserQuota) -> str:
        return _own_limit(quota.unlimited_tokens, quota.daily_token_limit, settings.USER_DAILY_TOKEN_LIMIT)

    @admin.display(description="used today")
    def used_today(self, quota: UserQuota) -> str:
        if quota.pk is None:
            return "-"
        usage = quota_usage_get(user_id=quota.pk)
        return (
            f"{usage.replies_used:,} of {_limit_text(usage.replies_limit)} replies, "
            f"{usage.tokens_used:,} of {_limit_text(usage.tokens_limit)} tokens; "
            f"resets at {usage.resets_at:%Y-%m-%d %H:%M} UTC"
        )

from django.contrib import admin

from .models import ChatAttachment, ChatMessage, ReplyStream
from .selectors import stream_text


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

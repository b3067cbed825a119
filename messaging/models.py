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
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["thread", "created_at"], name="message_thread_created")]
        constraints = [
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

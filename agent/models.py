from django.conf import settings
from django.db import models

from messaging.models import ChatMessage
from threads.models import ChatThread


class MemoryEntry(models.Model):
    """A user message as the memory index stores it: its tokens, so the index is rebuilt without
    tokenizing again. One per user message; a user's entries are only ever searched for them."""

    id = models.BigAutoField(primary_key=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memory_entries")
    message = models.OneToOneField(ChatMessage, on_delete=models.CASCADE, related_name="memory_entry")
    thread = models.ForeignKey(ChatThread, on_delete=models.CASCADE, related_name="memory_entries")
    tokens = models.JSONField(default=list)
    snippet = models.CharField(max_length=300)
    message_created_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["user", "id"], name="memory_user_id")]

    def __str__(self) -> str:
        return f"memory of {self.message_id}"

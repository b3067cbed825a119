import uuid

from django.conf import settings
from django.db import models


class ChatThread(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        ARCHIVED = "archived", "Archived"
        DELETED = "deleted", "Deleted"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No single-column index: the composite index below starts with owner.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_threads", db_index=False
    )
    title = models.CharField(max_length=200, blank=True, default="")
    summary = models.TextField(blank=True, default="")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    metadata = models.JSONField(default=dict, blank=True)
    # The model that answers in this thread (a name of agent.catalog.offered()); "" means AGENT_LM.
    model = models.CharField(max_length=64, blank=True, default="")
    # Custom instructions for this thread; "" means the owner's (ChatPreferences.instructions).
    instructions = models.TextField(blank=True, default="")
    # The leaf of the branch the user sees: sends without a parent continue it. Named by string so
    # threads imports nothing of messaging; messaging.services and threads.services keep it set.
    active_leaf = models.ForeignKey(
        "messaging.ChatMessage", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Bumped by messaging.services when a message is added, so "recent threads" means recent activity.
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        indexes = [
            # Serves "my threads by status, newest first" (the id breaks ties, as the list and its
            # cursors do); owner alone is its prefix.
            models.Index(fields=["owner", "status", "-updated_at", "-id"], name="thread_owner_status_recent_id"),
            # "My threads" without a status filter (everything not deleted), read in the list's order:
            # without it a user's thread list scanned and sorted all their threads for every page.
            models.Index(
                fields=["owner", "-updated_at", "-id"],
                condition=~models.Q(status="deleted"),
                name="thread_owner_visible_recent",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=["active", "archived", "deleted"]), name="thread_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.title or f"Thread {str(self.id)[:8]}"


class ChatPreferences(models.Model):
    """A user's chat settings: custom instructions the agent gets with every request, and the model
    they chose last (new threads start with it)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="chat_preferences"
    )
    instructions = models.TextField(blank=True, default="")
    model = models.CharField(max_length=64, blank=True, default="")

    def __str__(self) -> str:
        return f"chat preferences of {self.user_id}"

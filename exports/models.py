import uuid

from django.conf import settings
from django.db import models


class ImportJob(models.Model):
    """A large import running as a background task: its file until it is done, then its result."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="import_jobs")
    filename = models.CharField(max_length=255, blank=True, default="")
    # The uploaded file, kept only until the task has read it.
    file = models.FileField(upload_to="imports/", max_length=500, blank=True)
    kind = models.CharField(max_length=32, blank=True, default="")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    conversations_total = models.PositiveIntegerField(default=0)
    conversations_done = models.PositiveIntegerField(default=0)
    # {"imported": [...], "skipped": [...]} once done; the reason in "error" when it failed.
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["owner", "-created_at"], name="importjob_owner_recent")]

    def __str__(self) -> str:
        return f"import {self.id} ({self.status})"


class ImportJobItem(models.Model):
    """One conversation of a background import, written in the transaction that stores it (or when
    it is skipped). A job run again after its worker died skips the conversations that have one,
    and two runs of one job cannot both store a conversation (one row per job and index)."""

    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="items")
    index = models.PositiveIntegerField()
    title = models.TextField(blank=True, default="")
    # The thread it became; None when it was skipped (``reason`` says why).
    thread_id = models.UUIDField(null=True, blank=True)
    messages = models.PositiveIntegerField(default=0)
    reason = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["job", "index"]
        constraints = [models.UniqueConstraint(fields=["job", "index"], name="importjobitem_job_index")]

    def __str__(self) -> str:
        return f"import {self.job_id} #{self.index}"

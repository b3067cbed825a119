"""A py-spy recording of one of this server's processes (see dashboard.services.profile_start)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class ProfileTarget(models.TextChoices):
    WEB = "web", "Web process"
    WORKER = "worker", "Celery worker"
    PID = "pid", "Process id"


class ProfileFormat(models.TextChoices):
    FLAMEGRAPH = "flamegraph", "Flame graph (SVG)"
    SPEEDSCOPE = "speedscope", "Speedscope (JSON)"


class ProfileStatus(models.TextChoices):
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class Profile(models.Model):
    Target = ProfileTarget
    Format = ProfileFormat
    Status = ProfileStatus

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    target = models.CharField(max_length=16, choices=ProfileTarget.choices)
    pid = models.PositiveIntegerField()
    seconds = models.PositiveSmallIntegerField()
    format = models.CharField(max_length=16, choices=ProfileFormat.choices)
    status = models.CharField(max_length=16, choices=ProfileStatus.choices, default=ProfileStatus.RUNNING)
    error = models.TextField(blank=True, default="")
    # The file's name in the profiles folder (dashboard.services.profiles_dir), once written.
    filename = models.CharField(max_length=100, blank=True, default="")
    size = models.BigIntegerField(null=True, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=models.Q(status__in=ProfileStatus.values), name="profile_status_valid"),
            models.CheckConstraint(condition=models.Q(format__in=ProfileFormat.values), name="profile_format_valid"),
            models.CheckConstraint(condition=models.Q(target__in=ProfileTarget.values), name="profile_target_valid"),
        ]

    def __str__(self) -> str:
        return f"profile {self.id} of pid {self.pid} ({self.status})"

    @property
    def content_type(self) -> str:
        return "image/svg+xml" if self.format == self.Format.FLAMEGRAPH else "application/json"

    @property
    def extension(self) -> str:
        return "svg" if self.format == self.Format.FLAMEGRAPH else "json"

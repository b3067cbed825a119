"""Profiles as JSON: the request to start one (checked by dashboard.services) and its metadata."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .models import Profile
from .services import MAX_SECONDS, MIN_SECONDS


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "enum": ["web", "worker"]},
            {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
        ],
        "description": '"web" (the process serving the request), "worker" (a Celery worker) or the pid of one '
        "of this server's processes.",
    }
)
class _TargetField(serializers.JSONField):
    pass


@extend_schema_field({"type": "integer", "minimum": MIN_SECONDS, "maximum": MAX_SECONDS})
class _SecondsField(serializers.JSONField):
    pass


@extend_schema_field({"type": "string", "enum": Profile.Format.values})
class _FormatField(serializers.JSONField):
    pass


class ProfileStartSerializer(serializers.Serializer):
    """Only that the fields are there: their values are checked by ``profile_request_parse``."""

    target = _TargetField()
    seconds = _SecondsField()
    format = _FormatField()


class ProfileSerializer(serializers.ModelSerializer):
    data_url = serializers.SerializerMethodField(help_text="The recording's file, once `status` is `done`.")

    class Meta:
        model = Profile
        fields = [
            "id",
            "target",
            "pid",
            "seconds",
            "format",
            "status",
            "error",
            "size",
            "created_at",
            "finished_at",
            "data_url",
        ]
        read_only_fields = fields

    def get_data_url(self, profile: Profile) -> str | None:
        if profile.status != Profile.Status.DONE:
            return None
        return reverse("profile-data", kwargs={"profile_id": profile.pk})

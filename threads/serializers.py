from rest_framework import serializers

from chatproject.json_input import JSONField, StrictCharField

from .models import ChatThread

USER_STATUSES = [ChatThread.Status.ACTIVE, ChatThread.Status.ARCHIVED]


class ThreadSerializer(serializers.ModelSerializer):
    class Meta:
        model = ChatThread
        fields = ["id", "title", "summary", "status", "metadata", "created_at", "updated_at"]
        read_only_fields = fields


class ThreadCreateSerializer(serializers.Serializer):
    title = StrictCharField(required=False, allow_blank=True, max_length=200)
    metadata = JSONField(required=False, help_text="A JSON object.")


class ThreadUpdateSerializer(serializers.Serializer):
    title = StrictCharField(required=False, allow_blank=True, max_length=200)
    summary = StrictCharField(required=False, allow_blank=True, trim_whitespace=False)
    status = serializers.ChoiceField(required=False, choices=USER_STATUSES, help_text="Use DELETE to delete.")
    metadata = JSONField(required=False, help_text="A JSON object; replaces the current one.")


class ThreadFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(required=False, choices=USER_STATUSES)
    search = StrictCharField(
        required=False, allow_blank=True, max_length=200, help_text="Case-insensitive match in the title."
    )

from rest_framework import serializers

from chatproject.json_input import JSONField

from .models import ChatThread

USER_STATUSES = [ChatThread.Status.ACTIVE, ChatThread.Status.ARCHIVED]


class ThreadSerializer(serializers.ModelSerializer):
    class Meta:
        model = ChatThread
        fields = ["id", "title", "summary", "status", "metadata", "active_leaf", "created_at", "updated_at"]
        read_only_fields = fields


class ThreadCreateSerializer(serializers.Serializer):
    title = serializers.CharField(required=False, allow_blank=True, max_length=200)
    metadata = JSONField(required=False, help_text="A JSON object.")


class ThreadUpdateSerializer(serializers.Serializer):
    title = serializers.CharField(required=False, allow_blank=True, max_length=200)
    summary = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    status = serializers.ChoiceField(required=False, choices=USER_STATUSES, help_text="Use DELETE to delete.")
    metadata = JSONField(required=False, help_text="A JSON object; replaces the current one.")
    active_leaf = serializers.UUIDField(
        required=False, help_text="Switch branch: a message of this thread; the newest message under it becomes active."
    )


class ThreadFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(required=False, choices=USER_STATUSES)
    search = serializers.CharField(required=False, max_length=200, help_text="Case-insensitive match in the title.")

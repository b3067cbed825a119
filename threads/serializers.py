from rest_framework import serializers

from chatproject import catalog
from chatproject.json_input import JSONField, StrictCharField

from .models import ChatThread

USER_STATUSES = [ChatThread.Status.ACTIVE, ChatThread.Status.ARCHIVED]


class ThreadSerializer(serializers.ModelSerializer):
    model = serializers.SerializerMethodField(help_text="The model that answers here (the default when none chosen).")

    class Meta:
        model = ChatThread
        fields = ["id", "title", "summary", "status", "metadata", "model", "instructions", "created_at", "updated_at"]
        read_only_fields = fields

    def get_model(self, thread: ChatThread) -> str:
        return thread.model or catalog.default_spec().name


class ThreadCreateSerializer(serializers.Serializer):
    title = StrictCharField(required=False, allow_blank=True, max_length=200)
    metadata = JSONField(required=False, help_text="A JSON object.")
    model = StrictCharField(
        required=False, help_text="A model name from GET /api/models/; new threads default to your last choice."
    )
    instructions = StrictCharField(
        required=False, allow_blank=True, help_text="Custom instructions for this thread; empty uses your own."
    )


class ThreadUpdateSerializer(serializers.Serializer):
    title = StrictCharField(required=False, allow_blank=True, max_length=200)
    summary = StrictCharField(required=False, allow_blank=True, trim_whitespace=False)
    status = serializers.ChoiceField(required=False, choices=USER_STATUSES, help_text="Use DELETE to delete.")
    metadata = JSONField(required=False, help_text="A JSON object; replaces the current one.")
    model = StrictCharField(
        required=False, help_text="A model name from GET /api/models/; new threads default to your last choice."
    )
    instructions = StrictCharField(
        required=False, allow_blank=True, help_text="Custom instructions for this thread; empty uses your own."
    )


class ThreadFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(required=False, choices=USER_STATUSES)
    search = StrictCharField(
        required=False, allow_blank=True, max_length=200, help_text="Case-insensitive match in the title."
    )

from typing import Any

from django.conf import settings
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from rest_framework import serializers

from chatproject import catalog
from chatproject.json_input import NO_NUL_PATTERN, JSONField, StrictCharField

from .models import ChatThread

USER_STATUSES = [ChatThread.Status.ACTIVE, ChatThread.Status.ARCHIVED]


class ModelNameField(StrictCharField):
    """A model name this server offers (AGENT_MODELS), or "" for the default; the service checks it."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("help_text", 'A model name from GET /api/models/ ("": the default).')
        super().__init__(required=False, allow_blank=True, **kwargs)


class ModelNameFieldSchema(OpenApiSerializerFieldExtension):
    """The schema lists the names offered when it is generated, so clients (and the contract
    test) know which values are accepted: they depend on the server's configuration."""

    target_class = ModelNameField

    def map_serializer_field(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        return {"type": "string", "enum": ["", *catalog.offered()]}


class InstructionsField(StrictCharField):
    """Custom instructions; the service checks the length (AGENT_INSTRUCTIONS_MAX_CHARS)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(required=False, allow_blank=True, trim_whitespace=False, **kwargs)


class InstructionsFieldSchema(OpenApiSerializerFieldExtension):
    target_class = InstructionsField

    def map_serializer_field(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        return {"type": "string", "maxLength": settings.AGENT_INSTRUCTIONS_MAX_CHARS, "pattern": NO_NUL_PATTERN}


class ThreadSerializer(serializers.ModelSerializer):
    model = serializers.SerializerMethodField(help_text="The model that answers here (the default when none chosen).")

    class Meta:
        model = ChatThread
        fields = [
            "id",
            "title",
            "summary",
            "status",
            "metadata",
            "model",
            "instructions",
            "active_leaf",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_model(self, thread: ChatThread) -> str:
        return thread.model or catalog.default_spec().name


class ThreadCreateSerializer(serializers.Serializer):
    title = StrictCharField(required=False, allow_blank=True, max_length=200)
    metadata = JSONField(required=False, help_text="A JSON object.")
    model = ModelNameField(help_text="A model name from GET /api/models/; new threads default to your last choice.")
    instructions = InstructionsField(help_text="Custom instructions for this thread; empty uses your own.")


class ThreadUpdateSerializer(serializers.Serializer):
    title = StrictCharField(required=False, allow_blank=True, max_length=200)
    summary = StrictCharField(required=False, allow_blank=True, trim_whitespace=False)
    status = serializers.ChoiceField(required=False, choices=USER_STATUSES, help_text="Use DELETE to delete.")
    metadata = JSONField(required=False, help_text="A JSON object; replaces the current one.")
    model = ModelNameField(help_text="A model name from GET /api/models/; new threads default to your last choice.")
    instructions = InstructionsField(help_text="Custom instructions for this thread; empty uses your own.")
    active_leaf = serializers.UUIDField(
        required=False, help_text="Switch branch: a message of this thread; the newest message under it becomes active."
    )


class ThreadFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(required=False, choices=USER_STATUSES)
    search = StrictCharField(
        required=False, allow_blank=True, max_length=200, help_text="Case-insensitive match in the title."
    )

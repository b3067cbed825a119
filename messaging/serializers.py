import json

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer

from chatproject.json_input import NOT_BLANK_NO_NUL_PATTERN, JSONField, StrictCharField

from .models import ChatAttachment, ChatMessage


class AttachmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = ChatAttachment
        fields = ["id", "filename", "url", "file_type", "size", "sha256", "metadata", "created_at"]
        read_only_fields = fields


class MessageSerializer(serializers.ModelSerializer):
    """The one JSON shape of a message, in REST responses and WebSocket events alike."""

    thread = serializers.UUIDField(source="thread_id", read_only=True)
    sender = serializers.IntegerField(source="sender_id", read_only=True, allow_null=True)
    parent = serializers.UUIDField(source="parent_id", read_only=True, allow_null=True)
    attachments = AttachmentSerializer(many=True, read_only=True)

    class Meta:
        model = ChatMessage
        fields = [
            "id",
            "thread",
            "sender",
            "role",
            "type",
            "content",
            "metadata",
            "parent",
            "client_id",
            "created_at",
            "attachments",
        ]
        read_only_fields = fields


@extend_schema_field(
    {"type": "string", "minLength": 1, "pattern": NOT_BLANK_NO_NUL_PATTERN, "description": "Not blank."}
)
class MessageContentField(StrictCharField):
    """The blank and length rules live in the service (shared with the WebSocket path); the
    schema still states "not blank", so a client (or a contract test) knows "   " is refused."""


class MessageCreateSerializer(serializers.Serializer):
    content = MessageContentField(trim_whitespace=False)
    metadata = JSONField(required=False, help_text="A JSON object.")
    parent = serializers.UUIDField(required=False, allow_null=True, help_text="A message of this thread it answers.")
    client_id = StrictCharField(
        required=False, max_length=64, help_text="Idempotency key: resending it stores no second message."
    )


def message_payload(message: ChatMessage) -> dict:
    """A message as plain JSON types (UUIDs and dates as strings), for channel-layer events."""
    return json.loads(JSONRenderer().render(MessageSerializer(message).data))

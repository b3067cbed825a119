import json

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer

from chatproject.json_input import NOT_BLANK_NO_NUL_PATTERN, JSONField, StrictCharField

from .models import ChatAttachment, ChatMessage, ForkMode, ReplyStream
from .selectors import message_tree_info


class AttachmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = ChatAttachment
        fields = ["id", "filename", "url", "file_type", "size", "sha256", "metadata", "created_at"]
        read_only_fields = fields


class MessageListSerializer(serializers.ListSerializer):
    def to_representation(self, data):
        messages = list(data.all() if hasattr(data, "all") else data)
        # Tree info for the whole list at once: a constant number of queries per page.
        message_tree_info(messages=[m for m in messages if not hasattr(m, "sibling_ids")])
        return super().to_representation(messages)


class MessageSerializer(serializers.ModelSerializer):
    """The one JSON shape of a message, in REST responses and WebSocket events alike.

    ``children_count`` and ``sibling_ids`` (the children of the same parent, itself included,
    oldest first) let a client draw "< 2/3 >" and switch branch without another request.
    """

    thread = serializers.UUIDField(source="thread_id", read_only=True)
    sender = serializers.IntegerField(source="sender_id", read_only=True, allow_null=True)
    parent = serializers.UUIDField(source="parent_id", read_only=True, allow_null=True)
    attachments = AttachmentSerializer(many=True, read_only=True)
    children_count = serializers.IntegerField(read_only=True)
    sibling_ids = serializers.ListField(child=serializers.UUIDField(), read_only=True)

    def to_representation(self, instance: ChatMessage) -> dict:
        if not hasattr(instance, "sibling_ids"):
            message_tree_info(messages=[instance])
        return super().to_representation(instance)

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
            "children_count",
            "sibling_ids",
            "client_id",
            "created_at",
            "attachments",
        ]
        read_only_fields = fields
        list_serializer_class = MessageListSerializer


@extend_schema_field(
    {"type": "string", "minLength": 1, "pattern": NOT_BLANK_NO_NUL_PATTERN, "description": "Not blank."}
)
class MessageContentField(StrictCharField):
    """The blank and length rules live in the service (shared with the WebSocket path); the
    schema still states "not blank", so a client (or a contract test) knows "   " is refused."""


class MessageCreateSerializer(serializers.Serializer):
    content = MessageContentField(trim_whitespace=False)
    metadata = JSONField(required=False, help_text="A JSON object.")
    parent = serializers.UUIDField(
        required=False,
        allow_null=True,
        help_text="Where it goes in the tree: a message of this thread. Left out, it continues the active branch; "
        "an edit sends the parent of the message edited (null for a thread's first message).",
    )
    client_id = StrictCharField(
        required=False, max_length=64, help_text="Idempotency key: resending it stores no second message."
    )


class RegenerateSerializer(serializers.Serializer):
    client_id = serializers.CharField(
        required=False, max_length=64, help_text="Idempotency key: asking again with it starts no second reply."
    )


class StreamSerializer(serializers.ModelSerializer):
    reply_to = serializers.UUIDField(source="reply_to_id", read_only=True)
    message = MessageSerializer(read_only=True, allow_null=True)

    class Meta:
        model = ReplyStream
        fields = ["id", "thread", "reply_to", "attempt", "status", "message", "started_at", "ended_at"]
        read_only_fields = fields


class ForkSerializer(serializers.Serializer):
    message_id = serializers.UUIDField(help_text="The message of this thread the fork is made at.")
    # The service checks it again (one list of modes); the choices put them in the schema.
    mode = serializers.ChoiceField(
        choices=ForkMode.values, default=ForkMode.PATH, help_text='"path", "path_with_branches" or "subtree".'
    )


class TreeNodeSerializer(serializers.Serializer):
    """The shape of one node (documentation only: the selector builds plain dicts)."""

    id = serializers.UUIDField()
    parent = serializers.UUIDField(allow_null=True)
    role = serializers.CharField()
    type = serializers.CharField()
    preview = serializers.CharField(help_text="The first 120 characters, as plain text.")
    created_at = serializers.DateTimeField()
    on_active_path = serializers.BooleanField()
    children = serializers.IntegerField()


class TreeSerializer(serializers.Serializer):
    thread = serializers.UUIDField()
    active_leaf = serializers.UUIDField(allow_null=True)
    nodes = TreeNodeSerializer(many=True)


def message_payload(message: ChatMessage) -> dict:
    """A message as plain JSON types (UUIDs and dates as strings), for channel-layer events."""
    return json.loads(JSONRenderer().render(MessageSerializer(message).data))

from rest_framework import serializers

from .events import ALL, EVENT_TYPES
from .models import IncomingEndpoint, Webhook, WebhookDelivery


class WebhookSerializer(serializers.ModelSerializer):
    """An endpoint without its secret (shown only by create and rotate-secret)."""

    class Meta:
        model = Webhook
        fields = [
            "id",
            "url",
            "events",
            "description",
            "active",
            "consecutive_failures",
            "failing_since",
            "disabled_at",
            "disabled_reason",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class WebhookWithSecretSerializer(WebhookSerializer):
    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]
        read_only_fields = fields


def _events_field(**kwargs: object) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.ChoiceField(choices=[ALL, *EVENT_TYPES]),
        allow_empty=False,
        min_length=1,
        help_text=f'Event types ({", ".join(EVENT_TYPES)}), or ["*"] for all.',
        **kwargs,
    )


class WebhookCreateSerializer(serializers.Serializer):
    # Rules (SSRF, known event types, sizes) live in the service.
    url = serializers.CharField(help_text="https URL whose every address is public.")
    events = _events_field()
    description = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    active = serializers.BooleanField(required=False)


class WebhookUpdateSerializer(serializers.Serializer):
    url = serializers.CharField(required=False)
    events = _events_field(required=False)
    description = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    active = serializers.BooleanField(required=False)


class DeliverySerializer(serializers.ModelSerializer):
    event_id = serializers.CharField(read_only=True)
    event_type = serializers.CharField(source="event.type", read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "event_type",
            "event_id",
            "status",
            "attempt",
            "status_code",
            "duration_ms",
            "response_excerpt",
            "error",
            "next_attempt_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class IncomingEndpointSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = IncomingEndpoint
        fields = ["id", "url", "thread", "kind", "secret", "created_at"]
        read_only_fields = fields

    def get_url(self, endpoint: IncomingEndpoint) -> str:
        return f"/api/webhooks/incoming/{endpoint.pk}/"


class IncomingEndpointCreateSerializer(serializers.Serializer):
    thread = serializers.CharField(help_text="One of your threads.")
    kind = serializers.CharField(required=False, default="generic", help_text="generic or github.")

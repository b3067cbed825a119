from django.contrib import admin

from .models import IncomingEndpoint, Webhook, WebhookDelivery


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    list_display = ["url", "owner", "active", "consecutive_failures", "disabled_at", "created_at"]
    list_filter = ["active"]
    search_fields = ["url", "description", "owner__username"]
    raw_id_fields = ["owner"]
    # Secrets are never shown here: owners see them once, in the create and rotate responses.
    exclude = ["secret", "previous_secret"]
    readonly_fields = ["previous_secret_expires_at", "failing_since", "disabled_at", "created_at", "updated_at"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """Read-only: deliveries are a record of what was sent."""

    list_display = [
        "event_id",
        "event_type",
        "webhook",
        "status",
        "attempt",
        "status_code",
        "next_attempt_at",
        "created_at",
    ]
    list_filter = ["status"]
    search_fields = ["event__id", "webhook__url"]
    list_select_related = ["event", "webhook"]

    @admin.display(description="event type")
    def event_type(self, obj: WebhookDelivery) -> str:
        return obj.event.type

    def has_add_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False


@admin.register(IncomingEndpoint)
class IncomingEndpointAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "owner", "thread", "created_at"]
    raw_id_fields = ["owner", "thread"]
    exclude = ["secret"]

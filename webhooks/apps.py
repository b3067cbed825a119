from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    """Outgoing webhooks: reads threads and messaging, imported by neither."""

    name = "webhooks"
    verbose_name = "Webhooks"

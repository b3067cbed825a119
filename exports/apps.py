from django.apps import AppConfig


class ExportsConfig(AppConfig):
    """Thread exports (JSON, CSV, Markdown, HTML): reads threads and messaging, imported by neither."""

    name = "exports"
    verbose_name = "Exports"

"""``manage.py serve``: Daphne for production, with the WebSocket size limits from settings.

Daphne's own default refuses WebSocket messages over 1 MiB, less than a file upload of
MAX_UPLOAD_BYTES sent as base64; this passes the limits the settings compute.
"""

from __future__ import annotations

from daphne.cli import CommandLineInterface
from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Serve HTTP and WebSockets with Daphne (no autoreload), sized for MAX_UPLOAD_BYTES."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--bind", default="127.0.0.1", help="Address to listen on (default 127.0.0.1).")
        parser.add_argument("--port", type=int, default=8000, help="Port to listen on (default 8000).")

    def handle(self, *args, bind: str, port: int, **options) -> None:
        # Behind a proxy: the client's address (log-in throttling counts by it) and scheme come
        # from X-Forwarded-For / X-Forwarded-Proto, which only the proxy may be able to set.
        proxy = ["--proxy-headers"] if settings.PROXY_HEADERS else []
        CommandLineInterface().run(
            [
                "--bind",
                bind,
                "--port",
                str(port),
                "--websocket-max-message-size",
                str(settings.DAPHNE_WEBSOCKET_MAX_MESSAGE_SIZE),
                "--websocket-max-frame-size",
                str(settings.DAPHNE_WEBSOCKET_MAX_FRAME_SIZE),
                *proxy,
                # No access log of Daphne's own (plain text on stdout, query strings and all):
                # chatproject.access logs each request and connection once, in LOG_FORMAT, redacted.
                "--verbosity",
                "0",
                settings.ASGI_APPLICATION.replace(".application", ":application"),
            ]
        )

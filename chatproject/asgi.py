"""ASGI entry point: Daphne serves HTTP through Django and WebSockets through Channels."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")

# Django must be set up before anything imports models (the WebSocket routing does).
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from agent.sandbox import sandbox_status  # noqa: E402
from chatproject.periodic import StartPeriodicJobs  # noqa: E402
from chatproject.websocket import WebSocketAccessLog, websocket_stack  # noqa: E402
from messaging.consumers import CloseOnOutage  # noqa: E402
from messaging.routing import websocket_urlpatterns  # noqa: E402

application = StartPeriodicJobs(
    ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            "websocket": WebSocketAccessLog(CloseOnOutage(websocket_stack(URLRouter(websocket_urlpatterns)))),
        }
    )
)

# Say at start-up which isolation runs users' code (a real run in the sandbox; logged).
sandbox_status()

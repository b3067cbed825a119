"""WSGI entry point, for HTTP-only deployments (WebSockets need ASGI: chatproject.asgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")

application = get_wsgi_application()

"""WebSocket plumbing shared by every consumer: who is connecting, and from which site."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.contrib.auth.models import AnonymousUser


def _user_for_token(key: str) -> Any:
    from rest_framework.authtoken.models import Token

    token = Token.objects.select_related("user").filter(key=key).first()
    if token is None or not token.user.is_active:
        return AnonymousUser()
    return token.user


class TokenAuthMiddleware:
    """``?token=<api token>`` signs a non-browser client in; a wrong token signs nobody in."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        query = parse_qs(scope.get("query_string", b"").decode("latin1"))
        if "token" in query:
            scope = {**scope, "user": await database_sync_to_async(_user_for_token)(query["token"][0])}
        return await self.app(scope, receive, send)


class SameSiteOriginValidator(OriginValidator):
    """Refuse browsers on other sites (cross-site WebSocket hijacking rides on their cookies).

    A browser always sends ``Origin``; it must name one of ALLOWED_HOSTS or CSRF_TRUSTED_ORIGINS.
    Clients that send none are not browsers, carry no victim's cookies, and sign in with a token.
    """

    def __init__(self, application: Any) -> None:
        super().__init__(application, allowed_origins=[])

    def valid_origin(self, parsed_origin: Any) -> bool:
        if parsed_origin is None:
            return True
        hosts = list(settings.ALLOWED_HOSTS)
        if settings.DEBUG and not hosts:
            hosts = ["localhost", "127.0.0.1", "[::1]"]
        return any(
            pattern == "*" or self.match_allowed_origin(parsed_origin, pattern)
            for pattern in [*hosts, *settings.CSRF_TRUSTED_ORIGINS]
        )


def websocket_stack(app: Any) -> Any:
    """Origin check, then session auth (cookies), then token auth (query string)."""
    return SameSiteOriginValidator(AuthMiddlewareStack(TokenAuthMiddleware(app)))

"""WebSocket plumbing shared by every consumer: who is connecting, from which site, and the
connection's request id, access log and metrics."""

from __future__ import annotations

import hashlib
import logging
import re
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest
from django.utils.http import is_same_domain

from .logs import current_request_id, request_id_from

access_logger = logging.getLogger("chatproject.access")
_THREAD_IN_PATH = re.compile(r"^/ws/([^/]+)/")


def credential_digest(key: str) -> str:
    """What stands for a session key or API token in channel-layer events (they may cross Redis)."""
    return hashlib.sha256(key.encode()).hexdigest()


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
            key = query["token"][0]
            # The digest lets the consumer close this socket when the token is deleted.
            scope = {
                **scope,
                "user": await database_sync_to_async(_user_for_token)(key),
                "auth_token_digest": credential_digest(key),
            }
        return await self.app(scope, receive, send)


class _Handshake(HttpRequest):
    """A WebSocket handshake as Django sees a request, for its ``get_host()`` and ``is_secure()``.

    Those apply ALLOWED_HOSTS (with DEBUG's localhost default), USE_X_FORWARDED_HOST and
    SECURE_PROXY_SSL_HEADER exactly as they do for pages.
    """

    def __init__(self, scope: dict[str, Any]) -> None:
        super().__init__()
        self._handshake_scheme = "https" if scope.get("scheme") == "wss" else "http"
        server = scope.get("server") or ("unknown", "0")
        self.META = {"SERVER_NAME": str(server[0]), "SERVER_PORT": str(server[1])}
        for name, value in scope.get("headers", []):
            key = "HTTP_" + name.decode("latin1").upper().replace("-", "_")
            # Repeated headers are joined as Django's ASGI handler does; two Origins then match nothing.
            text = value.decode("latin1")
            self.META[key] = f"{self.META[key]},{text}" if key in self.META else text

    def _get_scheme(self) -> str:
        return self._handshake_scheme


def origin_allowed(scope: dict[str, Any]) -> bool:
    """Django's CSRF origin check, for a WebSocket handshake.

    A browser always sends ``Origin``: it must be this request's own scheme and host (ws -> http,
    wss -> https; the host one of ALLOWED_HOSTS, where ``*`` admits any host but still not another
    site's origin) or one of CSRF_TRUSTED_ORIGINS (``https://*.example.com`` for subdomains).
    Clients that send none are not browsers: they carry no victim's cookies and sign in with a token.
    """
    request = _Handshake(scope)
    origin = request.META.get("HTTP_ORIGIN")
    if origin is None:
        return True
    try:
        if origin == f"{'https' if request.is_secure() else 'http'}://{request.get_host()}":
            return True
    except DisallowedHost:
        pass
    trusted = settings.CSRF_TRUSTED_ORIGINS
    if origin in [o for o in trusted if "*" not in o]:
        return True
    try:
        parsed = urlsplit(origin)
    except ValueError:
        return False
    return any(
        is_same_domain(parsed.netloc, urlsplit(o).netloc.lstrip("*"))
        for o in trusted
        if "*" in o and urlsplit(o).scheme == parsed.scheme
    )


class SameSiteOriginValidator:
    """Refuse browsers on other sites (cross-site WebSocket hijacking rides on their cookies): 403."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not origin_allowed(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)


class WebSocketAccessLog:
    """The request id and access log of WebSocket connections (outermost: it sees every close).

    A connection gets one request id (the handshake's ``X-Request-ID`` when sane, else a new one;
    Daphne 4.2 sends no headers of the application's with its 101, so a client that wants to know
    it sends one): every line logged while it is handled carries it, replies it starts included.
    One line when the handshake is answered (accepted or refused) and one when the connection
    ends: thread, user, close code (the server's when it closed, else the client's) and duration.
    Accepted connections are counted, and those open now (GET /metrics).
    The query string is logged too; the redaction filter takes ``?token=`` out.
    """

    def __init__(self, app: Any) -> None:
        from .prometheus import metrics_load, websocket_closed, websocket_opened

        metrics_load()
        self.opened, self.closed = websocket_opened, websocket_closed
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers", []))
        request_id = request_id_from(headers.get(b"x-request-id"))
        started = time.monotonic()
        # Filled by NoteUser once the auth middleware knows who connects (its scope is a copy of
        # this one, but shares this dict).
        note: dict[str, Any] = {"user_id": None, "close_code": None, "accepted": False}
        query = scope.get("query_string", b"").decode("latin1")
        thread = _THREAD_IN_PATH.match(scope.get("path", ""))
        fields = {
            "path": scope.get("path", "") + (f"?{query}" if query else ""),
            "thread_id": thread.group(1) if thread else None,
        }

        async def logged_send(message: dict[str, Any]) -> None:
            if message["type"] == "websocket.accept" and not note["accepted"]:
                note["accepted"] = True
                self.opened()
                self._log("connect", fields, note, started)
            elif message["type"] == "websocket.close":
                if not note["accepted"]:
                    self._log("reject", fields, note, started)  # the handshake is answered 403
                elif note["close_code"] is None:
                    note["close_code"] = message.get("code", 1000)
            await send(message)

        async def logged_receive() -> dict[str, Any]:
            message = await receive()
            if message["type"] == "websocket.disconnect" and note["close_code"] is None:
                note["close_code"] = message.get("code")
            return message

        token = current_request_id.set(request_id)
        try:
            return await self.app({**scope, "access_log": note}, logged_receive, logged_send)
        finally:
            if note["accepted"]:
                self.closed()
                self._log("disconnect", fields, note, started)
            current_request_id.reset(token)

    @staticmethod
    def _log(event: str, fields: dict[str, Any], note: dict[str, Any], started: float) -> None:
        entry = {
            "event": f"websocket_{event}",
            **fields,
            "user_id": note["user_id"],
            "close_code": note["close_code"] if event != "connect" else None,
            "duration_ms": round((time.monotonic() - started) * 1000, 1),
        }
        if event == "connect":
            template = "WebSocket connect %(path)s thread=%(thread_id)s user=%(user_id)s"
        else:
            template = (
                f"WebSocket {event} %(path)s thread=%(thread_id)s user=%(user_id)s "
                "code=%(close_code)s %(duration_ms).1f ms"
            )
        access_logger.info(template, entry, extra=entry)


class NoteUser:
    """Tell the access log who connected: the user the auth middleware found (already loaded)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        user = scope.get("user")
        if "access_log" in scope and user is not None and user.is_authenticated:
            scope["access_log"]["user_id"] = user.pk
        return await self.app(scope, receive, send)


def websocket_stack(app: Any) -> Any:
    """Origin check, then session auth (cookies), then token auth (query string)."""
    return SameSiteOriginValidator(AuthMiddlewareStack(TokenAuthMiddleware(NoteUser(app))))

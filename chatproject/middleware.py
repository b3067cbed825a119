"""HTTP middleware of the project: the access log with request ids, request metrics, a request
body limit, and the Content-Security-Policy header."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.functional import SimpleLazyObject, empty

from .logs import current_request_id, request_id_from

access_logger = logging.getLogger("chatproject.access")

# Probes hit these every few seconds: their lines are DEBUG, so they do not drown the rest.
QUIET_PATHS = frozenset({"/healthz", "/readyz"})


def loaded_user_id(request: HttpRequest) -> Any:
    """The signed-in user's id if the request already knows who it is, else None: never a query.

    ``AuthenticationMiddleware`` puts a lazy user on the request that reads the session and the
    user row when first touched; DRF replaces it with the user it authenticated (token or session).
    """
    user = request.__dict__.get("user")
    if user is None or (isinstance(user, SimpleLazyObject) and user._wrapped is empty):
        return None
    return user.pk if user.is_authenticated else None


class RequestLogMiddleware:
    """The request id and the access log: one line per request (method, path, status, duration,
    user). Outermost, so it times and logs every response, the refusals of the other middleware too.

    The id is the request's ``X-Request-ID`` when that is sane (``logs.clean_request_id``), else a
    new one; it is set for every log line written while the request is handled (and so travels
    into the Celery tasks queued meanwhile: ``chatproject.celery``) and sent back in the response.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.monotonic()
        request.request_id = request_id_from(request.headers.get("X-Request-ID"))  # type: ignore[attr-defined]
        token = current_request_id.set(request.request_id)  # type: ignore[attr-defined]
        try:
            response = self.get_response(request)
            response["X-Request-ID"] = request.request_id  # type: ignore[attr-defined]
            fields = {
                "method": request.method,
                # The query string too (?after=, ?page=); the redaction filter takes out ?token= and the like.
                "path": request.get_full_path(),
                "status": response.status_code,
                "duration_ms": round((time.monotonic() - started) * 1000, 1),
                "user_id": loaded_user_id(request),
            }
            access_logger.log(
                logging.DEBUG if request.path in QUIET_PATHS else logging.INFO,
                "%(method)s %(path)s %(status)s %(duration_ms).1f ms user=%(user_id)s",
                fields,
                extra=fields,
            )
            return response
        finally:
            current_request_id.reset(token)


class MetricsMiddleware:
    """Count and time every response for GET /metrics, by method, URL pattern and status
    (``chatproject.prometheus``). Second only to the access log: the refusals of the other
    middleware are counted too."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        from .prometheus import http_request_observe, metrics_load

        metrics_load()
        self.observe = http_request_observe
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        self.observe(request, response.status_code, time.perf_counter() - started)
        return response


def _too_large(limit: int) -> JsonResponse:
    return JsonResponse({"detail": f"The request body is larger than {limit} bytes.", "code": "too_large"}, status=413)


class RequestBodyLimitMiddleware:
    """Refuse bodies over REQUEST_MAX_BODY_BYTES with 413 before anything reads them.

    Django checks DATA_UPLOAD_MAX_MEMORY_SIZE only in ``request.body``, and against the declared
    Content-Length only; DRF's JSON parser reads the stream itself. So: a declared length over the
    limit is refused unread; a body without one (chunked) is read here up to one byte past the
    limit, refused if it gets there, else handed on as a stream with its true length.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit_setting = settings.REQUEST_MAX_BODY_PATH_OVERRIDES.get(request.path, "REQUEST_MAX_BODY_BYTES")
        limit = getattr(settings, limit_setting)
        declared = request.META.get("CONTENT_LENGTH", "")
        if declared.isascii() and declared.isdigit():
            if int(declared) > limit:
                return _too_large(limit)
        else:
            # HttpRequest keeps its body stream in _stream; Django offers no public way to bound
            # or replace it. Without a Content-Length Django's WSGI handler gives an empty stream,
            # its ASGI handler the whole (chunked) body.
            data = request._stream.read(limit + 1)
            if len(data) > limit:
                return _too_large(limit)
            if data:
                request._stream = io.BytesIO(data)
                # Now the length is known: DRF parses a body only when it is declared.
                request.META["CONTENT_LENGTH"] = str(len(data))
        return self.get_response(request)


def content_security_policy(path: str) -> str:
    """The policy for a response to ``path``: CONTENT_SECURITY_POLICY with any path overrides."""
    directives = dict(settings.CONTENT_SECURITY_POLICY)
    for prefix, override in settings.CONTENT_SECURITY_POLICY_PATH_OVERRIDES.items():
        if path.startswith(prefix):
            directives.update(override)
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives.items())


class ContentSecurityPolicyMiddleware:
    """Send the Content-Security-Policy (Django 5.2 has none built in) on every response."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        # With DEBUG, error pages are Django's technical pages, all inline style and script.
        if settings.DEBUG and response.status_code >= 400:
            return response
        response.headers.setdefault("Content-Security-Policy", content_security_policy(request.path))
        return response

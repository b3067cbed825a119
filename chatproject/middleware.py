"""HTTP middleware of the project: a request body limit, and the Content-Security-Policy header."""

from __future__ import annotations

import io
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse


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

"""Domain exceptions raised by services and selectors, and their one mapping to HTTP.

Services know nothing of HTTP or WebSockets: they raise these; the DRF exception handler below
turns them into responses (and the realtime consumer turns them into error events).
"""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions as drf_exceptions
from rest_framework.views import exception_handler


class DomainError(Exception):
    """Base of every error a service reports to its caller."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(DomainError):
    """The object does not exist *for this user* (another user's objects are not found either)."""

    code = "not_found"


class InvalidInput(DomainError):
    """Input broke a rule; ``errors`` maps each offending field to its messages."""

    code = "validation_error"

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in errors.items()))
        self.errors = errors

    @classmethod
    def field(cls, name: str, message: str) -> InvalidInput:
        return cls({name: [message]})


class TooLarge(InvalidInput):
    """Input over a size limit (message length, file size, frame size)."""

    code = "too_large"


class RateLimited(DomainError):
    """The user sent too much too fast; ``retry_after`` is in seconds."""

    code = "rate_limited"

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(message or f"Too many messages: try again in {retry_after} s.")
        self.retry_after = retry_after


class LoginThrottled(RateLimited):
    """Too many failed log-ins for this username or from this address (LOGIN_FAILURE_LIMIT)."""

    code = "login_throttled"

    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after, f"Too many failed log-in attempts: try again in {retry_after} s.")


class TooManyReplies(RateLimited):
    """The user already waits for MAX_CONCURRENT_REPLIES replies; ``retry_after`` is a hint."""

    code = "too_many_replies"


class QuotaExceeded(DomainError):
    """Storing this would take the user's stored files past UPLOAD_QUOTA_BYTES."""

    code = "quota_exceeded"


class _PayloadTooLarge(drf_exceptions.APIException):
    status_code = 413


def api_exception_handler(exc: Exception, context: dict[str, Any]):
    code = None
    if isinstance(exc, NotFound):
        exc = drf_exceptions.NotFound(exc.message)
    elif isinstance(exc, InvalidInput):
        exc = drf_exceptions.ValidationError(exc.errors)
    elif isinstance(exc, RateLimited):
        code = exc.code
        exc = drf_exceptions.Throttled(wait=exc.retry_after, detail=exc.message)
    elif isinstance(exc, QuotaExceeded):
        code = exc.code
        exc = _PayloadTooLarge(exc.message)
    response = exception_handler(exc, context)
    # Clients tell these apart by code (a login lockout, a busy user, a full quota), not by text.
    if code and response is not None:
        response.data["code"] = code
    return response

"""Domain exceptions raised by services and selectors, and their one mapping to HTTP.

Services know nothing of HTTP or WebSockets: they raise these; the DRF exception handler below
turns them into responses (and ``messaging.events.error_for`` into WebSocket error events, by ``code``).
"""

from __future__ import annotations

import logging
from typing import Any

import redis.exceptions
from django.db import InterfaceError, OperationalError
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler, set_rollback

logger = logging.getLogger(__name__)


class DomainError(Exception):
    """Base of every error a service reports to its caller."""

    code = "error"
    # Which fields were wrong, and when to try again: set by the errors that have them (the
    # WebSocket's error event and the HTTP responses carry them).
    errors: dict[str, list[str]] | None = None
    retry_after: int | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        # Extra fields of the error for clients, added as they are to the REST body and the
        # WebSocket error event (JSON values only).
        self.details: dict[str, Any] = {}


class NotFound(DomainError):
    """The object does not exist *for this user* (another user's objects are not found either)."""

    code = "not_found"


class InvalidInput(DomainError):
    """Input broke a rule; ``errors`` maps each offending field to its messages."""

    code = "validation_error"
    errors: dict[str, list[str]]

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
    retry_after: int

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


class DailyQuotaExceeded(RateLimited):
    """A reply would take the user past a daily limit (USER_DAILY_REPLY_LIMIT or
    USER_DAILY_TOKEN_LIMIT, or their own from the admin); ``retry_after``: seconds until it resets.

    ``details`` say which limit (``quota``: ``replies`` or ``tokens``), the ``limit``, what is
    ``used`` and ``resets_at`` (ISO 8601, the next UTC midnight).
    """

    code = "quota_exceeded"

    def __init__(self, *, quota: str, limit: int, used: int, resets_at: str, retry_after: int) -> None:
        unit = "AI replies" if quota == "replies" else "tokens"
        super().__init__(
            retry_after,
            f"Daily limit reached: {used} of {limit} {unit} used today; it resets at {resets_at} (UTC midnight).",
        )
        self.details = {"quota": quota, "limit": limit, "used": used, "resets_at": resets_at}


class QuotaExceeded(DomainError):
    """Storing this would take the user's stored files past UPLOAD_QUOTA_BYTES."""

    code = "quota_exceeded"


class PayloadTooLarge(DomainError):
    """A whole request is over its size limit (an import file, what a ZIP unpacks to): 413."""

    code = "too_large"


class _PayloadTooLarge(drf_exceptions.APIException):
    status_code = 413


class Conflict(DomainError):
    """The request is valid but cannot be done now or here (something else is running, the
    process lacks a permission): 409 with the subclass's ``code``."""

    code = "conflict"


class _Conflict(drf_exceptions.APIException):
    status_code = 409


class ServiceUnavailable(DomainError):
    """A service the request needs (the database, Redis) is down or unreachable; nothing was stored.

    Not the caller's fault and not for long: clients should try again after ``retry_after`` seconds.
    """

    code = "unavailable"
    retry_after: int

    def __init__(self, retry_after: int = 5) -> None:
        super().__init__(f"The service is briefly unavailable; try again in {retry_after} s.")
        self.retry_after = retry_after


# What "a backing service is down" looks like from here: the database refusing or dropping
# connections (psycopg and sqlite3 errors, as Django wraps them) and Redis unreachable or silent
# after redis-py's retries (chatproject.redis_options). Anything else is a bug, not an outage.
OUTAGE_ERRORS: tuple[type[Exception], ...] = (
    OperationalError,
    InterfaceError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)


def as_domain_error(exc: Exception) -> DomainError | None:
    """The domain error an exception stands for: itself, ServiceUnavailable for an outage, else None."""
    if isinstance(exc, DomainError):
        return exc
    if isinstance(exc, OUTAGE_ERRORS):
        logger.warning("a backing service is unavailable: %s: %s", type(exc).__name__, exc)
        return ServiceUnavailable()
    return None


def api_exception_handler(exc: Exception, context: dict[str, Any]):
    exc = as_domain_error(exc) or exc
    if isinstance(exc, ServiceUnavailable):
        set_rollback()
        return Response(
            {"detail": exc.message, "code": "service_unavailable"},
            status=503,
            headers={"Retry-After": str(exc.retry_after)},
        )
    code = None
    details = exc.details if isinstance(exc, DomainError) else {}
    if isinstance(exc, NotFound):
        exc = drf_exceptions.NotFound(exc.message)
    elif isinstance(exc, InvalidInput):
        exc = drf_exceptions.ValidationError(exc.errors)
    elif isinstance(exc, RateLimited):
        code = exc.code
        exc = drf_exceptions.Throttled(wait=exc.retry_after, detail=exc.message)
    elif isinstance(exc, QuotaExceeded | PayloadTooLarge):
        code = exc.code
        exc = _PayloadTooLarge(exc.message)
    elif isinstance(exc, Conflict):
        code = exc.code
        exc = _Conflict(exc.message)
    response = exception_handler(exc, context)
    # Clients tell these apart by code (a login lockout, a busy user, a full quota), not by text.
    if code and response is not None:
        response.data["code"] = code
        response.data.update(details)
    return response

"""Logging: the formats (rich, json, plain), the request id every line carries, and redaction.

Imported by the settings (``logging_config``), so nothing here imports Django at module level.
Every handler gets two filters: ``RequestIdFilter`` adds the request id of the HTTP request,
WebSocket connection or Celery task being handled (a contextvar, set by
``chatproject.middleware.RequestLogMiddleware``, ``chatproject.websocket.WebSocketAccessLog`` and
the task signals in ``chatproject.celery``); ``RedactSecrets`` then removes credentials from the
message, the traceback and every extra field, whatever logger the record came from.
"""

from __future__ import annotations

import contextvars
import logging
import os
import re
import uuid
from collections.abc import Callable
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

# The request id of what this thread or task is handling; None outside any request.
current_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

# An id a client or proxy sends (X-Request-ID) is used when it is this short and plain: it lands in
# every log line and in Celery headers, so nothing that could forge a line, a field or a header.
REQUEST_ID_MAX_CHARS = 128
_REQUEST_ID = re.compile(rf"[A-Za-z0-9._:+=@/-]{{1,{REQUEST_ID_MAX_CHARS}}}")


def clean_request_id(value: Any) -> str | None:
    """``value`` when it is a sane request id, else None."""
    if isinstance(value, bytes):
        value = value.decode("latin1")
    if isinstance(value, str) and _REQUEST_ID.fullmatch(value):
        return value
    return None


def new_request_id() -> str:
    return uuid.uuid4().hex


def request_id_from(value: Any) -> str:
    """The id a request is logged under: the one it brought when sane, else a new one."""
    return clean_request_id(value) or new_request_id()


# --- Redaction ------------------------------------------------------------------------------

REDACTED = "[REDACTED]"
# Names whose values are secrets, in a query string, a form, a dict, JSON or ``name=value`` text.
_SECRET_NAMES = (
    r"token|access_token|refresh_token|api_key|apikey|password|passwd|new_password1|new_password2|"
    r"old_password|secret|client_secret|sessionid|csrftoken|csrfmiddlewaretoken|authorization|cookie"
)
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # A quoted value of a secret name: 'password': 'x', "token": "x", password='x' (reprs, JSON).
    (
        re.compile(rf"""(?i)(["']?\b(?:{_SECRET_NAMES})["']?\s*[:=]\s*)(["'])(?:\\.|(?!\2).)*\2"""),
        rf"\1\2{REDACTED}\2",
    ),
    # Authorization header values written out: "Token 9944b0...", "Bearer eyJ..." (with a digit, so
    # that prose such as "Token authentication" stays). Before the next pattern, which would take
    # only the scheme of "Authorization: Token <key>".
    (re.compile(r"\b(Token|Bearer|Basic)\s+(?=[A-Za-z0-9._~+/=-]*\d)[A-Za-z0-9._~+/=-]{8,}"), rf"\1 {REDACTED}"),
    # An unquoted value: ?token=x&, password=x, Cookie: sessionid=x; (up to a separator).
    (re.compile(rf"""(?i)(\b(?:{_SECRET_NAMES})\s*[=:]\s*)(?!["'\s])[^&\s"',;)}}\]]+"""), rf"\1{REDACTED}"),
    # Standard Webhooks secrets, wherever they appear.
    (re.compile(r"\bwhsec_[A-Za-z0-9+/=_-]+"), f"whsec_{REDACTED}"),
    # Passwords in URLs: postgres://user:password@host, redis://:password@host.
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/?#\s@]*:)[^@/?#\s]+@"), rf"\1{REDACTED}@"),
]


def _known_secrets() -> list[str]:
    """Configured secret values (SECRET_KEY, the model and tool API keys): redacted verbatim."""
    from django.conf import settings

    names = (
        "SECRET_KEY",
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "SERPAPI_API_KEY",
        "OPENWEATHER_API_KEY",
        "METRICS_TOKEN",
    )
    values = [getattr(settings, name, "") for name in names]
    for model in getattr(settings, "AGENT_MODELS", {}).values():
        if name := getattr(model, "api_key_env", None):
            values.append(os.environ.get(name, ""))
    # Short values would redact ordinary words; real keys are long.
    return sorted({v for v in values if isinstance(v, str) and len(v) >= 8}, key=len, reverse=True)


def redact(text: str, known: list[str] = ()) -> str:  # type: ignore[assignment]
    for secret in known:
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


# The attributes every LogRecord has; anything else on a record came from ``extra``.
_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
_SECRET_KEY_NAME = re.compile(rf"(?i)^(?:{_SECRET_NAMES}|http_authorization|http_cookie|x-api-key)$")


class RedactSecrets(logging.Filter):
    """Remove credentials from a record before any handler formats it (on every handler).

    The message is formatted here and redacted; so are the traceback (rendered now, as text) and
    every extra field (``request`` objects, dicts of headers or parameters: their values under
    secret names are dropped, the rest redacted as text). Patterns: see ``_PATTERNS``; plus the
    configured secret values themselves.
    """

    def __init__(self, name: str = "") -> None:
        super().__init__(name)
        self._known: tuple[Any, list[str]] = (None, [])
        self._formatter = logging.Formatter()

    @property
    def known(self) -> list[str]:
        from django.conf import settings

        # Read again only when the settings object changes (tests override settings).
        holder = getattr(settings, "_wrapped", None)
        if self._known[0] is not holder:
            try:
                self._known = (holder, _known_secrets())
            except Exception:  # settings not configured (a bare script): patterns only
                return []
        return self._known[1]

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_redacted", False):  # a record goes through every handler's filter
            return True
        known = self.known
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: logging itself would report it; keep the template
            message = str(record.msg)
        if not isinstance(record.msg, dict):
            record.msg, record.args = redact(message, known), None
        if record.exc_info:
            # Rendered now so every formatter shows this redacted text instead of the raw one.
            record.exc_text = redact(self._formatter.formatException(record.exc_info), known)
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text, known)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, known)
        for key, value in list(record.__dict__.items()):
            if key not in _RECORD_ATTRIBUTES:
                record.__dict__[key] = self._clean(key, value, known)
        record._redacted = True
        return True

    def _clean(self, key: Any, value: Any, known: list[str], depth: int = 0) -> Any:
        if isinstance(key, str) and _SECRET_KEY_NAME.match(key) and value not in (None, ""):
            return REDACTED
        if value is None or isinstance(value, bool | int | float):
            return value
        if depth < 4 and isinstance(value, dict):
            return {k: self._clean(k, v, known, depth + 1) for k, v in value.items()}
        if depth < 4 and isinstance(value, list | tuple):
            return [self._clean(None, v, known, depth + 1) for v in value]
        return redact(value if isinstance(value, str) else str(value), known)


class RequestIdFilter(logging.Filter):
    """Add ``request_id`` to every record: the current one, or that of the ``request`` a record
    names (Django logs a response's status after the middleware is done with it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = current_request_id.get() or getattr(
                getattr(record, "request", None), "request_id", None
            )
        return True


# --- Formats --------------------------------------------------------------------------------


class JsonFormatter(_JsonFormatter):
    """One JSON object a line: time, level, logger, message, request_id, then any extra fields."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            ["levelname", "name", "message", "request_id"],
            rename_fields={"levelname": "level", "name": "logger", "exc_info": "traceback"},
            timestamp="time",
            reserved_attrs=[*sorted(_RECORD_ATTRIBUTES), "_redacted"],
            **kwargs,
        )

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        # The time first and in ISO 8601 with milliseconds, so a line reads in order.
        time = log_data.pop("time")
        return {"time": time.isoformat(timespec="milliseconds").replace("+00:00", "Z"), **log_data}


PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
_STATUS_STYLES = ((500, "bold red"), (400, "yellow"), (300, "cyan"), (200, "green"))


def rich_handler(**kwargs: Any) -> logging.Handler:
    """Rich's handler (development): coloured levels, and the access lines coloured by status."""
    from rich.logging import RichHandler
    from rich.text import Text

    class AccessRichHandler(RichHandler):
        def render_message(self, record: logging.LogRecord, message: str) -> Any:
            status = getattr(record, "status", None)
            if not isinstance(status, int) or record.name != "chatproject.access":
                return super().render_message(record, message)
            style = next((style for floor, style in _STATUS_STYLES if status >= floor), "")
            text = Text()
            for part, part_style in (
                (str(getattr(record, "method", "")), "bold"),
                (str(getattr(record, "path", "")), "blue"),
                (str(status), style),
                (f"{getattr(record, 'duration_ms', 0):.1f} ms", "magenta"),
            ):
                text.append(part, style=part_style).append(" ")
            user = getattr(record, "user_id", None)
            text.append(f"user={user if user is not None else '-'}", style="dim")
            return text

    from rich.console import Console

    # On standard error, as the other formats: standard output is a command's own (shell -c, JSON).
    kwargs.setdefault("console", Console(stderr=True))
    # Plain tracebacks (the filter renders them, redacted): rich's would show locals and the raw
    # exception, secrets included.
    return AccessRichHandler(rich_tracebacks=False, show_path=False, markup=False, **kwargs)


FORMATS = ("rich", "json", "plain")


def logging_config(*, log_format: str, level: str) -> dict[str, Any]:
    """The LOGGING setting: one console handler in ``log_format``, both filters on it."""
    handler: dict[str, Any] = {"filters": ["request_id", "redact"]}
    if log_format == "rich":
        handler.update({"()": "chatproject.logs.rich_handler", "formatter": "rich"})
    else:
        handler.update({"class": "logging.StreamHandler", "formatter": log_format})
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request_id": {"()": "chatproject.logs.RequestIdFilter"},
            "redact": {"()": "chatproject.logs.RedactSecrets"},
        },
        "formatters": {
            "json": {"()": "chatproject.logs.JsonFormatter"},
            "plain": {"format": PLAIN_FORMAT},
            "rich": {"format": "%(message)s", "datefmt": "[%X]"},
        },
        "handlers": {"console": handler},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # Django's own loggers stop at INFO even with LOG_LEVEL=DEBUG: django.db.backends would
            # log every query with its parameters (tokens, session keys, users' messages).
            # Propagating too would print each line twice (Django gives them handlers).
            "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
            # Daphne's runserver logs each request too: our access log says it once, with the id.
            **{
                name: {"handlers": ["console"], "level": "ERROR", "propagate": False}
                for name in ("django.server", "django.channels.server")
            },
        },
    }


def with_current_context(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` bound to the caller's contextvars (the request id), for another thread."""
    context = contextvars.copy_context()
    return lambda *args, **kwargs: context.run(function, *args, **kwargs)

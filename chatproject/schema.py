"""OpenAPI post-processing: the error answers every endpoint can give, documented once.

Each view documents its success answer (and examples). The errors below come from layers that
every endpoint shares (authentication, the body-size middleware, parsing, validation, the rate
limits, an outage of the database or Redis), so they are added here to every operation that can
reach them, with one shared ``Error`` body, instead of being repeated on each view.
"""

from __future__ import annotations

from typing import Any

ERROR_SCHEMA = {
    "type": "object",
    "description": (
        "`detail` says what went wrong, `code` (when present) names it for programs. A validation "
        'error instead maps each field to its messages: `{"title": ["..."]}`.'
    ),
    "properties": {
        "detail": {"type": "string"},
        "code": {"type": "string"},
        # quota_exceeded (429): which daily limit, the limit, what was used, when it resets.
        "quota": {"type": "string", "enum": ["replies", "tokens"]},
        "limit": {"type": "integer"},
        "used": {"type": "integer"},
        "resets_at": {"type": "string", "format": "date-time"},
    },
    "additionalProperties": True,
}

_DESCRIPTIONS = {
    "400": "Invalid input: the body or a parameter does not validate (field errors, or `detail`).",
    "401": "No valid credentials (`Authorization: Token <key>` or a session).",
    "403": "Authenticated, but not allowed (for example a session request without a CSRF token).",
    "404": "No such object among yours (another user's objects answer the same), or no such page.",
    "413": "The body is larger than `REQUEST_MAX_BODY_BYTES`, or a quota would be exceeded (`quota_exceeded`).",
    "415": "The body is not in a media type this endpoint accepts.",
    "429": (
        "Too many requests (`rate_limited`, `login_throttled`, `too_many_replies`), or a daily quota used up "
        "(`quota_exceeded`, with `quota`, `limit`, `used` and `resets_at`); see `Retry-After`."
    ),
    "503": "The database or Redis is unreachable (`service_unavailable`); see `Retry-After`.",
}

_WRITES = {"post", "put", "patch"}


def _statuses(method: str, operation: dict[str, Any]) -> list[str]:
    params = operation.get("parameters", [])
    statuses = ["429", "503"]
    # drf-spectacular leaves ``security`` out (or lists ``{}``) where no credentials are needed.
    if any(operation.get("security", [])):
        statuses += ["401", "403"]
    if method in _WRITES or any(p.get("in") == "query" for p in params):
        statuses.append("400")
    if method in _WRITES:
        statuses += ["413", "415"]
    if any(p.get("in") == "path" for p in params) or any(p.get("name") == "page" for p in params):
        statuses.append("404")
    return statuses


def add_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook (``POSTPROCESSING_HOOKS``)."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    reference = {"$ref": "#/components/schemas/Error"}
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            responses = operation.setdefault("responses", {})
            for status in _statuses(method, operation):
                responses.setdefault(
                    status,
                    {"description": _DESCRIPTIONS[status], "content": {"application/json": {"schema": reference}}},
                )
    return result

"""Liveness (/healthz) and readiness (/readyz) checks for load balancers and orchestrators."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import connections
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

logger = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 2


def _check_database() -> str | None:
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any failure means "not ready"; the message names it
        return f"{type(exc).__name__}: {exc}".strip()
    return None


def _check_redis() -> str | None:
    import redis

    try:
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=CHECK_TIMEOUT_SECONDS, socket_timeout=CHECK_TIMEOUT_SECONDS
        )
        client.ping()
        client.close()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".strip()
    return None


def readiness_checks() -> dict[str, str]:
    """Each dependency this process needs, mapped to "ok" or the reason it failed.

    A reason is for operators only (logs, staff): exception text names hosts, ports, users.
    """
    checks = {"database": _check_database()}
    if settings.REDIS_URL:
        checks["redis"] = _check_redis()
    return {name: error or "ok" for name, error in checks.items()}


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _is_staff(request: HttpRequest) -> bool:
    try:
        return bool(request.user.is_staff)
    except Exception:  # a session cookie needs the database, which may be what is down
        return False


def _code_sandbox(*, staff: bool) -> dict[str, object]:
    """Which isolation runs users' code here. Not a readiness check: without it the server still
    serves everything but code execution, which it refuses (see agent.sandbox)."""
    from agent.sandbox import sandbox_status

    status = sandbox_status().as_dict()
    return status if staff else {"mode": status["mode"], "active": status["active"]}


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Which checks fail, for anyone; why they fail, for staff signed in (and in the log)."""
    checks = readiness_checks()
    failing = sorted(name for name, result in checks.items() if result != "ok")
    for name in failing:
        logger.warning("readiness check %s failed: %s", name, checks[name])
    staff = _is_staff(request)
    if not staff:
        checks = {name: "ok" if result == "ok" else "unavailable" for name, result in checks.items()}
    body = {"checks": checks, "code_sandbox": _code_sandbox(staff=staff)}
    if failing:
        return JsonResponse({"status": "unavailable", "failing": failing, **body}, status=503)
    return JsonResponse({"status": "ok", **body})

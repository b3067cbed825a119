"""Liveness (/healthz) and readiness (/readyz) checks for load balancers and orchestrators."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import connections
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

if TYPE_CHECKING:
    from chatproject.catalog import ModelSpec

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


# --- check_services: every part this deployment runs, each with its latency ---------------------


@dataclass(frozen=True)
class ServiceCheck:
    name: str
    ok: bool
    detail: str
    seconds: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _timed(name: str, check: Callable[[], str]) -> ServiceCheck:
    """Run ``check`` (returns a detail, raises on failure) and time it."""
    started = time.perf_counter()
    try:
        detail, ok = check(), True
    except Exception as exc:  # any failure is this check failing; the message names it
        detail, ok = f"{type(exc).__name__}: {exc}".strip(), False
    return ServiceCheck(name, ok, detail, round(time.perf_counter() - started, 4))


def _raise_if(error: str | None) -> None:
    if error is not None:
        raise RuntimeError(error)


def _database_detail() -> str:
    _raise_if(_check_database())
    return connections["default"].vendor


def _redis_detail() -> str:
    _raise_if(_check_redis())
    return "PING answered"


def _channel_layer_round_trip() -> str:
    """A message sent to a new channel and received back through the layer."""
    import asyncio

    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    layer = get_channel_layer()

    async def round_trip() -> None:
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "check.ping"})
        message = await asyncio.wait_for(layer.receive(channel), timeout=CHECK_TIMEOUT_SECONDS)
        if message.get("type") != "check.ping":
            raise RuntimeError(f"received {message!r} instead of the message sent")

    async_to_sync(round_trip)()
    return f"{type(layer).__name__}: sent and received"


def _celery_workers() -> str:
    """With a broker, a worker must answer a ping; without one, replies run in this process."""
    from chatproject.celery import app

    if not settings.REDIS_URL:
        if not app.conf.task_always_eager:
            raise RuntimeError("no broker, yet tasks are not set to run in-process (CELERY_TASK_ALWAYS_EAGER)")
        return "no broker: replies and tasks run in the server's process"

    replies = app.control.ping(timeout=CHECK_TIMEOUT_SECONDS)
    if not replies:
        raise RuntimeError(f"no Celery worker answered a ping within {CHECK_TIMEOUT_SECONDS} s")
    return f"{len(replies)} worker(s) answered: " + ", ".join(sorted(name for reply in replies for name in reply))


def _model(spec: ModelSpec | None = None) -> str:
    """A model (the default when none is given) answers a one-word request; the offline model needs none."""
    from chatproject.catalog import default_spec

    spec = spec or default_spec()
    if spec.is_offline:
        return "offline (the built-in model: no request made)"
    from agent.program import build_lm

    answer = build_lm(spec)("Reply with the word OK.", max_tokens=5)
    return f"{spec.name} ({spec.model}) answered: {str(answer[0] if answer else '')[:40]!r}"


def _model_checks() -> list[tuple[str, Callable[[], str]]]:
    """The default model as ``model``, then each other hosted model users may choose (AGENT_MODELS)
    as ``model:NAME``: a local server that is down or a revoked key shows here, not in a user's reply."""
    from chatproject.catalog import default_spec, offered

    default = default_spec().name
    checks: list[tuple[str, Callable[[], str]]] = [("model", _model)]
    for name, spec in offered().items():
        if name != default and not spec.is_offline:
            checks.append((f"model:{name}", partial(_model, spec)))
    return checks


def _code_sandbox_probe() -> str:
    """Probed again now (a real run in the sandbox). CODE_SANDBOX=off passes: it is a choice."""
    from agent.sandbox import sandbox_status

    status = sandbox_status(refresh=True)
    if not status.active and status.mode != "off":
        raise RuntimeError(f"{status.mode}: {status.detail}")
    return f"{status.mode}: {status.detail}"


def service_checks() -> list[ServiceCheck]:
    """Every part this deployment runs, checked for real, in order: the database, Redis, a
    channel-layer round trip, a Celery worker answering, the models and the code sandbox. On the
    embedded default (no REDIS_URL) that is SQLite, the in-memory layer and in-process replies.

    The same database and Redis checks as /readyz; slower (a worker ping, a model request, a
    sandbox run), so it is for operators, not load balancers.
    """
    checks = [("database", _database_detail)]
    if settings.REDIS_URL:
        checks.append(("redis", _redis_detail))
    checks += [
        ("channel_layer", _channel_layer_round_trip),
        ("celery_worker", _celery_workers),
        *_model_checks(),
        ("code_sandbox", _code_sandbox_probe),
    ]
    return [_timed(name, check) for name, check in checks]


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

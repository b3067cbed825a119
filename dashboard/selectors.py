"""What the staff dashboard shows, read from ``ReplyMetric`` with indexed, aggregated queries.

Every figure over a window comes from a query over a ``ReplyMetric.created_at`` range (an
index range scan) that groups in the database; only the latency percentiles on SQLite read the
window's latencies (three integer columns) and interpolate in Python as PostgreSQL's
``percentile_cont`` does. The wide windows (24h, 7d) take their whole hours from the rollups
(``messaging.rollup``) and only their edges from ``ReplyMetric``: the same counts and sums, and
latency percentiles from histograms, within 1/32 of the exact ones.
"""

from __future__ import annotations

import heapq
import logging
import math
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection
from django.db.models import Count, F, Q, QuerySet, Sum
from django.utils import timezone

from chatproject.errors import Conflict, InvalidInput, NotFound
from messaging import rollup
from messaging.models import (
    LatencyRollup,
    ReplyMetric,
    ReplyRollup,
    ReplyStream,
    ToolCallMetric,
    ToolRollup,
    UserRollup,
)
from messaging.selectors import QuotaUsage, quota_day, quota_usage_list

from .models import Profile

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Window:
    span: timedelta
    bucket_minutes: int
    # How long an answer is reused: the page polls every few seconds, and a week drawn in 2-hour
    # buckets does not change in that time (on SQLite it costs about a second to compute).
    cache_seconds: int
    # Whole hours from the rollups (buckets must be whole 15-minute slots); 1h is always exact.
    rollup: bool = False


WINDOWS = {
    "1h": Window(timedelta(hours=1), 1, 0),
    "24h": Window(timedelta(hours=24), 15, 10, rollup=True),
    "7d": Window(timedelta(days=7), 120, 30, rollup=True),
}
PERCENTILES = (0.5, 0.95, 0.99)
TOP_USERS = 10
# Worker status is asked of Celery (a broadcast ping that waits its whole timeout): kept this long.
WORKERS_CACHE_SECONDS = 5
WORKERS_PING_SECONDS = 0.5


def window_parse(value: Any) -> str:
    """The window named by ``?window=`` (default ``1h``); InvalidInput naming the accepted ones."""
    if value is None:
        return "1h"
    if value not in WINDOWS:
        raise InvalidInput.field("window", f"Must be one of: {', '.join(WINDOWS)}.")
    return str(value)


def dashboard_get_cached(*, window: str) -> dict[str, Any]:
    """``dashboard_get`` for the window ending now, reused for the window's ``cache_seconds``."""
    seconds = WINDOWS[window].cache_seconds
    if not seconds:
        return dashboard_get(window=window)
    key = f"dashboard:{window}"
    data: dict[str, Any] | None = cache.get(key)
    if data is None:
        data = dashboard_get(window=window)
        cache.set(key, data, seconds)
    return data


def dashboard_get(*, window: str, now: datetime | None = None) -> dict[str, Any]:
    """Every figure of the dashboard for the window ending now.

    Three scans of the window's ReplyMetric rows, each grouped in the database: by (bucket,
    model, status) for the series, statuses and per-model sums; by user; and the latencies.
    A window with ``rollup`` reads its whole rolled-up hours from the rollups instead and scans
    only the rest (the partial hours at both ends, the hour in progress).
    """
    spec = WINDOWS[window]
    quotas = quotas_get(now=now) if now is not None else quotas_get_cached()
    now = now or timezone.now()
    since = now - spec.span
    hours = rollup.rollup_hours(since=since, now=now) if spec.rollup else None
    if hours is None:
        replies = ReplyMetric.objects.filter(created_at__gt=since, created_at__lte=now)
        tool_calls = ToolCallMetric.objects.filter(created_at__gt=since, created_at__lte=now)
    else:
        edges = rollup.rollup_edges(since=since, now=now, hours=hours)
        replies, tool_calls = ReplyMetric.objects.filter(edges), ToolCallMetric.objects.filter(edges)
    groups = list(rollup.reply_sums(replies, bucket=F("minute") / spec.bucket_minutes))
    if hours is not None:
        groups += _rolled_up_groups(hours, bucket=spec.bucket_minutes)
    statuses = {status: 0 for status in ReplyStream.ENDED}
    models: dict[str, dict[str, Any]] = {}
    for group in groups:
        statuses[group["status"]] = statuses.get(group["status"], 0) + group["replies"]
        row = models.setdefault(
            group["model"],
            {"model": group["model"], "replies": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": None},
        )
        for key in ("replies", "prompt_tokens", "completion_tokens"):
            row[key] += group[key]
        if group["cost_usd"] is not None:
            row["cost_usd"] = (row["cost_usd"] or 0.0) + group["cost_usd"]
    total = sum(statuses.values())
    return {
        "window": window,
        "since": since,
        "now": now,
        "bucket_minutes": spec.bucket_minutes,
        "replies": {
            "total": total,
            "per_minute": total / (spec.span.total_seconds() / 60),
            "series": _series(groups, since=since, now=now, bucket=spec.bucket_minutes),
        },
        "latency_ms": _latency_percentiles(replies) if hours is None else _latency_histograms(replies, hours),
        "statuses": statuses,
        "rates": {
            status: (statuses[status] / total if total else 0.0)
            for status in (ReplyStream.Status.ERROR, ReplyStream.Status.INTERRUPTED, ReplyStream.Status.STOPPED)
        },
        "models": sorted(models.values(), key=lambda row: (-row["replies"], row["model"])),
        "tools": _tools(tool_calls, hours),
        "top_users": _top_users(replies, hours),
        "quotas": quotas,
        "open_streams": ReplyStream.objects.filter(status=ReplyStream.Status.STREAMING).count(),
        "workers": workers_status(),
        "database": database_size(),
    }


def _series(groups: list[dict[str, Any]], *, since: datetime, now: datetime, bucket: int) -> list[dict[str, Any]]:
    """Replies per bucket, every bucket of the window present (zero when empty)."""
    replies: dict[int, int] = defaultdict(int)
    not_complete: dict[int, int] = defaultdict(int)
    for group in groups:
        replies[group["bucket"]] += group["replies"]
        if group["status"] != ReplyStream.Status.COMPLETE:
            not_complete[group["bucket"]] += group["replies"]
    first = int(since.timestamp()) // 60 // bucket
    last = int(now.timestamp()) // 60 // bucket
    return [
        {
            "t": datetime.fromtimestamp(key * bucket * 60, tz=UTC),
            "replies": replies.get(key, 0),
            "per_minute": replies.get(key, 0) / bucket,
            "not_complete": not_complete.get(key, 0),
        }
        for key in range(first, last + 1)
    ]


def _rolled_up_groups(hours: tuple[int, int], *, bucket: int) -> list[dict[str, Any]]:
    """The (bucket, model, status) sums of the rolled-up hours, as the window's scan gives them."""
    assert bucket % rollup.SLOT == 0, "a bucket must be whole rollup slots"
    start, end = hours
    return list(
        ReplyRollup.objects.filter(minute__gte=start, minute__lt=end)
        .annotate(bucket=F("minute") / bucket)
        .values("bucket", "model", "status")
        .annotate(
            replies=Sum("replies"),
            prompt_tokens=Sum("prompt_tokens"),
            completion_tokens=Sum("completion_tokens"),
            cost_usd=Sum("cost_usd"),
        )
        .order_by()
    )


def _tools(tool_calls: Any, hours: tuple[int, int] | None) -> list[dict[str, Any]]:
    """Calls, failures and the average duration per tool: the scanned rows' plus the rollups'."""
    found: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    rows = list(
        tool_calls.values("name")
        .annotate(
            calls=Count("id"),
            failures=Count("id", filter=Q(ok=False)),
            ms=Sum("duration_ms", default=0),
            timed=Count("duration_ms"),
        )
        .values_list("name", "calls", "failures", "ms", "timed")
        .order_by()
    )
    if hours is not None:
        rows += (
            ToolRollup.objects.filter(minute__gte=hours[0], minute__lt=hours[1])
            .values("name")
            .annotate(
                calls=Sum("calls"),
                failures=Sum("failures"),
                ms=Sum("duration_ms_sum"),
                timed=Sum("duration_ms_count"),
            )
            .values_list("name", "calls", "failures", "ms", "timed")
            .order_by()
        )
    for name, *sums in rows:
        found[name] = [a + b for a, b in zip(found[name], sums, strict=True)]
    return [
        {"name": name, "calls": calls, "failures": failures, "avg_ms": round(ms / timed) if timed else None}
        for name, (calls, failures, ms, timed) in sorted(found.items(), key=lambda item: (-item[1][0], item[0]))
    ]


def _latency_histograms(replies: Any, hours: tuple[int, int]) -> dict[str, dict[str, float | None]]:
    """The latency percentiles from the rolled-up hours' histograms plus the scanned rows'
    latencies, each counted in its bucket (within 1/32 of percentile_cont: see messaging.rollup)."""
    counts: dict[int, dict[int, int]] = {kind: defaultdict(int) for kind in LatencyRollup.Kind}
    for kind, bucket, n in (
        LatencyRollup.objects.filter(rollup.rollup_periods(hours))
        .values_list("kind", "bucket")
        .annotate(Sum("count"))
        .order_by()
    ):
        counts[kind][bucket] += n
    for row in replies.values_list(*rollup.LATENCY_COLUMNS.values()):
        for kind, value in zip(rollup.LATENCY_COLUMNS, row, strict=True):
            if value is not None:
                counts[kind][rollup.latency_bucket(value)] += 1
    result = {}
    for kind in LatencyRollup.Kind:
        values = rollup.histogram_percentiles(counts[kind], PERCENTILES)
        result[kind.label] = {f"p{round(q * 100)}": (values[i] if values else None) for i, q in enumerate(PERCENTILES)}
    return result


def _interpolated(ordered: list[int], q: float) -> float | None:
    """PostgreSQL's ``percentile_cont``: linear interpolation between the closest ranks."""
    if not ordered:
        return None
    rank = q * (len(ordered) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


LATENCIES = ("queue_ms", "first_chunk_ms", "total_ms")


def _latency_percentiles(replies: Any) -> dict[str, dict[str, float | None]]:
    sql, params = replies.values_list(*LATENCIES).query.sql_with_params()
    names = [name.removesuffix("_ms") for name in LATENCIES]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            array = "ARRAY[" + ", ".join(str(q) for q in PERCENTILES) + "]"
            cursor.execute(
                "SELECT "
                + ", ".join(f"percentile_cont({array}) WITHIN GROUP (ORDER BY w.{column})" for column in LATENCIES)
                + f" FROM ({sql}) AS w",
                params,
            )
            found = dict(zip(names, cursor.fetchone(), strict=True))
        else:
            cursor.execute(sql, params)
            columns = list(zip(*cursor.fetchall(), strict=True)) or [(), (), ()]
            found = {}
            for name, values in zip(names, columns, strict=True):
                ordered = sorted(value for value in values if value is not None)
                found[name] = [_interpolated(ordered, q) for q in PERCENTILES] if ordered else None
    return {
        name: {f"p{round(q * 100)}": (values[i] if values else None) for i, q in enumerate(PERCENTILES)}
        for name, values in found.items()
    }


def _top_users(replies: Any, hours: tuple[int, int] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Users with the most replies (each answers one of their messages) and the most tokens:
    one grouped query (a row per active user; with ``hours``, another over the rollups), the
    two top lists taken from it here."""
    per_user = list(
        replies.exclude(user=None)
        .values("user_id")
        .annotate(replies=Count("id"), tokens=Sum("completion_tokens") + Sum("prompt_tokens", default=0))
        .order_by()
    )
    if hours is not None:
        merged = {row["user_id"]: row for row in per_user}
        for user_id, replies_, tokens in (
            UserRollup.objects.filter(rollup.rollup_periods(hours))
            .values_list("user_id")
            .annotate(Sum("replies"), Sum("tokens"))
            .order_by()
        ):
            row = merged.setdefault(user_id, {"user_id": user_id, "replies": 0, "tokens": 0})
            row["replies"] += replies_
            row["tokens"] += tokens
        per_user = list(merged.values())
    by_replies = heapq.nsmallest(TOP_USERS, per_user, key=lambda row: (-row["replies"], row["user_id"]))
    by_tokens = heapq.nsmallest(TOP_USERS, per_user, key=lambda row: (-row["tokens"], row["user_id"]))
    ids = {row["user_id"] for row in by_replies + by_tokens}
    names = dict(get_user_model().objects.filter(pk__in=ids).values_list("pk", "username")) if ids else {}
    for row in by_replies + by_tokens:
        row["username"] = names.get(row["user_id"], "")
    return {"by_replies": by_replies, "by_tokens": by_tokens}


# Users listed at or over a daily limit, at most (the most used first); ``over_limit_total`` counts all.
OVER_LIMIT_SHOWN = 50
# How long the dashboard reuses its daily quotas block (about 15 ms of a request's CPU at 1,000 users).
QUOTAS_CACHE_SECONDS = 10


def quotas_get_cached() -> dict[str, Any]:
    """``quotas_get`` now, reused for QUOTAS_CACHE_SECONDS: daily counts need not be fresher than
    that on a page that polls every few seconds (the send check itself never reads this)."""
    data: dict[str, Any] | None = cache.get("dashboard:quotas")
    if data is None:
        data = quotas_get(now=timezone.now())
        cache.set("dashboard:quotas", data, QUOTAS_CACHE_SECONDS)
    return data


def quotas_get(*, now: datetime) -> dict[str, Any]:
    """The daily quotas on ``now``'s UTC day (whatever the window): the site's default limits, the
    users who used the most today with their used/limit, and those at or over a limit (another
    reply would be refused). Counted as the send check counts (``messaging.selectors``): replies
    ended today plus those in progress, tokens of the replies ended today. Five queries."""
    usages = quota_usage_list(now=now)
    day_start, resets_at = quota_day(now)

    def most_used(usage: QuotaUsage) -> tuple[int, int, int]:
        return (-usage.replies_used, -usage.tokens_used, usage.user_id)

    top = heapq.nsmallest(TOP_USERS, usages, key=most_used)
    over = sorted((usage for usage in usages if usage.reached()), key=most_used)
    shown = over[:OVER_LIMIT_SHOWN]
    ids = {usage.user_id for usage in top + shown}
    names = dict(get_user_model().objects.filter(pk__in=ids).values_list("pk", "username")) if ids else {}

    def row(usage: QuotaUsage) -> dict[str, Any]:
        return {
            "user_id": usage.user_id,
            "username": names.get(usage.user_id, ""),
            "replies": {"used": usage.replies_used, "limit": usage.replies_limit},
            "tokens": {"used": usage.tokens_used, "limit": usage.tokens_limit},
            "reached": usage.reached(),
        }

    return {
        "day_start": day_start,
        "resets_at": resets_at,
        "defaults": {"replies": settings.USER_DAILY_REPLY_LIMIT, "tokens": settings.USER_DAILY_TOKEN_LIMIT},
        "top_users": [row(usage) for usage in top],
        "over_limit": [row(usage) for usage in shown],
        "over_limit_total": len(over),
    }


def workers_status() -> dict[str, Any]:
    """Celery's queue depth and live workers (Redis only; cached a few seconds), or "embedded"."""
    if not settings.REDIS_URL:
        return {"mode": "embedded", "queue_depth": None, "workers_alive": None}
    cached: dict[str, Any] | None = cache.get("dashboard:workers")
    if cached is not None:
        return cached
    status: dict[str, Any] = {"mode": "celery", "queue_depth": None, "workers_alive": None}
    try:
        status["queue_depth"] = _queue_depth()
        from chatproject.celery import app

        status["workers_alive"] = len(app.control.ping(timeout=WORKERS_PING_SECONDS) or [])
    except Exception as exc:  # Redis down: say so, the rest of the dashboard still answers
        logger.warning("dashboard: worker status unavailable: %s", exc)
        status["error"] = "unavailable"
    cache.set("dashboard:workers", status, WORKERS_CACHE_SECONDS)
    return status


def _queue_depth() -> int:
    """Tasks waiting in the default queue: kombu keeps one Redis list per priority step."""
    import redis
    from kombu.transport.redis import PRIORITY_STEPS, Channel

    from chatproject import redis_options
    from chatproject.celery import app

    queue = app.conf.task_default_queue
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL, **redis_options.cache_options())
    try:
        names = [queue] + [f"{queue}{Channel.sep}{step}" for step in PRIORITY_STEPS if step]
        with client.pipeline() as pipe:
            for name in names:
                pipe.llen(name)
            return sum(pipe.execute())
    finally:
        client.close()


def database_size() -> dict[str, Any]:
    """The database's size on disk: PostgreSQL's pg_database_size, SQLite's pages."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_database_size(current_database())")
        else:
            cursor.execute("SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()")
        (size,) = cursor.fetchone()
    return {"vendor": connection.vendor, "size_bytes": int(size)}


def profile_list() -> QuerySet[Profile]:
    """Every profile, newest first (staff see all of them: they are the server's, not a user's)."""
    return Profile.objects.order_by("-created_at", "-pk")


def profile_get(*, profile_id: Any) -> Profile:
    """One profile; NotFound for an unknown or malformed id."""
    try:
        return Profile.objects.get(pk=uuid.UUID(str(profile_id)))
    except (ValueError, Profile.DoesNotExist):
        raise NotFound("Profile not found.") from None


class ProfileNotReady(Conflict):
    code = "profile_not_ready"


def profile_file_get(*, profile_id: Any) -> tuple[Profile, Path]:
    """A finished profile and its file; ProfileNotReady while it records or when it failed."""
    from .services import profile_path

    profile = profile_get(profile_id=profile_id)
    if profile.status == Profile.Status.RUNNING:
        raise ProfileNotReady("The profile is still recording: its file is there once `status` is `done`.")
    if profile.status == Profile.Status.FAILED:
        raise ProfileNotReady(f"The recording failed, so it has no file: {profile.error}")
    path = profile_path(profile)
    if path is None or not path.is_file():
        raise NotFound("The profile's file is gone.")
    return profile, path

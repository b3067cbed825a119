"""Rollups of the reply metrics: what the dashboard's wide windows (24h, 7d) read instead of
scanning a week of ``ReplyMetric`` rows.

A periodic job (``reply_rollup_run``: the ``messaging.rollup_metrics`` task, ``manage.py
rollup_metrics``) sums each closed hour of ``ReplyMetric`` / ``ToolCallMetric`` rows into

- ``ReplyRollup``: replies, tokens and cost per 15-minute slot, model and status;
- ``ToolRollup``: calls, failures and durations per 15-minute slot and tool;
- ``LatencyRollup``: per hour, a histogram of each latency over fixed log-scale buckets;
- ``UserRollup``: per hour, each user's replies and tokens;

and, once a UTC day is closed, the day's ``LatencyRollup`` and ``UserRollup`` rows (summed from
its hours), so that a week is read as a few day rows plus the hours at its edges.
``RollupCursor.through`` says how far it got: a reader takes whole hours before it from the
rollups and everything else (the partial hours at a window's edges, the hour in progress) from
``ReplyMetric`` itself, so the figures are exact whether or not the job has run lately.

Why a job over closed hours rather than an increment per reply: the rollups are then a function
of the ``ReplyMetric`` rows, rebuilt or back-filled the same way, whoever wrote those rows, and
the reply's own transaction takes no lock on a row every worker shares. An hour is rolled up
``SETTLE_SECONDS`` after it ends; a reply whose transaction commits later still (its
``created_at`` is when it ended) is found on the next runs, which compare the last
``RECHECK_HOURS`` with ``ReplyMetric`` and roll up again any hour that changed.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.db.models import Count, F, Q, QuerySet, Sum
from django.utils import timezone

from .models import LatencyRollup, ReplyMetric, ReplyRollup, RollupCursor, ToolCallMetric, ToolRollup, UserRollup

SLOT = 15  # minutes: ReplyRollup and ToolRollup (the 24h window's series has 15-minute buckets)
HOUR = 60
DAY = 24 * 60
SETTLE_SECONDS = 60
RECHECK_HOURS = 2
# Hours rolled up in one transaction (a back-fill runs through many).
CHUNK_HOURS = 24
# Hour rows of latencies and users are read only at the edges of windows of up to 7 days: older
# ones go (their days keep day rows; ReplyRollup and ToolRollup follow the metrics' retention).
HOUR_ROWS_KEPT_MINUTES = 8 * DAY

# Latency buckets: exact below 32 ms, then 16 equal buckets per power of two (HDR-histogram
# style). A value's bucket midpoint is less than half a bucket, under 1/32 (3.1%) of it, away.
EXACT_BELOW = 32
SUB_BUCKETS = 16
LATENCY_COLUMNS = {
    LatencyRollup.Kind.QUEUE: "queue_ms",
    LatencyRollup.Kind.FIRST_CHUNK: "first_chunk_ms",
    LatencyRollup.Kind.TOTAL: "total_ms",
}


def latency_bucket(ms: int) -> int:
    """The histogram bucket of a latency in milliseconds."""
    if ms < EXACT_BELOW:
        return max(0, ms)
    octave = ms.bit_length() - 1  # 5 or more
    shift = octave - 4
    return EXACT_BELOW + (octave - 5) * SUB_BUCKETS + (ms >> shift) - SUB_BUCKETS


def latency_bucket_bounds(bucket: int) -> tuple[int, int]:
    """The smallest and largest latency (ms, inclusive) of a bucket."""
    if bucket < EXACT_BELOW:
        return bucket, bucket
    octave, sub = divmod(bucket - EXACT_BELOW, SUB_BUCKETS)
    shift = octave + 1
    low = (SUB_BUCKETS + sub) << shift
    return low, low + (1 << shift) - 1


def latency_bucket_value(bucket: int) -> float:
    """What a bucket's latencies count as: its midpoint (exact for the exact buckets)."""
    low, high = latency_bucket_bounds(bucket)
    return (low + high) / 2


def histogram_percentiles(counts: Mapping[int, int], quantiles: Iterable[float]) -> list[float] | None:
    """``percentile_cont`` over a histogram: each latency taken as its bucket's midpoint, linear
    interpolation between the closest ranks. None when the histogram is empty.

    Latencies and midpoints sort alike, so each rank's value is off by at most half its bucket:
    the result is within 1/32 of what ``percentile_cont`` gives on the latencies themselves.
    """
    ordered = sorted((bucket, n) for bucket, n in counts.items() if n)
    total = sum(n for _, n in ordered)
    if not total:
        return None

    def at(rank: int) -> float:
        seen = 0
        for bucket, n in ordered:
            seen += n
            if rank < seen:
                return latency_bucket_value(bucket)
        raise AssertionError("rank past the histogram")  # pragma: no cover

    result = []
    for q in quantiles:
        rank = q * (total - 1)
        low, high = math.floor(rank), math.ceil(rank)
        result.append(at(low) + (at(high) - at(low)) * (rank - low))
    return result


def _at(minute: int) -> datetime:
    return datetime.fromtimestamp(minute * 60, tz=UTC)


def _minute(moment: datetime) -> int:
    return int(moment.timestamp()) // 60


# --- reading --------------------------------------------------------------------------------


def rollup_through() -> int | None:
    """The minute before which every hour is rolled up; None before the first run."""
    return RollupCursor.objects.filter(pk=1).values_list("through", flat=True).first()


def rollup_hours(*, since: datetime, now: datetime) -> tuple[int, int] | None:
    """The whole hours of the window ``(since, now]`` the rollups cover, as minutes ``[start,
    end)``; None when there is none (the window is read from ``ReplyMetric`` alone)."""
    through = rollup_through()
    if through is None:
        return None
    # An hour starting at ``since`` would hold a reply of that very instant, outside the window.
    start = _minute(since) // HOUR * HOUR + HOUR
    end = min(_minute(now) // HOUR * HOUR, through)
    return (start, end) if start < end else None


def rollup_edges(*, since: datetime, now: datetime, hours: tuple[int, int]) -> Q:
    """The rest of the window ``(since, now]``, outside ``hours``: a filter on ``created_at``."""
    start, end = hours
    return Q(created_at__gt=since, created_at__lt=_at(start)) | Q(created_at__gte=_at(end), created_at__lte=now)


def rollup_periods(hours: tuple[int, int]) -> Q:
    """``LatencyRollup``/``UserRollup`` rows covering ``hours`` once: the whole UTC days in it
    as day rows, the hours around them as hour rows."""
    start, end = hours
    first_day, last_day = -(-start // DAY) * DAY, end // DAY * DAY
    if first_day >= last_day:
        return Q(minutes=HOUR, minute__gte=start, minute__lt=end)
    return (
        Q(minutes=DAY, minute__gte=first_day, minute__lt=last_day)
        | Q(minutes=HOUR, minute__gte=start, minute__lt=first_day)
        | Q(minutes=HOUR, minute__gte=last_day, minute__lt=end)
    )


# --- writing --------------------------------------------------------------------------------


def reply_sums(replies: QuerySet[ReplyMetric], *, bucket: Any) -> QuerySet[ReplyMetric, dict[str, Any]]:
    """Replies, tokens and cost of ``replies`` per ``bucket`` (an expression over a row), model
    and status: what ``ReplyRollup`` holds per slot and what the dashboard draws per bucket."""
    return (
        replies.annotate(bucket=bucket)
        .values("bucket", "model", "status")
        .annotate(
            replies=Count("id"),
            prompt_tokens=Sum("prompt_tokens", default=0),
            completion_tokens=Sum("completion_tokens", default=0),
            cost_usd=Sum("cost_usd"),
        )
        .order_by()
    )


def reply_rollup_run(*, now: datetime | None = None, max_hours: int | None = None) -> int:
    """Roll up the hours closed since the last run (all of them the first time: the back-fill),
    at most about ``max_hours`` of them, and again the recent hours that changed since; returns
    how many hours were rolled up.

    Each chunk of hours is one transaction holding the cursor's row lock, so runs in several
    processes take turns and never count a reply twice; a reader sees a chunk whole or not at all.
    """
    now = now or timezone.now()
    closed = (int(now.timestamp()) - SETTLE_SECONDS) // 3600 * HOUR
    RollupCursor.objects.get_or_create(pk=1)
    rolled = 0
    with transaction.atomic():
        cursor = RollupCursor.objects.select_for_update().get(pk=1)
        if cursor.through is not None:
            for start in _changed_hours(cursor.through):
                _roll_hours(start, start + HOUR)
                _roll_days(start, start + HOUR, through=cursor.through)
                rolled += 1
    while max_hours is None or rolled < max_hours:
        with transaction.atomic():
            cursor = RollupCursor.objects.select_for_update().get(pk=1)
            start = cursor.through if cursor.through is not None else _first_hour(closed)
            end = min(closed, start + CHUNK_HOURS * HOUR)
            if end > start:
                _roll_hours(start, end)
                _roll_days(start, end, through=end)
                rolled += (end - start) // HOUR
            if cursor.through != max(start, end):
                cursor.through = max(start, end)
                cursor.save(update_fields=["through", "updated_at"])
            if end <= start or end == closed:
                break
    if (through := rollup_through()) is not None:
        old_hours = Q(minutes=HOUR, minute__lt=through - HOUR_ROWS_KEPT_MINUTES)
        LatencyRollup.objects.filter(old_hours).delete()
        UserRollup.objects.filter(old_hours).delete()
    return rolled


def reply_rollup_rebuild(*, now: datetime | None = None) -> int:
    """Delete every rollup and roll up all of ``ReplyMetric`` again; returns the hours rolled up."""
    with transaction.atomic():
        for model in (ReplyRollup, ToolRollup, LatencyRollup, UserRollup):
            model.objects.all().delete()
        RollupCursor.objects.update_or_create(pk=1, defaults={"through": None})
    return reply_rollup_run(now=now)


def reply_rollup_prune(*, before: datetime) -> int:
    """Delete the rollup rows of periods that ended before ``before`` (the metrics' retention);
    returns how many went."""
    cutoff = _minute(before)
    deleted = ReplyRollup.objects.filter(minute__lte=cutoff - SLOT).delete()[0]
    deleted += ToolRollup.objects.filter(minute__lte=cutoff - SLOT).delete()[0]
    ended = Q(minutes=HOUR, minute__lte=cutoff - HOUR) | Q(minutes=DAY, minute__lte=cutoff - DAY)
    deleted += LatencyRollup.objects.filter(ended).delete()[0]
    deleted += UserRollup.objects.filter(ended).delete()[0]
    return deleted


def _first_hour(closed: int) -> int:
    first = ReplyMetric.objects.order_by("created_at").values_list("created_at", flat=True).first()
    return min(closed, _minute(first) // HOUR * HOUR) if first else closed


def _changed_hours(through: int) -> list[int]:
    """The recent rolled-up hours whose ``ReplyMetric`` rows no longer match their rollup (a
    reply committed after its hour was rolled up)."""
    start = through - RECHECK_HOURS * HOUR
    raw = dict(
        ReplyMetric.objects.filter(created_at__gte=_at(start), created_at__lt=_at(through))
        .annotate(hour=F("minute") / HOUR * HOUR)
        .values_list("hour")
        .annotate(n=Count("id"))
        .order_by()
    )
    rolled = dict(
        ReplyRollup.objects.filter(minute__gte=start, minute__lt=through)
        .annotate(hour=F("minute") / HOUR * HOUR)
        .values_list("hour")
        .annotate(n=Sum("replies"))
        .order_by()
    )
    return sorted(hour for hour in raw.keys() | rolled.keys() if raw.get(hour) != rolled.get(hour))


def _roll_hours(start: int, end: int) -> None:
    """Replace the rollups of the hours ``[start, end)`` with sums of their metric rows."""
    ReplyRollup.objects.filter(minute__gte=start, minute__lt=end).delete()
    ToolRollup.objects.filter(minute__gte=start, minute__lt=end).delete()
    hours = Q(minutes=HOUR, minute__gte=start, minute__lt=end)
    LatencyRollup.objects.filter(hours).delete()
    UserRollup.objects.filter(hours).delete()

    replies = ReplyMetric.objects.filter(created_at__gte=_at(start), created_at__lt=_at(end))
    ReplyRollup.objects.bulk_create(
        (
            ReplyRollup(
                minute=group["bucket"],
                model=group["model"],
                status=group["status"],
                replies=group["replies"],
                prompt_tokens=group["prompt_tokens"],
                completion_tokens=group["completion_tokens"],
                cost_usd=group["cost_usd"],
            )
            for group in reply_sums(replies, bucket=F("minute") / SLOT * SLOT)
        ),
        batch_size=1000,
    )
    UserRollup.objects.bulk_create(
        (
            UserRollup(minutes=HOUR, minute=row["hour"], user_id=row["user_id"], **_user_sums(row))
            for row in replies.exclude(user=None)
            .annotate(hour=F("minute") / HOUR * HOUR)
            .values("hour", "user_id")
            .annotate(replies=Count("id"), completion=Sum("completion_tokens"), prompt=Sum("prompt_tokens", default=0))
            .order_by()
        ),
        batch_size=1000,
    )
    histograms: Counter[tuple[int, int, int]] = Counter()
    for minute, *latencies in replies.values_list("minute", *LATENCY_COLUMNS.values()).iterator(chunk_size=5000):
        hour = minute // HOUR * HOUR
        for kind, value in zip(LATENCY_COLUMNS, latencies, strict=True):
            if value is not None:
                histograms[hour, kind, latency_bucket(value)] += 1
    LatencyRollup.objects.bulk_create(
        (
            LatencyRollup(minutes=HOUR, minute=hour, kind=kind, bucket=bucket, count=n)
            for (hour, kind, bucket), n in histograms.items()
        ),
        batch_size=1000,
    )
    tools: dict[tuple[int, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for created_at, name, ok, duration in (
        ToolCallMetric.objects.filter(created_at__gte=_at(start), created_at__lt=_at(end))
        .values_list("created_at", "name", "ok", "duration_ms")
        .iterator(chunk_size=5000)
    ):
        sums = tools[_minute(created_at) // SLOT * SLOT, name]
        sums[0] += 1
        sums[1] += not ok
        if duration is not None:
            sums[2] += duration
            sums[3] += 1
    ToolRollup.objects.bulk_create(
        (
            ToolRollup(
                minute=slot, name=name, calls=calls, failures=failures, duration_ms_sum=ms, duration_ms_count=timed
            )
            for (slot, name), (calls, failures, ms, timed) in tools.items()
        ),
        batch_size=1000,
    )


def _user_sums(row: dict[str, Any]) -> dict[str, int]:
    return {"replies": row["replies"], "tokens": row["completion"] + row["prompt"]}


def _roll_days(start: int, end: int, *, through: int) -> None:
    """Sum into day rows the hour rows of every UTC day that ``[start, end)`` touches and that
    has ended by ``through``."""
    for day in range(start // DAY * DAY, end, DAY):
        if day + DAY > through:
            continue
        rows = Q(minutes=HOUR, minute__gte=day, minute__lt=day + DAY)
        LatencyRollup.objects.filter(minutes=DAY, minute=day).delete()
        UserRollup.objects.filter(minutes=DAY, minute=day).delete()
        LatencyRollup.objects.bulk_create(
            LatencyRollup(minutes=DAY, minute=day, kind=row["kind"], bucket=row["bucket"], count=row["n"])
            for row in LatencyRollup.objects.filter(rows).values("kind", "bucket").annotate(n=Sum("count")).order_by()
        )
        UserRollup.objects.bulk_create(
            (
                UserRollup(minutes=DAY, minute=day, user_id=row["user_id"], replies=row["n"], tokens=row["t"])
                for row in UserRollup.objects.filter(rows)
                .values("user_id")
                .annotate(n=Sum("replies"), t=Sum("tokens"))
                .order_by()
            ),
            batch_size=1000,
        )

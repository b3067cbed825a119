"""Running totals in the database for what ``GET /metrics`` reports of replies, tool calls and
webhook deliveries, which Celery workers, Daphne processes and commands all produce.

Each writer adds to ``MetricTotal`` rows in the transaction that records what it counts (the
``ReplyMetric`` row, the delivery's attempt), so a total is never ahead of or behind the data,
whatever process or host wrote it; a scrape reads the whole (small) table in one query. Counting
at scrape time from ``ReplyMetric`` instead would read every reply ever stored, a cost that grows
without end (see README "Prometheus").

A histogram is stored as one row per bucket holding the observations that fell in it (not
cumulative: an observation adds to one row) and a row for their sum, in milliseconds (the
integers ``ReplyMetric`` holds); the scrape turns them into Prometheus' cumulative buckets.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from django.db import connection

from .models import MetricTotal


@dataclass(frozen=True)
class Series:
    """A metric the database holds: its Prometheus name, type, help text and label names."""

    name: str
    kind: Literal["counter", "histogram"]
    help: str
    labels: tuple[str, ...]
    # Histograms: the upper bounds of the buckets, in milliseconds (and +Inf).
    buckets_ms: tuple[int, ...] = ()


# A first chunk is a second or two away, a whole reply up to minutes (tool steps, long answers).
REPLY_LATENCY_BUCKETS_MS = (100, 250, 500, 1000, 2500, 5000, 10_000, 20_000, 30_000, 60_000, 120_000, 300_000)

REPLIES = Series(
    "chat_replies_total",
    "counter",
    "Replies ended, by model and how they ended (complete, error, interrupted, stopped).",
    ("model", "status"),
)
REPLY_TOKENS = Series(
    "chat_reply_tokens_total",
    "counter",
    "Tokens of ended replies, by model and type (prompt, completion); unknown prompt tokens are not counted.",
    ("model", "type"),
)
REPLY_FIRST_CHUNK = Series(
    "chat_reply_first_chunk_seconds",
    "histogram",
    "From the user message being stored (or the regenerate asked) to the reply's first chunk.",
    ("model",),
    REPLY_LATENCY_BUCKETS_MS,
)
REPLY_TOTAL = Series(
    "chat_reply_total_seconds",
    "histogram",
    "From the user message being stored (or the regenerate asked) to the end of the reply.",
    ("model",),
    REPLY_LATENCY_BUCKETS_MS,
)
TOOL_CALLS = Series(
    "chat_tool_calls_total",
    "counter",
    "Tool steps of ended replies, by tool and outcome (ok, error: the tool raised).",
    ("tool", "outcome"),
)
WEBHOOK_DELIVERY_ATTEMPTS = Series(
    "chat_webhook_delivery_attempts_total",
    "counter",
    "Webhook delivery attempts by outcome: succeeded, retry (failed, another attempt is scheduled), "
    "failed (the delivery gave up: 410 Gone, retries spent, or the endpoint is disabled).",
    ("outcome",),
)

SERIES = (REPLIES, REPLY_TOKENS, REPLY_FIRST_CHUNK, REPLY_TOTAL, TOOL_CALLS, WEBHOOK_DELIVERY_ATTEMPTS)


def _labels_key(series: Series, labels: dict[str, str], **extra: str) -> str:
    if set(labels) != set(series.labels):
        raise ValueError(f"{series.name} takes the labels {series.labels}, got {tuple(labels)}")
    return json.dumps({**labels, **extra}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _bucket_bound(series: Series, ms: int) -> str:
    return str(next((bound for bound in series.buckets_ms if ms <= bound), "+Inf"))


class Totals:
    """What one write adds to the running totals; ``save()`` adds it in one statement."""

    def __init__(self) -> None:
        self._amounts: dict[tuple[str, str], int] = defaultdict(int)

    def count(self, series: Series, amount: int = 1, **labels: str) -> None:
        assert series.kind == "counter"
        self._amounts[series.name, _labels_key(series, labels)] += amount

    def observe(self, series: Series, ms: int, **labels: str) -> None:
        assert series.kind == "histogram"
        self._amounts[f"{series.name}_bucket", _labels_key(series, labels, le=_bucket_bound(series, ms))] += 1
        self._amounts[f"{series.name}_sum", _labels_key(series, labels)] += ms

    def save(self) -> None:
        """Add to the rows (created at zero when new). Call it inside the transaction of what it
        counts: the rows stay locked until that commits, and are locked in one order (sorted) by
        every writer, so two writers wait for each other but never deadlock."""
        if not self._amounts:
            return
        rows = sorted(self._amounts.items())
        table = connection.ops.quote_name(MetricTotal._meta.db_table)
        values = ", ".join(["(%s, %s, %s)"] * len(rows))
        # PostgreSQL and SQLite (3.24+) spell an upsert that adds the same way.
        sql = (
            f"INSERT INTO {table} (name, labels, value) VALUES {values} "
            f"ON CONFLICT (name, labels) DO UPDATE SET value = {table}.value + excluded.value"
        )
        params = [item for (name, labels), amount in rows for item in (name, labels, amount)]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
        self._amounts.clear()


@dataclass
class Sample:
    """One label set of a series as the scrape reports it."""

    labels: tuple[str, ...]
    value: int = 0
    # Histograms: cumulative (upper bound in seconds as Prometheus spells it, count), +Inf last.
    buckets: list[tuple[str, int]] | None = None
    sum_seconds: float = 0.0


def _seconds(bound_ms: int) -> str:
    return repr(bound_ms / 1000)


def totals_read() -> Iterator[tuple[Series, list[Sample]]]:
    """Every series with its samples (ordered by labels), from one query of the whole table."""
    rows: dict[str, list[tuple[dict[str, str], int]]] = defaultdict(list)
    for name, labels, value in MetricTotal.objects.values_list("name", "labels", "value"):
        rows[name].append((json.loads(labels), value))
    for series in SERIES:
        if series.kind == "counter":
            samples = [Sample(tuple(labels[n] for n in series.labels), value) for labels, value in rows[series.name]]
        else:
            samples = _histogram_samples(series, rows)
        yield series, sorted(samples, key=lambda sample: sample.labels)


def _histogram_samples(series: Series, rows: dict[str, list[tuple[dict[str, str], int]]]) -> list[Sample]:
    per_bucket: dict[tuple[str, ...], dict[float, int]] = defaultdict(lambda: defaultdict(int))
    sums: dict[tuple[str, ...], int] = defaultdict(int)
    for labels, value in rows[f"{series.name}_bucket"]:
        key = tuple(labels[n] for n in series.labels)
        per_bucket[key][float(labels["le"])] += value
    for labels, value in rows[f"{series.name}_sum"]:
        sums[tuple(labels[n] for n in series.labels)] += value
    samples = []
    for key, counts in per_bucket.items():
        # A stored bound that is no longer one of the buckets (they were changed) counts in the
        # next one up: every observation in it is at most that bound too.
        buckets = [
            (_seconds(bound), sum(count for stored, count in counts.items() if stored <= bound))
            for bound in series.buckets_ms
        ]
        total = sum(counts.values())
        buckets.append(("+Inf", total))
        samples.append(Sample(key, total, buckets, sums[key] / 1000))
    return samples

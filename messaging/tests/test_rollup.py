"""The reply metric rollups: latency buckets, the roll-up of closed hours, back-fill, retention."""

import json
import math
import random
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from messaging.models import (
    LatencyRollup,
    ReplyRollup,
    RollupCursor,
    ToolCallMetric,
    ToolRollup,
    UserRollup,
)
from messaging.rollup import (
    DAY,
    HOUR,
    histogram_percentiles,
    latency_bucket,
    latency_bucket_bounds,
    latency_bucket_value,
    reply_rollup_prune,
    reply_rollup_run,
)
from messaging.tests.factories import make_reply_metric
from messaging.tests.test_commands import run

NOW = datetime(2026, 11, 20, 10, 37, 12, tzinfo=UTC)


def test_buckets_are_contiguous_and_within_a_32nd_of_their_values():
    assert [latency_bucket(ms) for ms in range(33)] == [*range(32), 32]
    previous_high = -1
    for bucket in range(latency_bucket(2**31 - 1) + 1):
        low, high = latency_bucket_bounds(bucket)
        assert low == previous_high + 1 and high >= low
        assert latency_bucket(low) == latency_bucket(high) == bucket
        # every latency of the bucket is less than a 32nd of itself from the midpoint
        assert (latency_bucket_value(bucket) - low) <= low / 32 and (high - latency_bucket_value(bucket)) <= high / 32
        previous_high = high
    assert previous_high >= 2**31 - 1


def percentile_cont(values, q):
    ordered = sorted(values)
    rank = q * (len(ordered) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@pytest.mark.parametrize("seed", range(5))
def test_histogram_percentiles_are_within_a_32nd_of_percentile_cont(seed):
    rng = random.Random(seed)
    values = [int(rng.lognormvariate(6, 2)) for _ in range(rng.randint(1, 400))]
    counts = {}
    for value in values:
        counts[latency_bucket(value)] = counts.get(latency_bucket(value), 0) + 1
    for q, estimate in zip((0.5, 0.95, 0.99), histogram_percentiles(counts, (0.5, 0.95, 0.99)), strict=True):
        exact = percentile_cont(values, q)
        assert abs(estimate - exact) <= exact / 32
    small = [3, 0, 31, 7, 7]
    assert histogram_percentiles({v: small.count(v) for v in small}, (0.5, 0.99)) == [
        percentile_cont(small, 0.5),
        percentile_cont(small, 0.99),
    ]
    assert histogram_percentiles({}, (0.5,)) is None


def at(moment, user, **fields):
    return make_reply_metric(user, 0, at=moment, total=fields.pop("total_ms", 100), **fields)


@pytest.mark.django_db
def test_a_run_rolls_up_closed_hours_only_and_the_days_they_close(user, other_user):
    a = at(NOW - timedelta(days=2, hours=1), user, prompt_tokens=10, completion_tokens=5, cost_usd=0.5)
    at(NOW - timedelta(days=2, hours=1), other_user, model="gpt", status="error", first=None)
    at(NOW - timedelta(minutes=40), user, completion_tokens=7)  # 9:57: closed at 10:01
    at(NOW - timedelta(minutes=10), user)  # the hour in progress
    ToolCallMetric.objects.create(reply=a, created_at=a.created_at, name="calculator", duration_ms=40, ok=False)
    ToolCallMetric.objects.create(reply=a, created_at=a.created_at, name="calculator", duration_ms=None)

    first_hour = (int(a.created_at.timestamp()) // 3600) * 60
    assert reply_rollup_run(now=NOW.replace(minute=0, second=30)) == 48  # 10:00:30: not yet 9:00
    assert RollupCursor.objects.get().through == first_hour + (48 + 0) * 60  # through 9:00
    assert reply_rollup_run(now=NOW) == 1  # 9:00-10:00 now
    assert RollupCursor.objects.get().through == first_hour + 49 * 60

    assert sorted(
        ReplyRollup.objects.values_list("model", "status", "replies", "prompt_tokens", "completion_tokens")
    ) == [
        ("gpt", "error", 1, 0, 0),
        ("offline", "complete", 1, 0, 7),
        ("offline", "complete", 1, 10, 5),
    ]
    assert list(
        ToolRollup.objects.values_list("name", "calls", "failures", "duration_ms_sum", "duration_ms_count")
    ) == [("calculator", 2, 1, 40, 1)]
    # 18 Nov 09:37's day is over: hour rows and day rows; 20 Nov's only hour rows
    day = (int(a.created_at.timestamp()) // 86400) * DAY
    assert set(UserRollup.objects.filter(minutes=DAY).values_list("minute", "user__username", "replies", "tokens")) == {
        (day, "alice", 1, 15),
        (day, "bob", 1, 0),
    }
    assert UserRollup.objects.filter(minutes=HOUR).count() == 3
    first_chunks = LatencyRollup.objects.filter(minutes=DAY, kind=LatencyRollup.Kind.FIRST_CHUNK)
    assert first_chunks.count() == 0  # both of that day's first chunks are NULL
    assert list(LatencyRollup.objects.filter(minutes=DAY, kind=LatencyRollup.Kind.TOTAL).values_list("count")) == [(2,)]


@pytest.mark.django_db
def test_the_first_run_back_fills_and_hour_rows_go_after_eight_days(user):
    for days in (30, 9, 3):
        make_reply_metric(user, days * 24 * 60, total=50)
    hours = reply_rollup_run(max_hours=24)
    assert 24 <= hours < 24 * 30
    assert reply_rollup_run() > 24 * 28  # the rest of the back-fill
    assert ReplyRollup.objects.count() == 3 and UserRollup.objects.filter(minutes=DAY).count() == 3
    # older hour rows than 8 days went: their days keep them
    assert UserRollup.objects.filter(minutes=HOUR).count() == 1
    assert LatencyRollup.objects.filter(minutes=HOUR).count() == 2  # queue and total of the 3-day-old one
    assert reply_rollup_run() == 0


@pytest.mark.django_db
def test_the_retention_prune_takes_the_rollups_too(user, settings):
    from django.core.cache import cache

    from messaging.tasks import prune_metrics

    for days in (40, 20):
        make_reply_metric(user, days * 24 * 60, total=50)
    reply_rollup_run()
    assert ReplyRollup.objects.count() == 2
    cache.delete("messaging:prune-metrics")
    settings.REPLY_METRICS_RETENTION_DAYS = 30
    assert prune_metrics() == 1
    assert ReplyRollup.objects.count() == 1 and UserRollup.objects.filter(minutes=DAY).count() == 1
    assert reply_rollup_prune(before=timezone.now()) == 4  # slot, user's day, queue and total of the day
    assert reply_rollup_prune(before=timezone.now()) == 0


@pytest.mark.django_db
def test_the_command_rolls_up_and_rebuilds(user):
    make_reply_metric(user, 5 * 60, total=50)
    assert json.loads(run("rollup_metrics", "--json")[0])["hours"] >= 5
    # a row written into an hour rolled up long ago is found by a rebuild only
    make_reply_metric(user, 4 * 24 * 60, total=50)
    call_command("rollup_metrics")
    assert sum(ReplyRollup.objects.values_list("replies", flat=True)) == 1
    result = json.loads(run("rollup_metrics", "--rebuild", "--json")[0])
    assert result["hours"] >= 4 * 24 and result["through"]
    assert sum(ReplyRollup.objects.values_list("replies", flat=True)) == 2


@pytest.mark.django_db
def test_the_periodic_task_acts_once_a_minute(user):
    from django.core.cache import cache

    from messaging.tasks import rollup_metrics

    cache.delete("messaging:rollup-metrics")
    make_reply_metric(user, 3 * 60, total=50)
    assert rollup_metrics() >= 3
    make_reply_metric(user, 2 * 60, total=50)
    assert rollup_metrics() == 0  # ran a moment ago
    assert sum(ReplyRollup.objects.values_list("replies", flat=True)) == 1

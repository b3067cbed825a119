"""The 24h and 7d windows read from the rollups: the same figures as the scan of ReplyMetric
(counts and sums equal, latency percentiles within 1/32), whatever the window's edges."""

import random
import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from dashboard.selectors import dashboard_get
from messaging.models import LatencyRollup, ReplyMetric, ReplyRollup, RollupCursor, ToolCallMetric, UserRollup
from messaging.rollup import reply_rollup_run
from messaging.tests.factories import make_reply_metric
from threads.tests.factories import make_user

pytestmark = pytest.mark.django_db

# Not on an hour: the window's first and last hours are partial.
NOW = datetime(2026, 11, 20, 10, 37, 12, 345678, tzinfo=UTC)
TOOLS = ["calculator", "web_search", "run_python"]


def metric(at, user, rng, **fields):
    status = fields.pop("status", rng.choice(["complete", "complete", "error", "interrupted", "stopped"]))
    model = fields.pop("model", rng.choice(["offline", "gpt", "claude"]))
    queue = rng.choice([0, 1, 7, 31, 32, 33, 100, rng.randint(0, 5000), rng.randint(0, 20_000_000)])
    row = make_reply_metric(
        user,
        0,
        at=at,
        model=model,
        status=status,
        queue=queue,
        first=None if status == "error" else queue + rng.randint(0, 3000),
        total=queue + rng.randint(0, 90_000),
        prompt_tokens=None if status in ("stopped", "interrupted") else rng.randint(0, 4000),
        completion_tokens=rng.randint(0, 800),
        cost_usd=None if model == "offline" else rng.random() / 100,
        **fields,
    )
    for _ in range(rng.choice([0, 0, 1, 2])):
        ToolCallMetric.objects.create(
            reply=row,
            created_at=at,
            name=rng.choice(TOOLS),
            duration_ms=rng.choice([None, rng.randint(0, 2000)]),
            ok=rng.random() > 0.2,
        )
    return row


def edge_times(now, span):
    """The instants where a window's pieces meet, and a hair either side of each."""
    since = now - span
    first_hour = since.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    last_hour = now.replace(minute=0, second=0, microsecond=0)
    last_day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    hair = timedelta(microseconds=1)
    points = [since, now, first_hour, last_hour, last_hour - timedelta(hours=1), last_day, last_day - timedelta(days=1)]
    points.append((since + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0))
    return [p + d for p in points for d in (-hair, timedelta(0), hair)]


@pytest.fixture
def known():
    """About 600 replies over eight days, many of them on the window's edges."""
    rng = random.Random(14)
    users = [make_user(f"user{n}") for n in range(5)]
    times = [NOW - timedelta(seconds=rng.randint(0, 8 * 24 * 3600)) for _ in range(400)]
    times += [NOW - timedelta(seconds=rng.randint(0, 3 * 3600)) for _ in range(100)]  # the last hours
    for span in (timedelta(hours=24), timedelta(days=7)):
        times += edge_times(NOW, span)
    times.append(NOW + timedelta(seconds=1))  # after the window
    for at in times:
        metric(at, rng.choice([*users, None]), rng)
    return users


def figures(window, now=NOW):
    data = dashboard_get(window=window, now=now)
    for key in ("workers", "database", "open_streams"):
        data.pop(key)
    return data


def assert_same_figures(rolled, scanned):
    """Equal, except latencies within 1/32 of the scan's and sums of floats in another order."""
    rolled_latency, scanned_latency = rolled.pop("latency_ms"), scanned.pop("latency_ms")
    for name, percentiles in scanned_latency.items():
        for p, exact in percentiles.items():
            estimate = rolled_latency[name][p]
            assert (estimate is None) == (exact is None), (name, p)
            if exact is not None:
                assert abs(estimate - exact) <= exact / 32 + 1e-9, (name, p, estimate, exact)
    rolled_costs = [row.pop("cost_usd") for row in rolled["models"]]
    scanned_costs = [row.pop("cost_usd") for row in scanned["models"]]
    assert [cost is None for cost in rolled_costs] == [cost is None for cost in scanned_costs]
    assert [cost for cost in rolled_costs if cost is not None] == pytest.approx(
        [cost for cost in scanned_costs if cost is not None], rel=1e-12
    )
    assert rolled == scanned


def scanned_figures(window, now=NOW):
    """The figures with the rollups out of the way: every window scans ReplyMetric."""
    through = RollupCursor.objects.get(pk=1).through
    RollupCursor.objects.filter(pk=1).update(through=None)
    try:
        return figures(window, now)
    finally:
        RollupCursor.objects.filter(pk=1).update(through=through)


@pytest.mark.parametrize("window", ["24h", "7d"])
@pytest.mark.parametrize(
    "job_lag", [timedelta(0), timedelta(minutes=-38), timedelta(hours=3, minutes=5)], ids=["now", "ahead", "3h-late"]
)
def test_the_rollups_give_the_scans_figures(known, window, job_lag):
    scanned = scanned_figures(window)
    assert reply_rollup_run(now=NOW - job_lag) > 24 * 7
    assert ReplyRollup.objects.exists() and LatencyRollup.objects.filter(minutes=1440).exists()
    rolled = figures(window)
    assert rolled["replies"]["total"] > 100 and rolled["top_users"]["by_tokens"]
    assert_same_figures(rolled, scanned)


def test_the_rolled_up_hours_are_not_read_from_the_metrics(known):
    """Proof that the figures come from the rollups: with the rolled-up hours' rows gone from
    ReplyMetric, the week still counts them (and only the edges changed)."""
    reply_rollup_run(now=NOW)
    before = figures("7d")
    last_hour = NOW.replace(minute=0, second=0, microsecond=0)
    middle = ReplyMetric.objects.filter(created_at__gte=NOW - timedelta(days=5), created_at__lt=last_hour)
    ToolCallMetric.objects.filter(reply__in=middle).delete()
    gone = middle.delete()[1]["messaging.ReplyMetric"]
    assert gone > 100
    after = figures("7d")
    assert after["replies"]["total"] == before["replies"]["total"]
    assert after["top_users"] == before["top_users"] and after["tools"] == before["tools"]
    assert scanned_figures("7d")["replies"]["total"] == before["replies"]["total"] - gone


def test_a_deleted_user_leaves_the_top_users_as_from_the_scan(known):
    reply_rollup_run(now=NOW)
    top = figures("7d")["top_users"]["by_replies"][0]
    ReplyMetric.objects.filter(user_id=top["user_id"]).first().user.delete()
    assert not UserRollup.objects.filter(user_id=top["user_id"]).exists()
    rolled = figures("7d")
    assert top["user_id"] not in [row["user_id"] for row in rolled["top_users"]["by_replies"]]
    assert_same_figures(rolled, scanned_figures("7d"))


def test_a_reply_committed_after_its_hour_was_rolled_up_is_counted_at_the_next_run(known, user):
    reply_rollup_run(now=NOW)
    late = metric(NOW.replace(minute=0) - timedelta(minutes=30), user, random.Random(1))
    stale = figures("24h")
    assert stale["replies"]["total"] == scanned_figures("24h")["replies"]["total"] - 1
    assert reply_rollup_run(now=NOW) == 1  # that hour again, nothing else
    assert_same_figures(figures("24h"), scanned_figures("24h"))
    assert late.pk


@pytest.mark.parametrize("rows", [10, 200])
def test_the_wide_windows_cost_the_same_queries_whatever_the_rows(rows, django_assert_num_queries):
    rng = random.Random(rows)
    users = [make_user(f"u{n}") for n in range(3)]
    for _ in range(rows):
        metric(NOW - timedelta(seconds=rng.randint(0, 7 * 24 * 3600)), rng.choice(users), rng)
    reply_rollup_run(now=NOW)
    # cursor; replies, latencies, users and tools from the rollups and from the edges; the
    # users' names; open streams; the database size; and the five of the daily quotas block.
    with django_assert_num_queries(17):
        dashboard_get(window="7d", now=NOW)


@pytest.mark.django_db(transaction=True)
def test_runs_beside_each_other_and_beside_writers_count_each_reply_once():
    """Two roll-ups at once (two workers of the periodic task) while replies are written: each
    reply counted once, none lost (on PostgreSQL the cursor's row lock makes the runs take turns)."""
    rng = random.Random(3)
    users = [make_user(f"w{n}") for n in range(3)]
    for _ in range(300):
        metric(NOW - timedelta(seconds=rng.randint(0, 7 * 24 * 3600)), rng.choice(users), rng)
    errors = []

    def run(target, *args):
        try:
            target(*args)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    def write(seed):
        local = random.Random(seed)
        for _ in range(20):
            # the hour in progress, and an hour the runs may have rolled up already
            metric(NOW - timedelta(minutes=local.choice([5, 50, 70, 100])), local.choice(users), local)

    threads = [threading.Thread(target=run, args=(lambda: reply_rollup_run(now=NOW),)) for _ in range(2)]
    threads += [threading.Thread(target=run, args=(write, seed)) for seed in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    reply_rollup_run(now=NOW)  # what a later run does: picks up the writes of rolled-up hours
    for window in ("24h", "7d"):
        assert_same_figures(figures(window), scanned_figures(window))
    assert ReplyRollup.objects.count() == len(set(ReplyRollup.objects.values_list("minute", "model", "status")))

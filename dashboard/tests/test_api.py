"""GET /api/dashboard/ against known ReplyMetric rows, its window check and who may read it."""

import pytest

from conftest import token_client
from messaging.models import ReplyStream, ToolCallMetric
from messaging.services import stream_start
from messaging.tests.factories import make_message, make_reply_metric
from threads.tests.factories import make_thread, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_api(db):
    return token_client(make_user("root", is_staff=True))


@pytest.fixture
def known(user, other_user):
    """Four replies in the last hour, one three hours ago, one eight days ago."""
    a = make_reply_metric(user, 1, total=100, first=50, prompt_tokens=100, completion_tokens=10)
    make_reply_metric(user, 2, total=200, status="error", prompt_tokens=None, completion_tokens=5)
    make_reply_metric(user, 3, total=300, first=150, status="stopped", prompt_tokens=50, completion_tokens=20)
    b = make_reply_metric(
        other_user, 4, total=400, first=250, model="gpt", prompt_tokens=1000, completion_tokens=500, cost_usd=0.25
    )
    make_reply_metric(
        other_user, 180, total=9000, first=8000, model="gpt", prompt_tokens=7, completion_tokens=3, cost_usd=0.5
    )
    make_reply_metric(user, 8 * 24 * 60, total=1, first=1)
    ToolCallMetric.objects.create(reply=a, created_at=a.created_at, name="calculator", duration_ms=10, ok=True)
    ToolCallMetric.objects.create(reply=a, created_at=a.created_at, name="calculator", duration_ms=30, ok=False)
    ToolCallMetric.objects.create(reply=b, created_at=b.created_at, name="web_search", duration_ms=200, ok=True)


def test_the_last_hour_against_known_rows(staff_api, known, user, other_user, django_assert_max_num_queries):
    with django_assert_max_num_queries(14):  # 13: the daily quotas block takes five
        data = staff_api.get("/api/dashboard/?window=1h").json()

    assert data["window"] == "1h" and data["bucket_minutes"] == 1
    assert data["replies"]["total"] == 4 and data["replies"]["per_minute"] == pytest.approx(4 / 60)
    series = data["replies"]["series"]
    assert 60 <= len(series) <= 62 and sum(p["replies"] for p in series) == 4
    assert sum(p["not_complete"] for p in series) == 2
    # percentile_cont: linear interpolation between ranks (and NULL first chunks left out).
    assert data["latency_ms"]["total"] == {"p50": 250.0, "p95": pytest.approx(385.0), "p99": pytest.approx(397.0)}
    assert data["latency_ms"]["first_chunk"] == {
        "p50": 150.0,
        "p95": pytest.approx(240.0),
        "p99": pytest.approx(248.0),
    }
    assert data["latency_ms"]["queue"]["p50"] == 5.0
    assert data["statuses"] == {"complete": 2, "error": 1, "interrupted": 0, "stopped": 1}
    assert data["rates"] == {"error": 0.25, "interrupted": 0.0, "stopped": 0.25}
    assert data["models"] == [
        {"model": "offline", "replies": 3, "prompt_tokens": 150, "completion_tokens": 35, "cost_usd": None},
        {"model": "gpt", "replies": 1, "prompt_tokens": 1000, "completion_tokens": 500, "cost_usd": 0.25},
    ]
    assert data["tools"] == [
        {"name": "calculator", "calls": 2, "failures": 1, "avg_ms": 20},
        {"name": "web_search", "calls": 1, "failures": 0, "avg_ms": 200},
    ]
    top = data["top_users"]
    assert [(u["username"], u["replies"], u["tokens"]) for u in top["by_replies"]] == [
        ("alice", 3, 185),
        ("bob", 1, 1500),
    ]
    assert [u["username"] for u in top["by_tokens"]] == ["bob", "alice"]
    assert data["workers"]["mode"] in ("embedded", "celery")
    assert data["database"]["size_bytes"] > 0


def test_wider_windows_take_older_rows_in_bigger_buckets(staff_api, known):
    day = staff_api.get("/api/dashboard/?window=24h").json()
    assert day["bucket_minutes"] == 15 and day["replies"]["total"] == 5
    assert 96 <= len(day["replies"]["series"]) <= 98
    assert {m["model"]: m["cost_usd"] for m in day["models"]}["gpt"] == pytest.approx(0.75)
    week = staff_api.get("/api/dashboard/?window=7d").json()
    assert week["bucket_minutes"] == 120 and week["replies"]["total"] == 5  # the 8-day-old one is out
    assert 84 <= len(week["replies"]["series"]) <= 86


def test_an_empty_window(staff_api):
    data = staff_api.get("/api/dashboard/").json()
    assert data["window"] == "1h" and data["replies"]["total"] == 0
    assert data["latency_ms"]["total"] == {"p50": None, "p95": None, "p99": None}
    assert data["rates"]["error"] == 0.0 and data["models"] == [] and data["top_users"]["by_replies"] == []


def test_open_streams_are_counted(staff_api, user):
    question = make_message(make_thread(user), "hi")
    stream_start(reply_to=question)
    assert staff_api.get("/api/dashboard/").json()["open_streams"] == 1
    ReplyStream.objects.update(status="complete")
    assert staff_api.get("/api/dashboard/").json()["open_streams"] == 0


@pytest.mark.parametrize("window", ["2h", "", "1H", "7d,1h"])
def test_an_unknown_window_is_a_400_naming_the_accepted_ones(staff_api, window):
    response = staff_api.get("/api/dashboard/", {"window": window})
    assert response.status_code == 400
    assert response.json()["window"] == ["Must be one of: 1h, 24h, 7d."]


def test_only_staff_read_it(anon_api, api, known):
    anonymous = anon_api.get("/api/dashboard/")
    assert anonymous.status_code == 401 and "replies" not in anonymous.json()
    normal = api.get("/api/dashboard/")
    assert normal.status_code == 403 and "replies" not in normal.json()


def test_wide_windows_are_reused_for_a_few_seconds_the_last_hour_never(staff_api, user, django_assert_num_queries):
    from dashboard.selectors import WINDOWS

    assert WINDOWS["1h"].cache_seconds == 0 and 0 < WINDOWS["24h"].cache_seconds <= WINDOWS["7d"].cache_seconds <= 60
    assert staff_api.get("/api/dashboard/?window=7d").json()["replies"]["total"] == 0
    make_reply_metric(user, 5, total=10)
    with django_assert_num_queries(1):  # the token: the figures come from the cache
        assert staff_api.get("/api/dashboard/?window=7d").json()["replies"]["total"] == 0
    assert staff_api.get("/api/dashboard/?window=1h").json()["replies"]["total"] == 1

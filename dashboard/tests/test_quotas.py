"""The dashboard's daily quotas block: the day's top users with used/limit and those at or over a
limit, against known ReplyMetric rows, on an explicit day (no waiting for midnight)."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from conftest import token_client
from dashboard.selectors import quotas_get
from messaging.selectors import quota_day
from messaging.services import message_send, user_quota_set
from messaging.tests.factories import make_reply_metric
from threads.tests.factories import make_thread, make_user

pytestmark = pytest.mark.django_db

MIDNIGHT = datetime(2026, 12, 2, tzinfo=UTC)
NOON = MIDNIGHT + timedelta(hours=12)


def usage(row):
    return (row["username"], row["replies"], row["tokens"], row["reached"])


def test_top_users_and_those_at_their_limit_against_known_rows(settings, user, other_user, django_assert_num_queries):
    settings.USER_DAILY_REPLY_LIMIT, settings.USER_DAILY_TOKEN_LIMIT = 3, 1000
    carol, dave = make_user("carol"), make_user("dave")
    for _ in range(3):  # alice: at the reply limit
        make_reply_metric(user, NOON, prompt_tokens=10, completion_tokens=5)
    make_reply_metric(other_user, NOON, prompt_tokens=900, completion_tokens=200)  # bob: over the token limit
    make_reply_metric(carol, MIDNIGHT, prompt_tokens=None, completion_tokens=7)
    make_reply_metric(carol, MIDNIGHT, prompt_tokens=1, completion_tokens=1)
    make_reply_metric(carol, MIDNIGHT - timedelta(seconds=1), prompt_tokens=5000, completion_tokens=0)  # yesterday
    user_quota_set(user=carol, replies="unlimited")
    user_quota_set(user=dave, replies=1)  # nothing used today: neither listed nor at the limit

    with django_assert_num_queries(5):
        quotas = quotas_get(now=NOON)

    assert (quotas["day_start"], quotas["resets_at"]) == (MIDNIGHT, MIDNIGHT + timedelta(days=1))
    assert quotas["defaults"] == {"replies": 3, "tokens": 1000}
    assert [usage(row) for row in quotas["top_users"]] == [
        ("alice", {"used": 3, "limit": 3}, {"used": 45, "limit": 1000}, ["replies"]),
        ("carol", {"used": 2, "limit": None}, {"used": 9, "limit": 1000}, []),
        ("bob", {"used": 1, "limit": 3}, {"used": 1100, "limit": 1000}, ["tokens"]),
    ]
    assert [usage(row) for row in quotas["over_limit"]] == [
        ("alice", {"used": 3, "limit": 3}, {"used": 45, "limit": 1000}, ["replies"]),
        ("bob", {"used": 1, "limit": 3}, {"used": 1100, "limit": 1000}, ["tokens"]),
    ]
    assert quotas["over_limit_total"] == 2 and quotas["top_users"][0]["user_id"] == user.pk

    # The next day starts from nothing.
    tomorrow = quotas_get(now=MIDNIGHT + timedelta(days=1))
    assert tomorrow["top_users"] == tomorrow["over_limit"] == [] and tomorrow["over_limit_total"] == 0


def test_replies_in_progress_count_as_the_send_check_counts_them(settings, user):
    settings.USER_DAILY_REPLY_LIMIT = 1
    message_send(thread=make_thread(user), sender=user, content="waiting for a worker")
    [row] = quotas_get(now=timezone.now())["over_limit"]
    assert usage(row) == ("alice", {"used": 1, "limit": 1}, {"used": 0, "limit": None}, ["replies"])


def test_the_api_and_only_staff_see_every_users_quota(api, user, settings):
    settings.USER_DAILY_REPLY_LIMIT = None
    make_reply_metric(user, prompt_tokens=4, completion_tokens=2)
    data = token_client(make_user("root", is_staff=True)).get("/api/dashboard/?window=1h").json()
    day_start, resets_at = quota_day(timezone.now())
    quotas = data["quotas"]
    assert (quotas["day_start"], quotas["resets_at"]) == (
        day_start.isoformat().replace("+00:00", "Z"),
        resets_at.isoformat().replace("+00:00", "Z"),
    )
    assert [usage(row) for row in quotas["top_users"]] == [
        ("alice", {"used": 1, "limit": None}, {"used": 6, "limit": None}, [])
    ]
    assert api.get("/api/dashboard/").status_code == 403


def test_the_page_polls_a_block_reused_for_a_few_seconds(user, settings):
    from dashboard.selectors import QUOTAS_CACHE_SECONDS

    assert 0 < QUOTAS_CACHE_SECONDS <= 30
    staff = token_client(make_user("root", is_staff=True))
    assert staff.get("/api/dashboard/").json()["quotas"]["top_users"] == []
    make_reply_metric(user)
    assert staff.get("/api/dashboard/").json()["quotas"]["top_users"] == []  # the block is reused
    assert staff.get("/api/dashboard/").json()["replies"]["total"] == 1  # the 1h figures are not

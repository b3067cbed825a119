"""Daily quotas: limits from the settings and per-user overrides, usage from ReplyMetric rows plus
the replies in progress, refusals before anything is stored (services, REST, WebSocket, for sends
and regenerates alike), the user's own usage in /api/me/, the admin and ``manage.py quota``."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime, timedelta
from datetime import timezone as tz

import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from chatproject.errors import DailyQuotaExceeded, InvalidInput
from messaging.models import ChatAttachment, ChatMessage, ReplyMetric, ReplyStream, UserQuota
from messaging.selectors import QuotaLimits, quota_day, quota_limits, quota_usage_get, quota_usage_list
from messaging.services import message_regenerate, message_send, message_send_file, stream_start, user_quota_set
from messaging.tests.factories import make_message, make_reply_metric
from messaging.tests.test_consumers import (  # noqa: F401 (the fixture applies here too)
    _fresh_channel_layer_and_cache,
    connect,
    message_count,
    ready,
    receive_until,
)
from messaging.tests.test_services import at_once, replies_wait  # noqa: F401 (a fixture)
from threads.tests.factories import make_thread, make_user

MIDNIGHT = datetime(2026, 12, 2, tzinfo=UTC)
NOON = MIDNIGHT + timedelta(hours=12)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def tokens_of(user) -> int:
    return sum((row.prompt_tokens or 0) + row.completion_tokens for row in ReplyMetric.objects.filter(user=user))


@pytest.fixture
def send(django_capture_on_commit_callbacks, settings):
    """Send a message and let its reply run to the end (inline), as a worker would."""
    # The reply's heartbeat beats on a connection of its own, which cannot see the stream this
    # test's transaction has not committed: a reply slower than a beat (the first of a process
    # loads the token counter) would take its stream for lost.
    settings.STREAM_HEARTBEAT_SECONDS = 600

    def send(thread, content: str) -> ChatMessage:
        with django_capture_on_commit_callbacks(execute=True):
            message, _ = message_send(thread=thread, sender=thread.owner, content=content)
        return message

    return send


# --- What a day is, what the limits are, what counts ---------------------------------------------


def test_a_day_is_the_utc_day_whatever_the_clock_says():
    assert quota_day(NOON) == (MIDNIGHT, MIDNIGHT + timedelta(days=1))
    assert quota_day(MIDNIGHT) == (MIDNIGHT, MIDNIGHT + timedelta(days=1))
    assert quota_day(MIDNIGHT - timedelta(microseconds=1)) == (MIDNIGHT - timedelta(days=1), MIDNIGHT)
    # 05:00 on the 3rd in Tokyo is 20:00 on the 2nd in UTC: the 2nd's quota.
    tokyo = (MIDNIGHT + timedelta(hours=20)).astimezone(tz(timedelta(hours=9)))
    assert tokyo.day == 3 and quota_day(tokyo) == (MIDNIGHT, MIDNIGHT + timedelta(days=1))


@pytest.mark.django_db
def test_limits_come_from_the_settings_unless_the_user_has_their_own(settings, user, other_user):
    settings.USER_DAILY_REPLY_LIMIT = settings.USER_DAILY_TOKEN_LIMIT = None
    assert quota_limits(user_ids=[user.pk]) == {user.pk: QuotaLimits(replies=None, tokens=None)}

    settings.USER_DAILY_REPLY_LIMIT, settings.USER_DAILY_TOKEN_LIMIT = 50, 10_000
    third = make_user()
    user_quota_set(user=user, replies=5)
    user_quota_set(user=other_user, replies="default", tokens="default")
    user_quota_set(user=third, replies="unlimited", tokens=0)
    assert quota_limits(user_ids=[user.pk, other_user.pk, third.pk]) == {
        user.pk: QuotaLimits(replies=5, tokens=10_000),
        other_user.pk: QuotaLimits(replies=50, tokens=10_000),
        third.pk: QuotaLimits(replies=None, tokens=0),
    }
    # Back to the default for one limit; the other stays the user's own.
    user_quota_set(user=third, replies="default")
    assert quota_limits(user_ids=[third.pk])[third.pk] == QuotaLimits(replies=50, tokens=0)
    assert quota_limits(user_ids=[]) == {}


@pytest.mark.django_db
@pytest.mark.parametrize("value", [-1, 1.5, "lots", True, "none", 2**31])
def test_a_limit_that_cannot_be_is_refused(user, value):
    with pytest.raises(InvalidInput) as error:
        user_quota_set(user=user, replies=value)
    assert error.value.errors == {"replies": ['A whole number from 0 to 2147483647, "unlimited" or "default".']}
    with pytest.raises(InvalidInput) as error:
        user_quota_set(user=user, tokens=2**63)
    assert error.value.errors == {"tokens": ['A whole number from 0 to 9223372036854775807, "unlimited" or "default".']}
    assert not UserQuota.objects.exists()
    user_quota_set(user=user, replies=2**31 - 1, tokens=2**63 - 1)  # the largest the columns hold
    assert quota_limits(user_ids=[user.pk])[user.pk] == QuotaLimits(replies=2**31 - 1, tokens=2**63 - 1)


@pytest.mark.django_db
def test_a_limit_and_unlimited_together_are_refused_by_the_model_and_the_database(user):
    quota = UserQuota(user=user, daily_reply_limit=5, unlimited_replies=True)
    with pytest.raises(ValidationError) as error:
        quota.full_clean()
    assert "Give a daily reply limit or tick unlimited replies, not both." in str(error.value)
    with pytest.raises(IntegrityError), transaction.atomic():
        UserQuota.objects.create(user=user, daily_token_limit=5, unlimited_tokens=True)


@pytest.mark.django_db
def test_usage_counts_the_days_replies_and_their_tokens_from_reply_metrics(user, other_user):
    make_reply_metric(user, MIDNIGHT, prompt_tokens=100, completion_tokens=10)
    # Every ended reply counts, whatever its status; a prompt nobody counted counts as 0.
    make_reply_metric(user, NOON, prompt_tokens=None, completion_tokens=5, status="stopped")
    make_reply_metric(user, NOON, prompt_tokens=40, completion_tokens=2, status="error")
    make_reply_metric(user, MIDNIGHT - timedelta(microseconds=1), prompt_tokens=1000, completion_tokens=1)
    make_reply_metric(user, MIDNIGHT + timedelta(days=1), prompt_tokens=2000, completion_tokens=2)
    make_reply_metric(other_user, NOON, prompt_tokens=7, completion_tokens=7)

    usage = quota_usage_get(user_id=user.pk, now=NOON)
    assert (usage.replies_used, usage.tokens_used) == (3, 157)
    assert (usage.day_start, usage.resets_at) == (MIDNIGHT, MIDNIGHT + timedelta(days=1))
    # At midnight the count starts again: the next day has only its own row, the day after none.
    tomorrow = quota_usage_get(user_id=user.pk, now=MIDNIGHT + timedelta(days=1))
    assert (tomorrow.replies_used, tomorrow.tokens_used) == (1, 2002)
    assert quota_usage_get(user_id=user.pk, now=MIDNIGHT + timedelta(days=2, hours=23)).replies_used == 0
    earlier = quota_usage_get(user_id=user.pk, now=MIDNIGHT - timedelta(hours=1))
    assert (earlier.replies_used, earlier.tokens_used) == (1, 1001)
    # Each user's own rows only.
    assert quota_usage_get(user_id=other_user.pk, now=NOON).tokens_used == 14
    assert {u.user_id: (u.replies_used, u.tokens_used) for u in quota_usage_list(now=NOON)} == {
        user.pk: (3, 157),
        other_user.pk: (1, 14),
    }


@pytest.mark.django_db
def test_replies_in_progress_count_as_used_but_their_tokens_only_once_ended(user, other_user):
    thread = make_thread(user)
    message_send(thread=thread, sender=user, content="queued")  # waits for a worker
    streaming, _ = message_send(thread=thread, sender=user, content="streaming")
    stream_start(reply_to=streaming)
    make_message(thread, "a note", awaiting_reply=False)
    make_reply_metric(user, prompt_tokens=3, completion_tokens=4)
    message_send(thread=make_thread(other_user), sender=other_user, content="theirs")

    usage = quota_usage_get(user_id=user.pk)
    assert (usage.replies_used, usage.tokens_used) == (3, 7)
    assert quota_usage_get(user_id=other_user.pk).replies_used == 1


# --- Refusals --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_send_past_the_daily_reply_limit_is_refused_and_stores_nothing(settings, user, other_user, send):
    settings.USER_DAILY_REPLY_LIMIT = 2
    thread = make_thread(user)
    send(thread, "what is 1 plus 1?")
    send(thread, "what is 2 plus 2?")
    assert ReplyMetric.objects.filter(user=user).count() == 2  # two real replies ended

    stored = ChatMessage.objects.count()
    with pytest.raises(DailyQuotaExceeded) as refused:
        message_send(thread=thread, sender=user, content="one more", client_id="c1")
    resets_at = quota_day(timezone.now())[1]
    error = refused.value
    assert error.code == "quota_exceeded"
    assert error.details == {"quota": "replies", "limit": 2, "used": 2, "resets_at": iso(resets_at)}
    assert "2 of 2 AI replies used today" in error.message
    assert abs(error.retry_after - (resets_at - timezone.now()).total_seconds()) <= 2
    # Files ask for a reply too.
    with pytest.raises(DailyQuotaExceeded):
        message_send_file(thread=thread, sender=user, filename="a.txt", data=b"a")
    assert ChatMessage.objects.count() == stored and not ChatAttachment.objects.exists()

    # A message that asks for no reply is not held to it; another user is not affected.
    message_send(thread=thread, sender=user, content="a note", reply=False)
    send(make_thread(other_user), "what is 3 plus 3?")
    assert ReplyMetric.objects.filter(user=other_user).count() == 1


@pytest.mark.django_db
def test_the_token_limit_counts_the_tokens_of_the_days_replies(settings, user, send):
    thread = make_thread(user)
    send(thread, "what is 2 plus 2?")
    first = tokens_of(user)
    assert first > 0
    settings.USER_DAILY_TOKEN_LIMIT = first + 1
    # Under the limit: the reply is allowed, and may take the day past it (its tokens are known
    # only when it ends).
    send(thread, "what is 3 plus 3?")
    used = tokens_of(user)
    assert used > first + 1

    with pytest.raises(DailyQuotaExceeded) as refused:
        message_send(thread=thread, sender=user, content="more")
    assert refused.value.details | {"resets_at": None} == {
        "quota": "tokens",
        "limit": first + 1,
        "used": used,
        "resets_at": None,
    }
    assert f"{used} of {first + 1} tokens used today" in refused.value.message


@pytest.mark.django_db
def test_own_limits_beat_the_defaults_unlimited_included(settings, user, send):
    settings.USER_DAILY_REPLY_LIMIT = settings.USER_DAILY_TOKEN_LIMIT = 0
    thread = make_thread(user)
    with pytest.raises(DailyQuotaExceeded) as refused:
        message_send(thread=thread, sender=user, content="hello")
    assert (refused.value.details["quota"], refused.value.details["limit"]) == ("replies", 0)

    user_quota_set(user=user, replies="unlimited")
    with pytest.raises(DailyQuotaExceeded) as refused:
        message_send(thread=thread, sender=user, content="hello")
    assert refused.value.details["quota"] == "tokens"

    user_quota_set(user=user, tokens="unlimited")
    send(thread, "what is 1 plus 1?")
    send(thread, "what is 2 plus 2?")

    user_quota_set(user=user, replies=3)
    send(thread, "what is 3 plus 3?")
    with pytest.raises(DailyQuotaExceeded) as refused:
        message_send(thread=thread, sender=user, content="hello")
    assert refused.value.details | {"resets_at": None} == {
        "quota": "replies",
        "limit": 3,
        "used": 3,
        "resets_at": None,
    }
    assert ReplyMetric.objects.filter(user=user).count() == 3


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("replies_wait")
def test_sends_at_once_cannot_pass_the_reply_limit_together(settings):
    settings.USER_DAILY_REPLY_LIMIT = 2
    settings.MAX_CONCURRENT_REPLIES = 100
    thread = make_thread()
    outcomes = at_once(6, lambda n: message_send(thread=thread, sender=thread.owner, content=f"m{n}"))
    assert outcomes == ["quota_exceeded"] * 4 + ["stored"] * 2
    assert ChatMessage.objects.count() == 2


# --- Over REST -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_rest_answers_429_saying_which_limit_and_stores_nothing(api, user, settings):
    settings.USER_DAILY_REPLY_LIMIT = 3
    for _ in range(3):
        make_reply_metric(user, prompt_tokens=10, completion_tokens=1)
    thread = make_thread(user)

    response = api.post(f"/api/threads/{thread.pk}/messages/", {"content": "hello", "client_id": "x"}, format="json")
    assert response.status_code == 429
    resets_at = quota_day(timezone.now())[1]
    body = response.json()
    assert body.pop("detail").startswith("Daily limit reached: 3 of 3 AI replies used today")
    assert body == {"code": "quota_exceeded", "quota": "replies", "limit": 3, "used": 3, "resets_at": iso(resets_at)}
    assert datetime.fromisoformat(body["resets_at"]) == resets_at
    assert abs(int(response["Retry-After"]) - (resets_at - timezone.now()).total_seconds()) <= 2
    assert not ChatMessage.objects.exists()
    # The token limit answers the same way, naming itself.
    settings.USER_DAILY_REPLY_LIMIT, settings.USER_DAILY_TOKEN_LIMIT = None, 33
    body = api.post(f"/api/threads/{thread.pk}/messages/", {"content": "hello"}, format="json").json()
    assert (body["code"], body["quota"], body["limit"], body["used"]) == ("quota_exceeded", "tokens", 33, 33)
    assert not ChatMessage.objects.exists()


@pytest.mark.django_db
def test_regenerate_is_refused_too_and_asks_nothing(api, user, settings, send):
    thread = make_thread(user)
    question = send(thread, "what is 2 plus 2?")
    settings.USER_DAILY_REPLY_LIMIT = 1
    url = reverse("message-regenerate", kwargs={"thread_id": thread.pk, "message_id": question.pk})

    response = api.post(url, {"client_id": "again"}, format="json")
    assert response.status_code == 429 and int(response["Retry-After"]) >= 1
    assert (response.json()["code"], response.json()["quota"], response.json()["used"]) == (
        "quota_exceeded",
        "replies",
        1,
    )
    question.refresh_from_db()
    assert (question.reply_attempt, question.awaiting_reply, question.reply_client_id) == (0, False, None)
    assert ReplyStream.objects.filter(reply_to=question).count() == 1
    with pytest.raises(DailyQuotaExceeded):
        message_regenerate(thread=thread, sender=user, message_id=question.pk)

    settings.USER_DAILY_REPLY_LIMIT = 2
    assert api.post(url, {}, format="json").status_code == 202


@pytest.mark.django_db
def test_me_shows_my_usage_and_limits_only(api, user, other_user, settings):
    settings.USER_DAILY_REPLY_LIMIT, settings.USER_DAILY_TOKEN_LIMIT = 100, None
    day_start, resets_at = quota_day(timezone.now())
    make_reply_metric(user, day_start + timedelta(microseconds=1), prompt_tokens=10, completion_tokens=5)
    make_reply_metric(user, day_start - timedelta(seconds=1), prompt_tokens=500, completion_tokens=500)
    make_reply_metric(other_user, prompt_tokens=1000, completion_tokens=1000)
    message_send(thread=make_thread(user), sender=user, content="waiting for its reply")

    usage = api.get("/api/me/").json()["usage"]
    assert usage == {
        "day_start": iso(day_start),
        "resets_at": iso(resets_at),
        "replies": {"used": 2, "limit": 100},
        "tokens": {"used": 15, "limit": None},
    }
    user_quota_set(user=user, replies="unlimited", tokens=20)
    usage = api.get("/api/me/").json()["usage"]
    assert (usage["replies"], usage["tokens"]) == ({"used": 2, "limit": None}, {"used": 15, "limit": 20})


# --- Over the WebSocket ----------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_websocket_refusal_is_an_error_event_the_connection_stays_nothing_stored(settings):
    settings.USER_DAILY_REPLY_LIMIT = 1
    alice = await sync_to_async(make_user)("alice")
    thread = await sync_to_async(make_thread)(alice)
    question = await sync_to_async(make_message)(thread, "what is 2 plus 2?")
    await sync_to_async(make_reply_metric)(alice, prompt_tokens=1, completion_tokens=1)
    client = await connect(alice, thread)
    await ready(client)

    await client.send_json_to({"type": "message", "content": "hello", "client_id": "q1"})
    event = await client.receive_json_from(timeout=5)
    resets_at = quota_day(timezone.now())[1]
    assert event.pop("message").startswith("Daily limit reached: 1 of 1 AI replies")
    assert abs(event.pop("retry_after") - (resets_at - timezone.now()).total_seconds()) <= 2
    assert event == {
        "type": "error",
        "code": "quota_exceeded",
        "quota": "replies",
        "limit": 1,
        "used": 1,
        "resets_at": iso(resets_at),
        "client_id": "q1",
    }
    await client.send_json_to({"type": "regenerate", "message_id": str(question.pk), "client_id": "r1"})
    event = await client.receive_json_from(timeout=5)
    assert (event["type"], event["code"], event["quota"], event["client_id"]) == (
        "error",
        "quota_exceeded",
        "replies",
        "r1",
    )
    await ready(client)  # still open
    assert await message_count(thread) == 1
    assert (await sync_to_async(ChatMessage.objects.get)(pk=question.pk)).reply_attempt == 0

    # Staff raise the user's limit: the same connection sends, and the reply streams.
    await sync_to_async(user_quota_set)(user=alice, replies=2)
    await client.send_json_to({"type": "message", "content": "what is 3 plus 3?", "client_id": "q2"})
    events = await receive_until(client, "stream_end", timeout=30)
    assert events[0]["type"] == "message" and events[-1]["status"] == "complete"
    await client.disconnect()


# --- For staff: the admin and the command ----------------------------------------------------------


@pytest.mark.django_db
def test_the_admin_sets_a_users_limits_and_explains_them(admin_client, user, settings):
    settings.USER_DAILY_REPLY_LIMIT, settings.USER_DAILY_TOKEN_LIMIT = 40, None
    add = admin_client.get("/admin/messaging/userquota/add/")
    assert add.status_code == 200
    page = add.content.decode()
    assert "A day is a UTC day" in page and "40 replies (USER_DAILY_REPLY_LIMIT)" in page
    assert "unlimited tokens (USER_DAILY_TOKEN_LIMIT)" in page
    assert "No daily reply limit for this user, whatever USER_DAILY_REPLY_LIMIT says" in page

    both = {"user": user.pk, "daily_reply_limit": "5", "unlimited_replies": "on"}
    response = admin_client.post("/admin/messaging/userquota/add/", both)
    assert response.status_code == 200 and "not both" in response.content.decode()
    assert not UserQuota.objects.exists()

    response = admin_client.post("/admin/messaging/userquota/add/", {"user": user.pk, "unlimited_tokens": "on"})
    assert response.status_code == 302
    assert quota_limits(user_ids=[user.pk])[user.pk] == QuotaLimits(replies=40, tokens=None)
    make_reply_metric(user, prompt_tokens=1200, completion_tokens=34)
    listing = admin_client.get("/admin/messaging/userquota/").content.decode()
    assert "default (40)" in listing and "unlimited" in listing
    change = admin_client.get(f"/admin/messaging/userquota/{user.pk}/change/").content.decode()
    assert "1 of 40 replies, 1,234 of unlimited tokens" in change


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("quota", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.mark.django_db
def test_quota_command_shows_and_sets_a_users_limits(user, settings):
    settings.USER_DAILY_REPLY_LIMIT, settings.USER_DAILY_TOKEN_LIMIT = 10, 500
    make_reply_metric(user, prompt_tokens=400, completion_tokens=100)
    lines = run("alice").splitlines()
    assert lines[1:] == ["limit\tused today\tper day\treached", "replies\t1\t10\t", "tokens\t500\t500\tyes"]
    assert lines[0].startswith("# Daily quota of alice (resets at ")

    data = json.loads(run("alice", "--replies", "none", "--tokens", "1000", "--json"))
    assert (data["user"], data["replies"], data["tokens"]) == (
        "alice",
        {"used": 1, "limit": None},
        {"used": 500, "limit": 1000},
    )
    assert data["reached"] == [] and data["resets_at"] == quota_day(timezone.now())[1].isoformat()
    assert quota_limits(user_ids=[user.pk])[user.pk] == QuotaLimits(replies=None, tokens=1000)
    run("alice", "--replies", "default")
    assert quota_limits(user_ids=[user.pk])[user.pk] == QuotaLimits(replies=10, tokens=1000)

    for args, message in [
        (("alice", "--replies", "-3"), "--replies takes a whole number, none (unlimited) or default"),
        (("alice", "--tokens", "many"), "--tokens takes a whole number"),
        (("alice", "--replies", "99999999999"), "replies: A whole number from 0 to 2147483647"),
        (("nobody",), 'No user "nobody".'),
    ]:
        with pytest.raises(CommandError, match=re.escape(message)) as error:
            run(*args)
        assert error.value.returncode == 2
    assert quota_limits(user_ids=[user.pk])[user.pk] == QuotaLimits(replies=10, tokens=1000)

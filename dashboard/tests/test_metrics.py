"""GET /metrics: its numbers against known replies, tool calls, webhook attempts, HTTP requests
and WebSocket connections, parsed back with prometheus-client's own parser; and who may read it."""

from __future__ import annotations

import logging

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.authtoken.models import Token

from chatproject.models import MetricTotal
from messaging.metrics import reply_metric_record
from messaging.models import ReplyMetric
from messaging.services import stream_append, stream_finish, stream_start
from messaging.tests.factories import make_message
from threads.tests.factories import make_thread, make_user
from webhooks import services as webhook_services
from webhooks.models import WebhookDelivery
from webhooks.tests.test_services import Receiver, hook_for, run_due_now

METRICS_TOKEN = "metrics-token-for-tests-0123456789"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> tuple[dict[str, str], Samples]:
    """Each family's type, and every sample's value by (sample name, labels)."""
    types, samples = {}, {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return types, samples


def scrape(client: Client | None = None) -> tuple[dict[str, str], Samples]:
    response = (client or Client()).get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    assert "no-store" in response["Cache-Control"]
    return parse(response.content.decode())


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture(autouse=True)
def _metrics_token(settings):
    settings.METRICS_TOKEN = METRICS_TOKEN


def ended_stream(user):
    stream = stream_start(reply_to=make_message(make_thread(user), "hello"))
    stream.ended_at = timezone.now()
    return stream


def record(user, *, model, status, first, total, prompt, completion, tools=()):
    reply_metric_record(
        stream=ended_stream(user),
        metrics={
            "model": model,
            "status": status,
            "latency_ms": {"queue": 1, "first_chunk": first, "total": total},
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion},
            "cost_usd": None,
            "tools": [{"name": name, "duration_ms": 5, "ok": ok} for name, ok in tools],
        },
        message_id=None,
    )


@pytest.mark.django_db
def test_replies_tokens_latencies_and_tools_against_known_replies(user):
    record(user, model="offline", status="complete", first=100, total=250, prompt=100, completion=10,
           tools=[("calculator", True), ("calculator", False)])  # fmt: skip
    record(user, model="offline", status="error", first=None, total=101, prompt=None, completion=5)
    record(user, model="offline", status="complete", first=2600, total=400_000, prompt=50, completion=20,
           tools=[("web_search", True)])  # fmt: skip
    record(user, model="gpt", status="stopped", first=0, total=60_000, prompt=1000, completion=500,
           tools=[("calculator", True)])  # fmt: skip

    types, samples = scrape()

    assert types["chat_replies"] == "counter"
    assert types["chat_reply_first_chunk_seconds"] == types["chat_reply_total_seconds"] == "histogram"
    replies = {key: v for key, v in samples.items() if key[0] == "chat_replies_total"}
    assert replies == {
        ("chat_replies_total", frozenset({("model", "offline"), ("status", "complete")})): 2,
        ("chat_replies_total", frozenset({("model", "offline"), ("status", "error")})): 1,
        ("chat_replies_total", frozenset({("model", "gpt"), ("status", "stopped")})): 1,
    }
    # An unknown prompt (the error reply's) is not counted; its completion tokens are.
    assert value(samples, "chat_reply_tokens_total", model="offline", type="prompt") == 150
    assert value(samples, "chat_reply_tokens_total", model="offline", type="completion") == 35
    assert value(samples, "chat_reply_tokens_total", model="gpt", type="prompt") == 1000
    assert value(samples, "chat_reply_tokens_total", model="gpt", type="completion") == 500

    def buckets(name, model):
        return {
            le: value(samples, f"{name}_bucket", model=model, le=le)
            for le in ("0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "60.0", "120.0", "300.0", "+Inf")
        }

    # Buckets are "less than or equal": 100 ms is in le=0.1, 101 ms is not.
    assert buckets("chat_reply_total_seconds", "offline") == {
        "0.1": 0, "0.25": 2, "0.5": 2, "1.0": 2, "2.5": 2, "5.0": 2, "60.0": 2, "120.0": 2, "300.0": 2, "+Inf": 3,
    }  # fmt: skip
    assert value(samples, "chat_reply_total_seconds_count", model="offline") == 3
    assert value(samples, "chat_reply_total_seconds_sum", model="offline") == pytest.approx(400.351)
    # A reply with no chunk (first_chunk null) is not observed.
    assert buckets("chat_reply_first_chunk_seconds", "offline") == {
        "0.1": 1, "0.25": 1, "0.5": 1, "1.0": 1, "2.5": 1, "5.0": 2, "60.0": 2, "120.0": 2, "300.0": 2, "+Inf": 2,
    }  # fmt: skip
    assert value(samples, "chat_reply_first_chunk_seconds_count", model="offline") == 2
    assert value(samples, "chat_reply_first_chunk_seconds_sum", model="offline") == pytest.approx(2.7)
    assert value(samples, "chat_reply_total_seconds_bucket", model="gpt", le="30.0") == 0
    assert value(samples, "chat_reply_total_seconds_bucket", model="gpt", le="60.0") == 1
    assert value(samples, "chat_reply_first_chunk_seconds_bucket", model="gpt", le="0.1") == 1

    tools = {key: v for key, v in samples.items() if key[0] == "chat_tool_calls_total"}
    assert tools == {
        ("chat_tool_calls_total", frozenset({("tool", "calculator"), ("outcome", "ok")})): 2,
        ("chat_tool_calls_total", frozenset({("tool", "calculator"), ("outcome", "error")})): 1,
        ("chat_tool_calls_total", frozenset({("tool", "web_search"), ("outcome", "ok")})): 1,
    }


@pytest.mark.django_db
def test_a_reply_through_stream_finish_is_counted_as_its_reply_metric_row_says(user):
    thread = make_thread(user, model="offline")
    stream = stream_start(reply_to=make_message(thread, "hello"))
    assert stream_append(stream=stream, delta="Hi there")
    stream_finish(
        stream=stream,
        status="complete",
        metadata={"model": "offline", "usage": {"prompt_tokens": 7, "completion_tokens": 3}},
    )
    row = ReplyMetric.objects.get()

    _, samples = scrape()

    assert value(samples, "chat_replies_total", model="offline", status="complete") == 1
    assert value(samples, "chat_reply_tokens_total", model="offline", type="prompt") == 7
    assert value(samples, "chat_reply_tokens_total", model="offline", type="completion") == 3
    assert value(samples, "chat_reply_total_seconds_sum", model="offline") == pytest.approx(row.total_ms / 1000)
    assert value(samples, "chat_reply_first_chunk_seconds_sum", model="offline") == pytest.approx(
        row.first_chunk_ms / 1000
    )


@pytest.mark.django_db
def test_a_rolled_back_reply_is_not_counted(user):
    from django.db import transaction

    def fails() -> None:
        with transaction.atomic():
            record(user, model="offline", status="complete", first=1, total=2, prompt=1, completion=1)
            raise RuntimeError("the transaction that recorded the reply fails")

    with pytest.raises(RuntimeError):
        fails()
    assert not MetricTotal.objects.exists()
    _, samples = scrape()
    assert value(samples, "chat_replies_total", model="offline", status="complete") == 0


@pytest.mark.django_db
def test_webhook_attempts_by_outcome(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE, settings.WEBHOOK_TIMEOUT_SECONDS = True, 1  # a receiver on 127.0.0.1
    owner = make_user()
    with Receiver(statuses=[500, 200, 410]) as receiver:
        hook_for(receiver, owner)
        make_thread(owner=owner, title="first")  # 500 (retry), then 200
        assert webhook_services.deliveries_run_due() == 1
        assert run_due_now() == 1
        make_thread(owner=owner, title="second")  # 410: failed, the endpoint disabled
        make_thread(owner=owner, title="third")  # due after it: failed without a request
        assert webhook_services.deliveries_run_due() == 2
    assert len(receiver.verified) == 3
    assert sorted(WebhookDelivery.objects.values_list("status", flat=True)) == ["failed", "failed", "succeeded"]

    types, samples = scrape()

    assert types["chat_webhook_delivery_attempts"] == "counter"
    attempts = {dict(labels)["outcome"]: v for (name, labels), v in samples.items() if name.startswith("chat_webhook")}
    assert attempts == {"retry": 1, "succeeded": 1, "failed": 2}


@pytest.mark.django_db
def test_http_requests_by_method_route_and_status():
    user = make_user("carol")
    threads = [make_thread(user), make_thread(user)]
    api = Client(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    _, before = scrape()

    for thread in threads:  # two paths, one route
        assert api.get(f"/api/threads/{thread.pk}/messages/").status_code == 200
    assert Client().get("/healthz").status_code == 200
    assert Client().get("/no/such/page/").status_code == 404
    assert Client().post("/metrics").status_code == 405
    assert Client().generic("BREW", "/metrics").status_code == 405
    _, after = scrape()

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    messages = {"method": "GET", "route": "/api/threads/<str:thread_id>/messages/", "status": "200"}
    assert delta("chat_http_requests_total", **messages) == 2
    assert delta("chat_http_request_duration_seconds_count", **messages) == 2
    assert delta("chat_http_request_duration_seconds_bucket", **messages, le="+Inf") == 2
    assert delta("chat_http_request_duration_seconds_sum", **messages) > 0
    assert delta("chat_http_requests_total", method="GET", route="/healthz", status="200") == 1
    assert delta("chat_http_requests_total", method="GET", route="<unmatched>", status="404") == 1
    assert delta("chat_http_requests_total", method="POST", route="/metrics", status="405") == 1
    assert delta("chat_http_requests_total", method="other", route="/metrics", status="405") == 1
    # The first scrape is counted in the second; no raw path is ever a label.
    assert delta("chat_http_requests_total", method="GET", route="/metrics", status="200") == 1
    increased = {key for key in after if after[key] != before.get(key)}
    assert not any(str(threads[0].pk) in value for _, labels in increased for _, value in labels)


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_websocket_connections_open_and_accepted():
    from channels.db import database_sync_to_async as sync_to_async  # closes its connections

    from chatproject.asgi import application

    user = await sync_to_async(make_user)("dora")
    thread = await sync_to_async(make_thread)(user)
    token = (await sync_to_async(Token.objects.create)(user=user)).key
    _, before = await sync_to_async(scrape)()

    communicator = WebsocketCommunicator(application, f"/ws/{thread.pk}/{user.pk}/?token={token}")
    connected, _ = await communicator.connect()
    assert connected
    _, during = await sync_to_async(scrape)()
    await communicator.disconnect()
    _, after = await sync_to_async(scrape)()

    def delta(samples, name):
        return value(samples, name) - value(before, name)

    assert delta(during, "chat_websocket_connections_open") == 1
    assert delta(after, "chat_websocket_connections_open") == 0
    assert delta(after, "chat_websocket_connections_total") == 1


# --- Who may read it ----------------------------------------------------------------------------


@pytest.fixture
def people(db):
    staff = make_user("root", is_staff=True)
    person = make_user("erin")
    return {
        "staff": staff,
        "person": person,
        "staff_token": Token.objects.create(user=staff).key,
        "person_token": Token.objects.create(user=person).key,
    }


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    ("who", "allowed"),
    [
        ("anonymous", False),
        ("person session", False),
        ("person token", False),
        ("wrong api token", False),
        ("staff session", True),
        ("staff token", True),
        ("metrics token", True),
        ("wrong metrics token", False),
        ("metrics token as api token", False),
        ("staff session with a wrong bearer", False),
    ],
)
def test_only_staff_and_the_metrics_token_get_numbers(people, who, allowed):
    MetricTotal.objects.create(name="chat_replies_total", labels='{"model":"offline","status":"complete"}', value=5)
    client, headers = Client(), {}
    if who.startswith("person session"):
        client = signed_in(people["person"])
    elif who.startswith("staff session"):
        client = signed_in(people["staff"])
    if who == "person token":
        headers["HTTP_AUTHORIZATION"] = f"Token {people['person_token']}"
    elif who == "staff token":
        headers["HTTP_AUTHORIZATION"] = f"Token {people['staff_token']}"
    elif who == "wrong api token":
        headers["HTTP_AUTHORIZATION"] = "Token 0123456789abcdef0123456789abcdef01234567"
    elif who == "metrics token":
        headers["HTTP_AUTHORIZATION"] = f"Bearer {METRICS_TOKEN}"
    elif who in ("wrong metrics token", "staff session with a wrong bearer"):
        headers["HTTP_AUTHORIZATION"] = f"Bearer {METRICS_TOKEN}x"
    elif who == "metrics token as api token":
        headers["HTTP_AUTHORIZATION"] = f"Token {METRICS_TOKEN}"

    response = client.get("/metrics", **headers)

    if allowed:
        assert response.status_code == 200
        _, samples = parse(response.content.decode())
        assert value(samples, "chat_replies_total", model="offline", status="complete") == 5
    else:
        assert response.status_code == 403
        assert b"chat_" not in response.content and b"#" not in response.content


def test_with_no_metrics_token_set_no_bearer_is_accepted(people, settings):
    settings.METRICS_TOKEN = ""
    for header in ("Bearer ", "Bearer", f"Bearer {METRICS_TOKEN}"):
        assert Client().get("/metrics", HTTP_AUTHORIZATION=header).status_code == 403
    assert Client().get("/metrics", HTTP_AUTHORIZATION=f"Token {people['staff_token']}").status_code == 200


def test_the_bearer_scheme_is_case_insensitive_and_only_get_and_head_are_served(people):
    assert Client().get("/metrics", HTTP_AUTHORIZATION=f"bearer {METRICS_TOKEN}").status_code == 200
    assert Client().head("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}").status_code == 200
    assert Client().post("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}").status_code == 405


def test_the_token_is_never_logged(people, caplog):
    caplog.set_level(logging.DEBUG)
    Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}")
    Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}-wrong")
    assert "GET /metrics" in caplog.text
    assert METRICS_TOKEN not in caplog.text


def test_the_token_is_a_known_secret_for_the_log_redaction():
    from chatproject.logs import _known_secrets

    assert METRICS_TOKEN in _known_secrets()

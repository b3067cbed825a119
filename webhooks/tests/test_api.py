"""The webhooks REST API and incoming webhooks."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook as StandardWebhook

from messaging.models import ChatMessage
from threads.tests.factories import make_thread
from webhooks.incoming.github import github_signature_valid
from webhooks.models import Webhook, WebhookDelivery, WebhookEvent
from webhooks.services import deliveries_run_due


@pytest.fixture(autouse=True)
def _public_example_urls(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = False
    settings.DEBUG = False


URL = "https://93.184.215.14/hooks/chat"


def create(api, **fields):
    return api.post("/api/webhooks/", {"url": URL, "events": ["*"], **fields}, format="json")


@pytest.mark.django_db
def test_create_shows_the_secret_once_then_never(api):
    response = create(api, description="CI", events=["thread.created", "reply.completed"])
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["secret"].startswith("whsec_") and len(body["secret"]) == 6 + 44
    assert body["events"] == ["thread.created", "reply.completed"] and body["active"] is True
    detail = api.get(f"/api/webhooks/{body['id']}/").json()
    assert "secret" not in detail and detail["description"] == "CI"
    assert all("secret" not in row for row in api.get("/api/webhooks/").json()["results"])
    rotated = api.post(f"/api/webhooks/{body['id']}/rotate-secret/").json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != body["secret"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "field", "text"),
    [
        ({"url": "https://127.0.0.1/x"}, "url", "loopback"),
        ({"url": "https://169.254.169.254/latest"}, "url", "link-local"),
        ({"url": "http://93.184.215.14/x"}, "url", "https://"),
        ({"events": []}, "events", "may not be empty"),
        ({"events": ["nope"]}, "events", '\\"nope\\" is not a valid choice'),
        ({"events": "thread.created"}, "events", "Expected a list"),
        ({"events": None}, "events", "may not be null"),
        ({"description": "x" * 201}, "description", "200"),
    ],
)
def test_create_refuses_bad_input_with_a_clear_error(api, fields, field, text):
    response = create(api, **fields)
    assert response.status_code == 400
    assert text in json.dumps(response.json()[field])
    assert not Webhook.objects.exists()


@pytest.mark.django_db
def test_another_users_webhooks_and_deliveries_are_not_found(api, other_api):
    webhook_id = create(api).json()["id"]
    delivery = api.post(f"/api/webhooks/{webhook_id}/test/").json()
    for method, path in [
        ("get", f"/api/webhooks/{webhook_id}/"),
        ("patch", f"/api/webhooks/{webhook_id}/"),
        ("delete", f"/api/webhooks/{webhook_id}/"),
        ("post", f"/api/webhooks/{webhook_id}/rotate-secret/"),
        ("post", f"/api/webhooks/{webhook_id}/test/"),
        ("get", f"/api/webhooks/{webhook_id}/deliveries/"),
        ("post", f"/api/webhooks/deliveries/{delivery['id']}/redeliver/"),
        ("get", "/api/webhooks/not-a-uuid/"),
    ]:
        response = getattr(other_api, method)(path, {}, format="json")
        assert response.status_code == 404, (method, path)
    assert other_api.get("/api/webhooks/").json()["results"] == []
    assert Webhook.objects.filter(pk=webhook_id).exists()


@pytest.mark.django_db
def test_update_disable_and_enable_clears_the_reason(api):
    webhook_id = create(api).json()["id"]
    Webhook.objects.filter(pk=webhook_id).update(active=False, disabled_reason="The endpoint answered 410 Gone.")
    assert api.get(f"/api/webhooks/{webhook_id}/").json()["disabled_reason"].startswith("The endpoint")
    body = api.patch(f"/api/webhooks/{webhook_id}/", {"active": True, "events": ["thread.deleted"]}, format="json")
    assert body.status_code == 200
    assert body.json()["active"] is True and body.json()["disabled_reason"] == ""
    assert body.json()["events"] == ["thread.deleted"]
    assert api.delete(f"/api/webhooks/{webhook_id}/").status_code == 204
    assert not Webhook.objects.exists()


@pytest.mark.django_db
def test_deliveries_newest_first_with_bounded_queries(api, django_assert_max_num_queries):
    webhook_id = create(api).json()["id"]
    for _ in range(5):
        api.post(f"/api/webhooks/{webhook_id}/test/")
    with django_assert_max_num_queries(4):
        response = api.get(f"/api/webhooks/{webhook_id}/deliveries/")
    rows = response.json()["results"]
    assert len(rows) == 5
    assert rows[0]["event_type"] == "webhook.test" and rows[0]["event_id"].startswith("msg_")
    assert set(rows[0]) >= {"attempt", "status_code", "duration_ms", "response_excerpt", "error", "next_attempt_at"}
    created = [row["created_at"] for row in rows]
    assert created == sorted(created, reverse=True)


@pytest.mark.django_db
def test_redeliver_keeps_the_event_id(api):
    webhook_id = create(api).json()["id"]
    first = api.post(f"/api/webhooks/{webhook_id}/test/").json()
    again = api.post(f"/api/webhooks/deliveries/{first['id']}/redeliver/")
    assert again.status_code == 202
    assert again.json()["event_id"] == first["event_id"] and again.json()["id"] != first["id"]
    assert WebhookEvent.objects.count() == 1 and WebhookDelivery.objects.count() == 2


@pytest.mark.django_db
def test_redeliver_to_a_disabled_endpoint_is_refused_clearly(api):
    webhook_id = create(api).json()["id"]
    first = api.post(f"/api/webhooks/{webhook_id}/test/").json()
    api.patch(f"/api/webhooks/{webhook_id}/", {"active": False}, format="json")
    refused = api.post(f"/api/webhooks/deliveries/{first['id']}/redeliver/")
    assert refused.status_code == 409 and refused.json()["code"] == "conflict"
    assert "disabled" in refused.json()["detail"]
    assert WebhookDelivery.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(("url", "text"), [("https://10.0.0.5/x", "private"), ("http://93.184.215.14/x", "https://")])
def test_changing_the_url_is_checked_like_creating(api, url, text):
    webhook_id = create(api).json()["id"]
    response = api.patch(f"/api/webhooks/{webhook_id}/", {"url": url}, format="json")
    assert response.status_code == 400 and text in response.json()["url"][0]
    assert Webhook.objects.get(pk=webhook_id).url == URL


@pytest.mark.django_db
def test_event_types_are_listed(api):
    types = [row["type"] for row in api.get("/api/webhooks/event-types/").json()]
    assert "export.completed" in types and "reply.failed" in types


# --- Incoming ------------------------------------------------------------------------------------


def incoming(api, thread, kind="generic"):
    response = api.post("/api/webhooks/incoming/", {"thread": str(thread.pk), "kind": kind}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def signed_post(anon_api, endpoint, payload, *, msg_id=None, secret=None, at=None):
    body = json.dumps(payload)
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    at = at or datetime.now(tz=UTC)
    signature = StandardWebhook(secret or endpoint["secret"]).sign(msg_id, at, body)
    return anon_api.generic(
        "POST",
        endpoint["url"],
        body,
        content_type="application/json",
        HTTP_WEBHOOK_ID=msg_id,
        HTTP_WEBHOOK_TIMESTAMP=str(int(at.timestamp())),
        HTTP_WEBHOOK_SIGNATURE=signature,
    )


@pytest.fixture
def replies_asked():
    """The user messages the agent is told to answer (``user_message_posted``)."""
    from messaging.signals import user_message_posted

    asked: list = []

    def record(sender, *, message_id, **kwargs):
        asked.append(message_id)

    user_message_posted.connect(record)
    yield asked
    user_message_posted.disconnect(record)


@pytest.mark.django_db
def test_a_signed_request_posts_a_message_and_the_agent_replies(
    api, anon_api, user, django_capture_on_commit_callbacks, replies_asked
):
    thread = make_thread(owner=user)
    endpoint = incoming(api, thread)
    assert endpoint["url"] == f"/api/webhooks/incoming/{endpoint['id']}/" and endpoint["secret"].startswith("whsec_")
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_post(anon_api, endpoint, {"content": "Build 42 failed", "metadata": {"build": 42}})
    assert response.status_code == 202, response.json()
    message = ChatMessage.objects.get(pk=response.json()["message"])
    assert (message.thread, message.sender, message.role, message.content) == (thread, user, "user", "Build 42 failed")
    assert message.metadata["build"] == 42
    assert replies_asked == [message.pk]  # the agent is asked to reply


@pytest.mark.django_db
def test_reply_false_stores_the_message_without_a_reply(
    api, anon_api, user, django_capture_on_commit_callbacks, replies_asked
):
    thread = make_thread(owner=user)
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_post(anon_api, incoming(api, thread), {"content": "FYI", "reply": False})
    assert response.status_code == 202
    assert list(ChatMessage.objects.filter(thread=thread).values_list("role", flat=True)) == ["user"]
    assert replies_asked == []


@pytest.mark.django_db
def test_the_same_webhook_id_twice_stores_one_message(api, anon_api, user):
    thread = make_thread(owner=user)
    endpoint = incoming(api, thread)
    first = signed_post(anon_api, endpoint, {"content": "once", "reply": False}, msg_id="msg_same")
    second = signed_post(anon_api, endpoint, {"content": "once", "reply": False}, msg_id="msg_same")
    assert first.status_code == second.status_code == 202
    assert first.json()["message"] == second.json()["message"] and second.json()["created"] is False
    assert ChatMessage.objects.filter(thread=thread).count() == 1


@pytest.mark.django_db
def test_bad_missing_or_stale_signatures_and_unknown_ids_store_nothing(api, anon_api, user):
    thread = make_thread(owner=user)
    endpoint = incoming(api, thread)
    other_secret = "whsec_" + "A" * 43 + "="
    cases = [
        signed_post(anon_api, endpoint, {"content": "x"}, secret=other_secret),
        signed_post(anon_api, endpoint, {"content": "x"}, at=datetime.fromtimestamp(time.time() - 301, tz=UTC)),
        signed_post(anon_api, endpoint, {"content": "x"}, at=datetime.fromtimestamp(time.time() + 301, tz=UTC)),
        anon_api.post(endpoint["url"], {"content": "x"}, format="json"),
    ]
    for response in cases:
        assert response.status_code == 401
        assert response.json()["code"] == "invalid_signature"
    unknown = {**endpoint, "url": f"/api/webhooks/incoming/{uuid.uuid4()}/"}
    assert signed_post(anon_api, unknown, {"content": "x"}).status_code == 404
    assert (
        signed_post(anon_api, {**endpoint, "url": "/api/webhooks/incoming/nope/"}, {"content": "x"}).status_code == 404
    )
    # A valid signature over a body that is not what the handler needs: 400, nothing stored.
    bad_body = signed_post(anon_api, endpoint, {"content": 5})
    assert bad_body.status_code == 400 and "content" in bad_body.json()
    assert not ChatMessage.objects.filter(thread=thread).exists()


@pytest.mark.django_db
def test_incoming_endpoints_are_isolated_between_users(api, other_api, user, other_user):
    mine = make_thread(owner=user)
    response = other_api.post("/api/webhooks/incoming/", {"thread": str(mine.pk)}, format="json")
    assert response.status_code == 404
    endpoint = incoming(api, mine)
    assert other_api.get("/api/webhooks/incoming/").json()["results"] == []
    assert other_api.delete(endpoint["url"]).status_code == 404
    assert api.delete(endpoint["url"]).status_code == 204


@pytest.mark.django_db
def test_incoming_messages_are_rate_limited_like_other_sends(api, anon_api, user, settings):
    settings.MESSAGE_RATE_LIMIT = (2, 60)
    endpoint = incoming(api, make_thread(owner=user))
    codes = [signed_post(anon_api, endpoint, {"content": f"n{i}", "reply": False}).status_code for i in range(3)]
    assert codes == [202, 202, 429]


@pytest.mark.django_db
def test_incoming_messages_that_ask_a_reply_are_held_to_the_daily_quota(api, anon_api, user, settings):
    settings.USER_DAILY_REPLY_LIMIT = 0
    thread = make_thread(owner=user)
    endpoint = incoming(api, thread)
    refused = signed_post(anon_api, endpoint, {"content": "answer this"})
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    body = refused.json()
    assert (body["code"], body["quota"], body["limit"]) == ("quota_exceeded", "replies", 0)
    assert not ChatMessage.objects.filter(thread=thread).exists()
    # A message that asks for no reply is stored.
    assert signed_post(anon_api, endpoint, {"content": "just a note", "reply": False}).status_code == 202


def test_github_signature_matches_githubs_documented_example():
    header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert github_signature_valid(secret="It's a Secret to Everybody", body=b"Hello, World!", header=header)
    assert not github_signature_valid(secret="It's a Secret to Everybody", body=b"Hello, World?", header=header)
    assert not github_signature_valid(secret="another secret", body=b"Hello, World!", header=header)


def github_post(anon_api, endpoint, event, payload, *, delivery="d-1", secret=None):
    body = json.dumps(payload).encode()
    signature = "sha256=" + hmac.new((secret or endpoint["secret"]).encode(), body, hashlib.sha256).hexdigest()
    return anon_api.generic(
        "POST",
        endpoint["url"],
        body,
        content_type="application/json",
        HTTP_X_GITHUB_EVENT=event,
        HTTP_X_GITHUB_DELIVERY=delivery,
        HTTP_X_HUB_SIGNATURE_256=signature,
    )


@pytest.mark.django_db
def test_github_events_become_short_messages(api, anon_api, user, django_capture_on_commit_callbacks, replies_asked):
    thread = make_thread(owner=user)
    endpoint = incoming(api, thread, kind="github")
    with django_capture_on_commit_callbacks(execute=True):
        github_events(anon_api, endpoint)
    contents = list(ChatMessage.objects.filter(thread=thread).order_by("created_at").values_list("content", flat=True))
    assert contents == [
        "GitHub octo/chat: issue #7 opened: Crash\nhttps://x/7",
        "GitHub octo/chat: pull request #8 closed: Fix\nu",
        "GitHub octo/chat: mona pushed 1 commit(s) to refs/heads/main\n- One",
    ]
    assert replies_asked == []  # notifications: no reply


def github_events(anon_api, endpoint):
    repo = {"full_name": "octo/chat"}
    issue = {
        "action": "opened",
        "repository": repo,
        "issue": {"number": 7, "title": "Crash", "html_url": "https://x/7"},
    }
    assert github_post(anon_api, endpoint, "issues", issue, delivery="a").status_code == 202
    pull = {"action": "closed", "repository": repo, "pull_request": {"number": 8, "title": "Fix", "html_url": "u"}}
    assert github_post(anon_api, endpoint, "pull_request", pull, delivery="b").status_code == 202
    push = {
        "ref": "refs/heads/main",
        "repository": repo,
        "pusher": {"name": "mona"},
        "commits": [{"message": "One\nmore"}],
    }
    assert github_post(anon_api, endpoint, "push", push, delivery="c").status_code == 202
    ping = github_post(anon_api, endpoint, "ping", {"zen": "Keep it simple."}, delivery="d")
    assert ping.status_code == 202 and ping.json() == {"ignored": True}
    assert github_post(anon_api, endpoint, "push", push, delivery="e", secret="wrong").status_code == 401


@pytest.mark.django_db
def test_an_incoming_message_is_itself_an_outgoing_event(api, anon_api, user, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = True
    from agent.tests.local_http import LocalServer, Reply

    thread = make_thread(owner=user)
    endpoint = incoming(api, thread)
    with LocalServer(lambda request: Reply.json({})) as server:
        create(api, url=server.url + "/in", events=["message.created"])
        signed_post(anon_api, endpoint, {"content": "from CI", "reply": False})
        deliveries_run_due()
    (request,) = server.requests
    assert request.json()["data"]["message"]["content"] == "from CI"


@pytest.mark.django_db
def test_a_finished_export_is_sent_as_export_completed(api, user, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = True
    from webhooks.tests.test_services import Receiver

    make_thread(owner=user, title="Trip")
    with Receiver() as receiver:
        created = api.post(
            "/api/webhooks/", {"url": receiver.url + "/x", "events": ["export.completed"]}, format="json"
        ).json()
        receiver.secret = created["secret"]
        response = api.get("/api/export/?format=csv")
        b"".join(response.streaming_content)
        deliveries_run_due()
    (got,) = receiver.verified
    assert got["body"]["type"] == "export.completed"
    assert got["body"]["data"]["export"]["format"] == "csv" and got["body"]["data"]["export"]["scope"] == "all"


@pytest.mark.django_db
def test_lists_cost_a_fixed_number_of_queries(api, user, django_assert_max_num_queries):
    for _ in range(3):
        create(api)
        incoming(api, make_thread(owner=user))
    with django_assert_max_num_queries(3):  # token, count, page
        assert len(api.get("/api/webhooks/").json()["results"]) == 3
    with django_assert_max_num_queries(3):
        assert len(api.get("/api/webhooks/incoming/").json()["results"]) == 3


@pytest.mark.django_db
def test_admin_shows_deliveries_read_only_and_no_secrets(api, admin_client):
    webhook = create(api).json()
    api.post(f"/api/webhooks/{webhook['id']}/test/")
    delivery = WebhookDelivery.objects.get()
    listing = admin_client.get("/admin/webhooks/webhookdelivery/")
    assert listing.status_code == 200 and delivery.event_id in listing.content.decode()
    assert admin_client.get("/admin/webhooks/webhookdelivery/add/").status_code == 403
    page = admin_client.get(f"/admin/webhooks/webhook/{webhook['id']}/change/").content.decode()
    assert webhook["secret"] not in page and webhook["url"] in page

import uuid

import pytest
from django.urls import reverse

from messaging.models import ChatMessage
from messaging.signals import user_message_posted
from messaging.tests.factories import make_attachment, make_message
from threads.tests.factories import make_thread

pytestmark = pytest.mark.django_db


def messages_url(thread_id) -> str:
    return reverse("message-list", kwargs={"thread_id": thread_id})


def test_post_and_list_messages(api, user, django_capture_on_commit_callbacks):
    thread = make_thread(user)
    announced = []
    receiver = lambda sender, **kw: announced.append(kw["message_id"])  # noqa: E731
    user_message_posted.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = api.post(messages_url(thread.pk), {"content": "What is 15% of 240?"}, format="json")
    finally:
        user_message_posted.disconnect(receiver)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["role"] == "user" and body["sender"] == user.pk and body["thread"] == str(thread.pk)
    assert body["content"] == "What is 15% of 240?" and body["attachments"] == []
    assert announced == [uuid.UUID(body["id"])]

    # The agent's reply (run in-process in tests) answers the message.
    listing = api.get(messages_url(thread.pk)).json()["results"]
    assert [(m["role"], m["parent"]) for m in listing] == [("user", None), ("ai", body["id"])]
    assert listing[0]["id"] == body["id"]
    assert listing[1]["content"] == "15% of 240 = **36**"


def test_list_is_oldest_first_with_attachments_inline(api, user):
    thread = make_thread(user)
    first = make_message(thread, "first")
    reply = make_message(thread, "second", role="ai", parent_id=first.pk)
    attachment = make_attachment(first, "notes.txt", b"hello")
    results = api.get(messages_url(thread.pk)).json()["results"]
    assert [m["content"] for m in results] == ["first", "second"]
    assert results[1]["parent"] == str(first.pk) and results[1]["sender"] is None
    assert results[0]["attachments"] == [
        {
            "id": str(attachment.pk),
            "filename": "notes.txt",
            "url": f"/api/attachments/{attachment.pk}/download/",
            "file_type": "text/plain",
            "size": 5,
            "sha256": attachment.sha256,
            "metadata": {},
            "created_at": results[0]["attachments"][0]["created_at"],
        }
    ]
    assert results[1]["id"] == str(reply.pk) and results[1]["role"] == "ai" and results[1]["attachments"] == []


def test_last_page_holds_the_newest_messages(api, user):
    thread = make_thread(user)
    for n in range(5):
        make_message(thread, f"m{n}")
    page = api.get(messages_url(thread.pk), {"page": "last", "page_size": 2}).json()
    assert [m["content"] for m in page["results"]] == ["m4"]


@pytest.mark.parametrize("page_size", [1, 10, 200])
def test_listing_costs_the_same_queries_whatever_the_page_size(
    api, user, page_size, django_assert_max_num_queries, django_assert_num_queries
):
    thread = make_thread(user)
    for n in range(12):
        make_attachment(make_message(thread, f"m{n}"), f"f{n}.txt")
    # token lookup, thread, count, page, attachments, children counts, siblings
    with django_assert_num_queries(7):
        response = api.get(messages_url(thread.pk), {"page_size": page_size})
    assert len(response.json()["results"]) == min(page_size, 12)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"content": ""}, "content"),
        ({"content": "   "}, "content"),
        ({}, "content"),
        ({"content": "x" * 33}, "content"),
        ({"content": "ok", "metadata": ["x"]}, "metadata"),
        ({"content": "ok", "parent": "not-a-uuid"}, "parent"),
    ],
)
def test_post_validation_names_the_field_and_stores_nothing(api, user, settings, payload, field):
    settings.MAX_MESSAGE_CHARS = 32
    thread = make_thread(user)
    response = api.post(messages_url(thread.pk), payload, format="json")
    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert ChatMessage.objects.count() == 0


def test_a_parent_that_names_no_message_of_the_thread_is_404(api, user, other_user):
    thread = make_thread(user)
    elsewhere = make_message(make_thread(other_user), "someone else's")
    for parent in (str(uuid.uuid4()), str(elsewhere.pk)):
        response = api.post(messages_url(thread.pk), {"content": "ok", "parent": parent}, format="json")
        assert (response.status_code, response.json()["detail"]) == (404, "Parent message not found in this thread.")
    assert ChatMessage.objects.filter(thread=thread).count() == 0


def test_default_message_limit_is_32000(api, user):
    thread = make_thread(user)
    assert api.post(messages_url(thread.pk), {"content": "x" * 32000}, format="json").status_code == 201
    response = api.post(messages_url(thread.pk), {"content": "x" * 32001}, format="json")
    assert response.status_code == 400 and "32000" in response.json()["content"][0]


@pytest.mark.parametrize("method", ["get", "post"])
def test_other_users_thread_is_404(api, other_user, method):
    theirs = make_thread(other_user)
    make_message(theirs, "private")
    response = getattr(api, method)(messages_url(theirs.pk), {"content": "hi"}, format="json")
    assert response.status_code == 404
    assert ChatMessage.objects.filter(thread=theirs).count() == 1


def test_deleted_thread_messages_are_gone(api, user):
    thread = make_thread(user, status="deleted")
    assert api.get(messages_url(thread.pk)).status_code == 404
    assert api.post(messages_url(thread.pk), {"content": "x"}, format="json").status_code == 404


def test_malformed_thread_id_is_404(api):
    assert api.get(messages_url("nope")).status_code == 404


def test_attachment_download_is_owner_only(api, other_api, user):
    attachment = make_attachment(make_message(make_thread(user)), "report.csv", b"a,b\n1,2\n")
    url = attachment.url
    response = api.get(url)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"a,b\n1,2\n"
    assert 'attachment; filename="report.csv"' in response["Content-Disposition"]
    assert other_api.get(url).status_code == 404
    assert api.get("/api/attachments/garbage/download/").status_code == 404


def test_browsable_api_renders_messages(client, user):
    client.force_login(user)
    thread = make_thread(user)
    make_message(thread, "shown in html")
    response = client.get(messages_url(thread.pk), HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert b"shown in html" in response.content


def test_resending_a_client_id_returns_the_stored_message(api, user):
    thread = make_thread(user)
    first = api.post(messages_url(thread.pk), {"content": "once", "client_id": "k1"}, format="json")
    again = api.post(messages_url(thread.pk), {"content": "once", "client_id": "k1"}, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert thread.messages.filter(role="user").count() == 1


def test_rate_limit_answers_429_with_retry_after(api, user, settings):
    from django.core.cache import cache

    cache.clear()
    settings.MESSAGE_RATE_LIMIT = (2, 60)
    thread = make_thread(user)
    for number in range(2):
        assert api.post(messages_url(thread.pk), {"content": f"m{number}"}, format="json").status_code == 201
    refused = api.post(messages_url(thread.pk), {"content": "too many"}, format="json")
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert "Too many messages" in refused.json()["detail"]
    assert thread.messages.filter(role="user").count() == 2

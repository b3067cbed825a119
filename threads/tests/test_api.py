import uuid

import pytest
from django.urls import reverse

from threads.models import ChatThread
from threads.tests.factories import make_thread

pytestmark = pytest.mark.django_db

LIST = reverse("thread-list")


def detail(thread_id) -> str:
    return reverse("thread-detail", kwargs={"thread_id": thread_id})


def test_anonymous_is_refused(anon_api):
    response = anon_api.get(LIST)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


def test_create_then_list(api, user):
    response = api.post(LIST, {"title": "Trip", "metadata": {"color": "blue"}}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["title"] == "Trip" and body["status"] == "active" and body["metadata"] == {"color": "blue"}
    assert ChatThread.objects.get(pk=body["id"]).owner == user

    listing = api.get(LIST).json()
    assert listing["count"] == 1
    assert [t["id"] for t in listing["results"]] == [body["id"]]


def test_create_with_empty_body_makes_untitled_thread(api):
    response = api.post(LIST, {}, format="json")
    assert response.status_code == 201
    assert response.json()["title"] == ""


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"title": "x" * 201}, "title"),
        ({"metadata": [1, 2]}, "metadata"),
        ({"metadata": "a string"}, "metadata"),
        ({"title": ["a", "list"]}, "title"),
    ],
)
def test_create_validation_names_the_field(api, payload, field):
    response = api.post(LIST, payload, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert ChatThread.objects.count() == 0


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"metadata": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": 1}}}}}}}}}}, "deeper than 8"),
        ({"metadata": {"pad": "x" * 20_000}}, "at most 16384 bytes"),
        ({"summary": "s" * 4001}, "no more than 4000 characters"),
        ({"title": "t" * 201}, "no more than 200 characters"),
    ],
)
def test_limits_answer_400_naming_the_field_and_change_nothing(api, user, payload, message):
    response = api.post(LIST, payload, format="json")
    if "summary" not in payload:  # summary is set by PATCH only
        assert response.status_code == 400 and message in response.json()[next(iter(payload))][0]
        assert ChatThread.objects.count() == 0
    thread = make_thread(user, title="Same")
    response = api.patch(detail(thread.pk), payload, format="json")
    assert response.status_code == 400
    [(field, [error])] = response.json().items()
    assert field == next(iter(payload)) and message in error
    thread.refresh_from_db()
    assert (thread.title, thread.summary, thread.metadata) == ("Same", "", {})


def test_json_nested_past_what_python_can_parse_is_400_not_500(api):
    response = api.post(LIST, "[" * 100_000 + "]" * 100_000, content_type="application/json")
    assert response.status_code == 400 and "nested deeper than 64" in response.json()["detail"]
    body = '{"metadata": ' + '{"a": ' * 500 + "1" + "}" * 500 + "}"
    response = api.post(LIST, body, content_type="application/json")
    assert response.status_code == 400 and "nested deeper than 64" in response.json()["detail"]
    assert ChatThread.objects.count() == 0


@pytest.mark.parametrize("content_type", ["multipart/form-data; boundary=x", "application/x-www-form-urlencoded"])
def test_form_bodies_are_refused_with_415(api, content_type):
    """Forms cannot say a value is a number, an object or missing: the API takes JSON only."""
    response = api.generic("POST", LIST, "title=x", content_type=content_type)
    assert response.status_code == 415 and "Unsupported media type" in response.json()["detail"]
    assert ChatThread.objects.count() == 0


@pytest.mark.parametrize("body", [{"title": 0}, {"title": ["a"]}, {"metadata": 0}, {"metadata": "{}"}])
def test_values_of_the_wrong_json_type_are_400(api, body):
    response = api.post(LIST, body, format="json")
    assert response.status_code == 400 and set(response.json()) == set(body)
    assert ChatThread.objects.count() == 0


def test_malformed_json_is_a_clear_400(api):
    response = api.post(LIST, "{not json", content_type="application/json")
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]


def test_list_filters_search_and_paginates(api, user):
    for n in range(5):
        make_thread(user, title=f"Trip {n}")
    make_thread(user, title="Archived trip", status="archived")
    make_thread(user, title="Deleted trip", status="deleted")

    assert api.get(LIST, {"status": "archived"}).json()["count"] == 1
    assert api.get(LIST, {"status": "active"}).json()["count"] == 5
    assert api.get(LIST, {"search": "archived"}).json()["count"] == 1
    assert api.get(LIST).json()["count"] == 6

    page = api.get(LIST, {"page_size": 2, "page": 2}).json()
    assert page["count"] == 6 and len(page["results"]) == 2 and page["next"] and page["previous"]
    titles = [t["title"] for t in api.get(LIST, {"page_size": 100}).json()["results"]]
    assert titles == ["Archived trip", "Trip 4", "Trip 3", "Trip 2", "Trip 1", "Trip 0"]


@pytest.mark.parametrize("status", ["deleted", "unknown"])
def test_list_unknown_status_filter_is_400(api, status):
    response = api.get(LIST, {"status": status})
    assert response.status_code == 400
    assert "status" in response.json()


def test_list_page_out_of_range_is_404(api, user):
    make_thread(user)
    assert api.get(LIST, {"page": 9}).status_code == 404


def test_list_shows_only_my_threads(api, other_api, user, other_user):
    mine = make_thread(user)
    make_thread(other_user)
    assert [t["id"] for t in api.get(LIST).json()["results"]] == [str(mine.pk)]


def test_get_patch_delete(api, user):
    thread = make_thread(user, title="Before")
    assert api.get(detail(thread.pk)).json()["title"] == "Before"

    response = api.patch(detail(thread.pk), {"title": "After", "status": "archived"}, format="json")
    assert response.status_code == 200
    assert response.json()["title"] == "After" and response.json()["status"] == "archived"

    assert api.delete(detail(thread.pk)).status_code == 204
    assert ChatThread.objects.get(pk=thread.pk).status == "deleted"
    assert api.get(detail(thread.pk)).status_code == 404
    assert api.get(LIST).json()["count"] == 0


@pytest.mark.parametrize(
    ("payload", "field"),
    [({"status": "deleted"}, "status"), ({"status": "nope"}, "status"), ({"metadata": 3}, "metadata")],
)
def test_patch_validation_names_the_field_and_changes_nothing(api, user, payload, field):
    thread = make_thread(user, title="Same")
    response = api.patch(detail(thread.pk), payload, format="json")
    assert response.status_code == 400
    assert field in response.json()
    thread.refresh_from_db()
    assert (thread.title, thread.status, thread.metadata) == ("Same", "active", {})


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_other_users_thread_is_404_not_403(api, other_user, method):
    theirs = make_thread(other_user, title="Secret")
    response = getattr(api, method)(detail(theirs.pk), {"title": "pwned"}, format="json")
    assert response.status_code == 404
    assert response.json() == {"detail": "Thread not found."}
    theirs.refresh_from_db()
    assert (theirs.title, theirs.status) == ("Secret", "active")


@pytest.mark.parametrize("thread_id", ["not-a-uuid", "123", str(uuid.uuid4())])
def test_malformed_or_unknown_id_is_json_404(api, thread_id):
    response = api.get(detail(thread_id))
    assert response.status_code == 404
    assert response.json() == {"detail": "Thread not found."}


def test_session_auth_works_for_browsable_api(client, user):
    client.force_login(user)
    make_thread(user, title="Seen in the browser")
    response = client.get(LIST, HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert b"Seen in the browser" in response.content
    assert b"Thread List" in response.content


def test_session_auth_requires_csrf_for_writes(user):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post(LIST, {"title": "x"}, content_type="application/json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


def test_null_characters_in_metadata_are_stored_as_replacement_characters_on_every_database(api):
    """PostgreSQL's jsonb refuses \\u0000 (the insert raised DataError: a 500 found by schemathesis)."""
    body = '{"metadata": {"k": "a\\u0000b", "a\\u0000": [1, "\\u0000"]}}'
    response = api.generic("POST", LIST, body, content_type="application/json")
    assert response.status_code == 201, response.json()
    stored = ChatThread.objects.get().metadata
    assert stored == response.json()["metadata"] == {"k": "a\ufffdb", "a\ufffd": [1, "\ufffd"]}

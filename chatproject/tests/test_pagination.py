import base64
import json
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from messaging.models import ChatMessage
from messaging.tests.factories import make_attachment, make_message
from threads.tests.factories import make_thread

pytestmark = pytest.mark.django_db

LIST = "/api/threads/"


@pytest.mark.parametrize(
    ("query", "status", "field"),
    [
        ({"page_size": "0"}, 400, "page_size"),
        ({"page_size": "201"}, 400, "page_size"),
        ({"page_size": "ten"}, 400, "page_size"),
        ({"page_size": ""}, 400, "page_size"),
        ("page_size=5&page_size=6", 400, "page_size"),
        ("page=1&page=2", 400, "page"),
        ({"page": ""}, 404, "detail"),
        ({"page": "0"}, 404, "detail"),
        ({"page": "2"}, 404, "detail"),
    ],
)
def test_bad_paging_parameters_are_refused_by_name(api, query, status, field):
    url = f"{LIST}?{query}" if isinstance(query, str) else LIST
    response = api.get(url, query if isinstance(query, dict) else None)
    assert response.status_code == status and field in response.json()


def test_page_size_and_last_page_are_honoured(api, user):
    for n in range(5):
        make_thread(user, title=f"t{n}")
    page = api.get(LIST, {"page_size": 2, "page": "last"}).json()
    assert page["count"] == 5 and len(page["results"]) == 1


# --- Cursor (keyset) pages: chatproject.pagination.CursorOrPagePagination ----------------------


def messages_url(thread) -> str:
    return f"/api/threads/{thread.pk}/messages/"


def in_order(thread) -> list[str]:
    ids = ChatMessage.objects.filter(thread=thread).order_by("created_at", "id").values_list("pk", flat=True)
    return [str(pk) for pk in ids]


def walk(api, url, params, link: str) -> list[list[str]]:
    """Every page from ``url`` following ``link`` (next or previous) until it is null: ids per page."""
    pages = []
    body = api.get(url, params).json()
    while True:
        pages.append([item["id"] for item in body["results"]])
        if body[link] is None:
            return pages
        body = api.get(body[link]).json()


def cursor_of(link: str) -> str:
    return parse_qs(urlsplit(link).query)["cursor"][0]


def test_cursor_pages_walk_every_message_once_while_new_ones_arrive(api, user):
    thread = make_thread(user)
    for n in range(7):
        make_message(thread, f"m{n}")
    seen: list[str] = []
    body = api.get(messages_url(thread), {"cursor": "first", "page_size": 3}).json()
    assert set(body) == {"next", "previous", "results"} and body["previous"] is None
    added = 0
    while True:
        seen += [item["id"] for item in body["results"]]
        if body["next"] is None:
            break
        make_message(thread, f"new{added}")  # a message arrives between two page reads
        added += 1
        body = api.get(body["next"]).json()
    assert seen == in_order(thread)  # no duplicate, no gap, in order: the new ones too
    assert added >= 2 and len(seen) == 7 + added


def test_cursor_pages_order_ties_on_equal_times_by_id_both_ways(api, user):
    thread = make_thread(user)
    for n in range(9):
        make_message(thread, f"m{n}")
    # Six messages stored in the same microsecond (a bulk insert can do that): the id decides.
    same = timezone.now() - timedelta(hours=1)
    ids = in_order(thread)
    ChatMessage.objects.filter(pk__in=ids[1:7]).update(created_at=same)
    ChatMessage.objects.filter(pk=ids[0]).update(created_at=same - timedelta(seconds=1))
    expected = in_order(thread)
    assert expected != ids  # the tie really reordered them
    forwards = walk(api, messages_url(thread), {"cursor": "first", "page_size": 2}, "next")
    assert [pk for page in forwards for pk in page] == expected
    assert all(len(page) == 2 for page in forwards[:-1])
    backwards = walk(api, messages_url(thread), {"cursor": "last", "page_size": 2}, "previous")
    assert [pk for page in reversed(backwards) for pk in page] == expected
    assert backwards[0] == expected[-2:]  # the newest page, oldest first within it


def test_cursor_links_lead_back_and_forth(api, user):
    thread = make_thread(user)
    for n in range(6):
        make_message(thread, f"m{n}")
    expected = in_order(thread)
    first = api.get(messages_url(thread), {"cursor": "first", "page_size": 2}).json()
    second = api.get(first["next"]).json()
    assert [m["id"] for m in second["results"]] == expected[2:4]
    back = api.get(second["previous"]).json()
    assert [m["id"] for m in back["results"]] == expected[:2] and back["previous"] is None
    newest = api.get(messages_url(thread), {"cursor": "last", "page_size": 2}).json()
    assert [m["id"] for m in newest["results"]] == expected[4:] and newest["next"] is None
    assert "page_size=2" in newest["previous"]


def test_thread_list_cursor_sees_each_thread_once_though_one_moves_to_the_top(api, user):
    threads = [make_thread(user, title=f"t{n}") for n in range(7)]
    make_thread(user, title="gone", status="deleted")
    first = api.get("/api/threads/", {"cursor": "first", "page_size": 3}).json()
    seen = [t["title"] for t in first["results"]]
    assert seen == ["t6", "t5", "t4"]
    # An older thread gets a message: it is now the most recent, ahead of the cursor.
    make_message(threads[0], "bump")
    body = api.get(first["next"]).json()
    while True:
        seen += [t["title"] for t in body["results"]]
        if body["next"] is None:
            break
        body = api.get(body["next"]).json()
    assert seen == ["t6", "t5", "t4", "t3", "t2", "t1"]  # t0 moved to the top: not seen twice
    assert api.get("/api/threads/", {"cursor": "first"}).json()["results"][0]["title"] == "t0"
    archived = api.get("/api/threads/", {"cursor": "first", "status": "archived"}).json()
    assert archived["results"] == []


def _token(*items) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(items)).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "query",
    [
        {"cursor": ""},
        {"cursor": "next"},
        {"cursor": "!!!"},
        {"cursor": "x" * 401},
        {"cursor": _token("n", "2026-01-01T00:00:00+00:00")},  # a field short
        {"cursor": _token("x", "2026-01-01T00:00:00+00:00", "8c0e7a52-51f4-4c8e-b7a4-0d3f2a9e6b21")},
        {"cursor": _token("n", "2026-01-01T00:00:00", "8c0e7a52-51f4-4c8e-b7a4-0d3f2a9e6b21")},  # no offset
        {"cursor": _token("n", "yesterday", "8c0e7a52-51f4-4c8e-b7a4-0d3f2a9e6b21")},
        {"cursor": _token("n", "2026-01-01T00:00:00+00:00", "not-a-uuid")},
        {"cursor": _token("n", "2026-01-01T00:00:00+00:00", 7)},
        {"cursor": _token("n", "2026-01-01T00:00:00+00:00", None)},
        {"cursor": base64.urlsafe_b64encode(b'{"n": 1}').decode()},
    ],
)
def test_a_cursor_we_did_not_give_out_is_a_400_naming_it(api, user, query):
    thread = make_thread(user)
    make_message(thread, "hello")
    for url in (messages_url(thread), "/api/threads/"):
        response = api.get(url, query)
        assert response.status_code == 400, (url, query, response.content)
        assert response.json() == {
            "cursor": ["Not a cursor of this list: use first, last, or a cursor from a page's next or previous link."]
        }


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("cursor=first&page=2", "Give either cursor or page, not both."),
        ("cursor=first&cursor=last", "Give this parameter once."),
        ("cursor=last&path=active", "This list is paged by page number only."),
    ],
)
def test_cursor_conflicts_are_a_400_naming_it(api, user, query, message):
    thread = make_thread(user)
    make_message(thread, "hello")
    response = api.get(f"{messages_url(thread)}?{query}")
    assert response.status_code == 400 and response.json() == {"cursor": [message]}


def test_a_cursor_reads_only_your_own_thread(api, other_user):
    theirs = make_thread(other_user)
    make_message(theirs, "secret")
    assert api.get(messages_url(theirs), {"cursor": "first"}).status_code == 404
    # A cursor taken from their thread's position shows nothing of theirs on mine.
    mine = api.get("/api/threads/", {"cursor": "first"}).json()
    assert mine["results"] == []


@pytest.mark.parametrize("page_size", [1, 10, 200])
def test_cursor_pages_cost_the_same_queries_whatever_the_page_size(api, user, page_size, django_assert_num_queries):
    thread = make_thread(user)
    for n in range(12):
        make_attachment(make_message(thread, f"m{n}"), f"f{n}.txt")
    # token, thread, page (no count), attachments, children counts, siblings
    with django_assert_num_queries(6):
        body = api.get(messages_url(thread), {"cursor": "first", "page_size": page_size}).json()
    assert len(body["results"]) == min(page_size, 12)
    if body["next"]:
        with django_assert_num_queries(6):
            api.get(body["next"])
    with django_assert_num_queries(6):
        api.get(messages_url(thread), {"cursor": "last", "page_size": page_size})
    for n in range(page_size):
        make_thread(user, title=f"t{n}")
    with django_assert_num_queries(2):  # token, page
        assert (
            len(api.get("/api/threads/", {"cursor": "first", "page_size": page_size}).json()["results"])
            == min(page_size, 50)
            or page_size > 50
        )


def test_a_cursor_page_is_a_keyset_read_without_count_or_offset(api, user):
    thread = make_thread(user)
    for n in range(5):
        make_message(thread, f"m{n}")
    first = api.get(messages_url(thread), {"cursor": "first", "page_size": 2}).json()
    with CaptureQueriesContext(connection) as queries:
        api.get(first["next"])
    page_sql = [q["sql"] for q in queries if "ORDER BY" in q["sql"] and '"content"' in q["sql"]]
    assert len(page_sql) == 1 and "OFFSET" not in page_sql[0] and "COUNT(*)" not in " ".join(q["sql"] for q in queries)
    assert '"created_at" >' in page_sql[0]
    # The token is opaque to clients, but it is the position of the page's last row.
    kind, _created, pk = json.loads(base64.urlsafe_b64decode(cursor_of(first["next"]) + "=="))
    assert (kind, pk) == ("n", first["results"][-1]["id"])


def test_later_page_numbers_are_read_from_the_end_and_match_the_order(api, user):
    thread = make_thread(user)
    for n in range(7):
        make_message(thread, f"m{n}")
    expected = in_order(thread)
    pages = [api.get(messages_url(thread), {"page": n, "page_size": 2}).json() for n in (1, 2, 3, 4)]
    assert [m["id"] for page in pages for m in page["results"]] == expected
    with CaptureQueriesContext(connection) as queries:
        last = api.get(messages_url(thread), {"page": "last", "page_size": 2}).json()
    assert [m["id"] for m in last["results"]] == expected[6:] and last["count"] == 7
    page_sql = next(q["sql"] for q in queries if '"content"' in q["sql"] and "ORDER BY" in q["sql"])
    assert "DESC" in page_sql and "OFFSET" not in page_sql


def test_schema_documents_the_cursor_on_both_lists(client):
    import yaml

    schema = yaml.safe_load(client.get("/api/schema/").content)
    for path in ("/api/threads/", "/api/threads/{thread_id}/messages/"):
        operation = schema["paths"][path]["get"]
        params = {p["name"]: p for p in operation["parameters"]}
        assert "first" in params["cursor"]["description"] and params["cursor"]["schema"]["type"] == "string"
        assert "400" in operation["responses"]
    page = schema["components"]["schemas"]["PaginatedMessageList"]
    assert page["required"] == ["next", "previous", "results"]

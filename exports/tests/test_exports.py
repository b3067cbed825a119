import csv
import io
import json
import zipfile
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import jsonschema
import pytest
from django.conf import settings

from exports.signals import export_completed
from messaging.tests.factories import make_attachment, make_message
from threads.models import ChatThread
from threads.tests.factories import make_thread

SCHEMA = json.loads((Path(settings.BASE_DIR) / "static/schema/chat-export-v1.json").read_text())
# jsonschema checks "date-time" only with a package we do not install: ISO 8601 with an offset here.
FORMATS = jsonschema.FormatChecker(formats=())


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    return not isinstance(value, str) or datetime.fromisoformat(value).tzinfo is not None


def validate(document: dict) -> None:
    """The document against the published schema, its date-times too."""
    jsonschema.validate(document, SCHEMA, format_checker=FORMATS)


def body(response) -> bytes:
    return b"".join(response.streaming_content)


@pytest.fixture
def thread(user):
    """question -> answer (with tool steps) -> follow-up; and an older sibling answer (a branch)."""
    thread = make_thread(user, title="Trip: Lisbon/Porto?")
    question = make_message(thread, "Plan a trip")
    make_message(thread, "Old answer", role="ai", parent_id=question.pk)
    answer = make_message(
        thread,
        "**Day 1**: Alfama",
        role="ai",
        parent_id=question.pk,
        metadata={
            "trajectory": {
                "thought_0": "look up",
                "tool_name_0": "web_search",
                "tool_args_0": {"q": "x"},
                "observation_0": "found it",
                "tool_name_1": "finish",
            }
        },
    )
    follow_up = make_message(thread, '=HYPERLINK("http://evil")', parent_id=answer.pk)
    make_attachment(follow_up, "notes.txt", b"my notes\n")
    return thread


def test_json_export_of_a_thread_follows_the_schema_and_holds_the_whole_tree(api, thread):
    response = api.get(f"/api/export/threads/{thread.pk}/")
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="trip-lisbonporto-{str(thread.pk)[:8]}.json"'
    document = json.loads(body(response))
    validate(document)
    [exported] = document["threads"]
    assert [m["content"] for m in exported["messages"]] == [
        "Plan a trip",
        "Old answer",
        "**Day 1**: Alfama",
        '=HYPERLINK("http://evil")',
    ]
    by_content = {m["content"]: m for m in exported["messages"]}
    assert by_content["Old answer"]["parent"] == by_content["Plan a trip"]["id"]
    assert exported["active_leaf"] == by_content['=HYPERLINK("http://evil")']["id"]
    assert by_content['=HYPERLINK("http://evil")']["attachments"][0]["filename"] == "notes.txt"
    assert "data" not in by_content['=HYPERLINK("http://evil")']["attachments"][0]


def test_a_title_in_another_script_keeps_its_letters_in_the_file_name(api, user):
    thread = make_thread(user, title="Путешествие в Лиссабон")
    make_message(thread, "Привет")
    short = str(thread.pk)[:8]
    response = api.get(f"/api/export/threads/{thread.pk}/?format=md")
    assert response["Content-Disposition"] == (
        f"attachment; filename=\"{short}.md\"; filename*=UTF-8''{quote(f'путешествие-в-лиссабон-{short}.md')}"
    )
    assert "Привет" in body(response).decode()


def test_inline_attachments_are_base64(api, thread):
    document = json.loads(body(api.get(f"/api/export/threads/{thread.pk}/?attachments=inline")))
    validate(document)
    [attachment] = [a for m in document["threads"][0]["messages"] for a in m["attachments"]]
    assert attachment["data"] == "bXkgbm90ZXMK"


def test_csv_parses_back_with_formula_cells_neutralized(api, thread):
    response = api.get(f"/api/export/threads/{thread.pk}/?format=csv")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(body(response).decode("utf-8-sig"))))
    assert list(rows[0]) == [
        "thread_id",
        "thread_title",
        "message_id",
        "parent_id",
        "role",
        "type",
        "created_at",
        "content",
    ]
    assert [r["content"] for r in rows] == [
        "Plan a trip",
        "Old answer",
        "**Day 1**: Alfama",
        '\'=HYPERLINK("http://evil")',
    ]
    assert {r["thread_id"] for r in rows} == {str(thread.pk)}


@pytest.mark.parametrize("cell", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"])
def test_every_formula_start_is_neutralized(api, user, cell):
    thread = make_thread(user, title=cell)
    make_message(thread, cell)
    rows = list(
        csv.reader(io.StringIO(body(api.get(f"/api/export/threads/{thread.pk}/?format=csv")).decode("utf-8-sig")))
    )
    assert rows[1][7] == "'" + cell
    assert rows[1][1] == ("'" + cell if cell == cell.strip() else cell.strip())  # titles are stripped


def test_markdown_has_the_active_branch_with_tool_steps_and_attachments(api, thread):
    text = body(api.get(f"/api/export/threads/{thread.pk}/?format=md")).decode()
    assert text.startswith("# Trip: Lisbon/Porto?\n")
    for content in ("Plan a trip", "**Day 1**: Alfama", '=HYPERLINK("http://evil")'):
        assert content in text
    assert "Old answer" not in text
    assert "<details><summary>Tool steps</summary>" in text and "**web_search**" in text and "> found it" in text
    # A link to the site the file came from: it still works once the file is saved elsewhere.
    [attachment] = thread.attachments.all()
    assert f"[notes.txt](http://testserver/api/attachments/{attachment.pk}/download/)" in text
    assert "Old answer" in body(api.get(f"/api/export/threads/{thread.pk}/?format=md&branches=all")).decode()


HOSTILE = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(2)">',
    "[click](javascript:alert(3))",
    "[data](data:text/html;base64,PHNjcmlwdD4=)",
    "![remote](http://tracker.example/pixel.png)",
    '<a href="#" onclick="alert(4)">x</a>',
    "<svg onload=alert(5)>",
    "<iframe src=//evil></iframe>",
]


class _Markup(HTMLParser):
    """Every element and attribute of a page, as a browser would build them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes += [(name, value or "") for name, value in attrs]


def test_html_is_self_contained_and_no_hostile_content_survives(api, user):
    thread = make_thread(user, title="<script>alert('title')</script>")
    for content in HOSTILE:
        make_message(thread, content)
    make_message(thread, "Fine **bold** [link](https://example.com)", role="ai")
    response = api.get(f"/api/export/threads/{thread.pk}/?format=html")
    html = body(response).decode()
    assert response["Content-Type"] == "text/html; charset=utf-8"
    markup = _Markup()
    markup.feed(html)
    assert not {"script", "img", "iframe", "svg", "link", "object", "embed"} & set(markup.tags)
    assert not [name for name, _ in markup.attributes if name.startswith("on")]
    urls = [value for name, value in markup.attributes if name in ("href", "src")]
    assert urls == ["https://example.com"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # shown as text, not run
    assert "<strong>bold</strong>" in html
    assert markup.tags.count("style") == 1 and "@media print" in html


def test_html_shows_every_message_of_the_branch(api, thread):
    html = body(api.get(f"/api/export/threads/{thread.pk}/?format=html")).decode()
    assert "Plan a trip" in html and "<strong>Day 1</strong>: Alfama" in html and "Old answer" not in html
    [attachment] = thread.attachments.all()
    assert f'<a href="http://testserver/api/attachments/{attachment.pk}/download/">notes.txt</a>' in html
    assert "<details><summary>Tool steps (1)</summary>" in html


def test_another_users_thread_is_not_found(other_api, thread):
    response = other_api.get(f"/api/export/threads/{thread.pk}/?format=csv")
    assert response.status_code == 404 and response.json() == {"detail": "Thread not found."}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("format=pdf", "format"),
        ("branches=some", "branches"),
        ("archive=tar", "archive"),
        ("since=yesterday", "since"),
        ("since=2026-02-30", "since"),
        ("since=", "since"),
        ("archive=", "archive"),
        ("attachments=", "attachments"),
        ("format=", "format"),
        ("status=deleted", "status"),
    ],
)
def test_unknown_values_name_the_parameter_and_what_is_accepted(api, thread, query, field):
    for url in (f"/api/export/threads/{thread.pk}/?{query}", f"/api/export/?{query}"):
        response = api.get(url)
        assert response.status_code == 400
        assert list(response.json()) == [field]
    assert "csv, html, json, md" in api.get("/api/export/?format=pdf").json()["format"][0]


def test_bulk_json_holds_every_thread_of_the_user_only(api, user, other_user, thread, django_assert_max_num_queries):
    archived = make_thread(user, title="Old", status="archived")
    make_message(archived, "old message")
    make_thread(other_user, title="Not mine")
    with django_assert_max_num_queries(7):
        document = json.loads(body(api.get("/api/export/")))
    validate(document)
    assert sorted(t["title"] for t in document["threads"]) == ["Old", "Trip: Lisbon/Porto?"]
    only = json.loads(body(api.get("/api/export/?status=archived")))
    assert [t["title"] for t in only["threads"]] == ["Old"]
    assert json.loads(body(api.get("/api/export/?since=2999-01-01")))["threads"] == []


def test_bulk_export_streams_in_batches(api, user, monkeypatch, django_assert_max_num_queries):
    monkeypatch.setattr("exports.selectors.THREAD_BATCH", 2)
    for n in range(5):
        make_message(make_thread(user, title=f"t{n}"), f"m{n}")
    response = api.get("/api/export/?format=csv")
    assert response.streaming
    # ids, then threads + messages + attachments a batch, then export_completed's webhook lookup
    with django_assert_max_num_queries(1 + 3 * 3 + 1):
        rows = list(csv.DictReader(io.StringIO(body(response).decode("utf-8-sig"))))
    assert sorted(r["content"] for r in rows) == [f"m{n}" for n in range(5)]


def test_zip_archive_has_one_file_per_thread_and_the_attachments(api, user, thread):
    other = make_thread(user, title="Second")
    make_message(other, "hello")
    response = api.get("/api/export/?format=md&archive=zip")
    assert response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(body(response)))
    names = archive.namelist()
    assert f"threads/second-{str(other.pk)[:8]}.md" in names
    [attachment] = [n for n in names if n.startswith("attachments/")]
    assert archive.read(attachment) == b"my notes\n"
    text = archive.read(f"threads/trip-lisbonporto-{str(thread.pk)[:8]}.md").decode()
    assert f"](../{attachment})" in text


def test_every_json_file_of_a_zip_archive_follows_the_schema(api, user, thread):
    make_message(make_thread(user, title="Second"), "hello")
    archive = zipfile.ZipFile(io.BytesIO(body(api.get("/api/export/?archive=zip"))))
    documents = [json.loads(archive.read(n)) for n in archive.namelist() if n.endswith(".json")]
    assert len(documents) == 2
    for document in documents:
        validate(document)
    [attachment] = [a for d in documents for m in d["threads"][0]["messages"] for a in m["attachments"]]
    assert archive.read(attachment["path"]) == b"my notes\n"


def test_the_schema_check_sees_a_bad_date_time():
    with pytest.raises(jsonschema.ValidationError):
        validate({"format": "chat-export", "version": 1, "exported_at": "yesterday", "threads": []})


def test_export_completed_is_sent_after_the_last_byte(api, user, thread):
    sent = []

    def receiver(sender, **kwargs):
        sent.append(kwargs)

    export_completed.connect(receiver)
    try:
        response = api.get("/api/export/?format=csv")
        assert sent == []
        body(response)
    finally:
        export_completed.disconnect(receiver)
    assert sent == [
        {
            "signal": export_completed,
            "user": user,
            "export": {
                "scope": "all",
                "thread_id": None,
                "format": "csv",
                "branches": "all",
                "archive": False,
                "threads": 1,
                "messages": 4,
            },
        }
    ]


def test_export_needs_a_signed_in_user(client, thread):
    assert client.get("/api/export/").status_code in (401, 403)
    assert client.get(f"/api/export/threads/{thread.pk}/").status_code in (401, 403)


def test_the_active_branch_is_the_one_the_user_switched_to(api, user, thread):
    from threads.services import thread_update

    old = thread.messages.get(content="Old answer")
    thread_update(thread=thread, active_leaf=old.pk)
    single = body(api.get(f"/api/export/threads/{thread.pk}/?format=md")).decode()
    bulk = body(api.get("/api/export/?format=md")).decode()
    for text in (single, bulk):
        assert "Old answer" in text and "Alfama" not in text and "Plan a trip" in text
    document = json.loads(body(api.get(f"/api/export/threads/{thread.pk}/")))
    assert document["threads"][0]["active_leaf"] == str(old.pk)
    # and an import of it lands on the same branch
    response = api.post("/api/import/", {"file": io.BytesIO(json.dumps(document).encode())}, format="multipart")
    copy = ChatThread.objects.get(pk=response.json()["imported"][0]["id"])
    assert copy.active_leaf.content == "Old answer"


@pytest.mark.asyncio
async def test_downloads_stay_streamed_under_asgi():
    from exports.api import ASGI_BATCH_BYTES, ExportResponse

    pulled = []

    def chunks():
        for n in range(100):
            pulled.append(n)
            yield b"x" * (ASGI_BATCH_BYTES // 4)

    received = []
    async for part in ExportResponse(chunks()):
        received.append(part)
        if len(received) == 1:
            assert len(pulled) == 4  # one batch read, not the whole export
    assert len(received) == 100 and len(pulled) == 100


def test_the_api_docs_link_the_published_schema(api):
    schema = api.get("/api/schema/?format=json").content.decode()
    assert "/static/schema/chat-export-v1.json" in schema
    jsonschema.Draft202012Validator.check_schema(SCHEMA)

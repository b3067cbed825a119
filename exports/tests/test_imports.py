import io
import json
import zipfile

import pytest

from agent.models import MemoryEntry
from chatproject.catalog import parse_models
from exports.tests.fixtures import T0, chatgpt_conversation, chatgpt_hidden_and_system, open_webui_chat
from messaging.models import ChatAttachment, ChatMessage
from messaging.signals import user_message_posted
from messaging.tests.factories import make_attachment, make_message
from threads.models import ChatThread
from threads.tests.factories import make_thread


def upload(api, data: bytes | str, name: str = "export.json"):
    data = data.encode() if isinstance(data, str) else data
    return (
        api.post("/api/import/", {"file": io.BytesIO(data)}, format="multipart")
        if False
        else api.post("/api/import/", {"file": _named(data, name)}, format="multipart")
    )


def _named(data: bytes, name: str) -> io.BytesIO:
    handle = io.BytesIO(data)
    handle.name = name
    return handle


def tree(thread: ChatThread) -> list[tuple[str, str, str | None]]:
    """(role, content, parent's content) of each message, oldest first."""
    messages = list(thread.messages.order_by("created_at", "id").select_related("parent"))
    return [(m.role, m.content, m.parent.content if m.parent else None) for m in messages]


def test_chatgpt_import_keeps_the_whole_tree(api, user):
    response = upload(api, json.dumps([chatgpt_conversation()]), "conversations.json")
    assert response.status_code == 201, response.json()
    [imported] = response.json()["imported"]
    assert response.json()["skipped"] == []
    thread = ChatThread.objects.get(pk=imported["id"], owner=user)
    assert thread.title == "Trip to Lisbon" and imported["messages"] == 6
    assert thread.created_at.timestamp() == T0
    assert tree(thread) == [
        ("user", "Plan a trip\nto Lisbon", None),  # the hidden system message is skipped, u1 re-parented
        ("ai", "Day 1: Alfama", "Plan a trip\nto Lisbon"),
        ("user", "[image_asset_pointer not included]\nWhat is this?", "Day 1: Alfama"),  # no time: parent's + 1 ms
        ("ai", "Day 1: Belém", "Plan a trip\nto Lisbon"),
        ("ai", "search results", "[image_asset_pointer not included]\nWhat is this?"),
        ("ai", "```python\nprint('hi')\n```", "search results"),
    ]
    by_content = {m.content: m for m in thread.messages.all()}
    assert by_content["Day 1: Belém"].metadata["unfinished"] is True
    assert by_content["search results"].metadata["import"]["tool"] == "browser"
    assert by_content["search results"].type == "text"
    # no time: the parent's plus 1 ms
    follow_up = by_content["[image_asset_pointer not included]\nWhat is this?"]
    assert (follow_up.created_at - by_content["Day 1: Alfama"].created_at).total_seconds() == 0.001
    assert follow_up.metadata["import"]["omitted_parts"] == ["image_asset_pointer"]
    assert thread.active_leaf_id == by_content["Day 1: Belém"].pk  # current_node


def test_chatgpt_hidden_and_empty_system_messages_are_skipped_each_on_its_own(api, user):
    response = upload(api, json.dumps([chatgpt_hidden_and_system()]), "conversations.json")
    assert response.status_code == 201, response.json()
    thread = ChatThread.objects.get(pk=response.json()["imported"][0]["id"])
    assert tree(thread) == [
        ("user", "Hi", None),  # its hidden (not empty) parent is skipped
        ("ai", "Hello", "Hi"),  # its empty (not hidden) system parent is skipped
        ("system", "Be brief", "Hi"),  # a visible system message is kept as one
    ]
    by_content = {m.content: m for m in thread.messages.all()}
    assert by_content["Hello"].created_at.timestamp() == T0 + 3  # create_time kept
    assert thread.active_leaf_id == by_content["Hello"].pk


def test_chatgpt_reasoning_and_browsing_content_keeps_its_text(api, user):
    from exports.tests.fixtures import chatgpt_node

    nodes = [
        chatgpt_node("root", None, ["u1"]),
        chatgpt_node("u1", "root", ["t1"], "user", ["Why is the sky blue?"], time=T0 + 1),
        chatgpt_node(
            "t1", "u1", ["r1"], "assistant", time=T0 + 2,
            content={"content_type": "thoughts", "thoughts": [{"summary": "Scattering", "content": "Rayleigh."}]},
        ),
        chatgpt_node(
            "r1", "t1", ["b1"], "assistant", time=T0 + 3,
            content={"content_type": "reasoning_recap", "content": "Thought for 4 seconds"},
        ),
        chatgpt_node(
            "b1", "r1", ["a1"], "tool", time=T0 + 4, name="web",
            content={"content_type": "tether_browsing_display", "result": "Sky - Wikipedia", "summary": None},
        ),
        chatgpt_node("a1", "b1", [], "assistant", ["Short wavelengths scatter more."], time=T0 + 5),
    ]  # fmt: skip
    conversation = {"title": "Sky", "create_time": T0, "mapping": {n["id"]: n for n in nodes}, "current_node": "a1"}
    response = upload(api, json.dumps([conversation]), "conversations.json")
    assert response.status_code == 201, response.json()
    thread = ChatThread.objects.get(pk=response.json()["imported"][0]["id"])
    assert [(role, content) for role, content, _ in tree(thread)] == [
        ("user", "Why is the sky blue?"),
        ("ai", "**Scattering**\n\nRayleigh."),
        ("ai", "Thought for 4 seconds"),
        ("ai", "Sky - Wikipedia"),
        ("ai", "Short wavelengths scatter more."),
    ]
    kinds = [m.metadata["import"].get("content_type") for m in thread.messages.order_by("created_at")]
    assert kinds == [None, "thoughts", "reasoning_recap", "tether_browsing_display", None]


def test_open_webui_import_keeps_branches(api, user):
    response = upload(api, json.dumps([open_webui_chat(), open_webui_chat("Second")]))
    assert response.status_code == 201, response.json()
    assert [i["title"] for i in response.json()["imported"]] == ["Recipes", "Second"]
    thread = ChatThread.objects.get(pk=response.json()["imported"][0]["id"])
    assert tree(thread) == [
        ("user", "A soup recipe?", None),
        ("ai", "Minestrone.", "A soup recipe?"),
        ("ai", "Gazpacho.", "A soup recipe?"),
        ("user", "Without beans?", "Minestrone."),
    ]
    assert thread.messages.get(content="Minestrone.").metadata["import"]["model"] == "llama3"
    assert thread.active_leaf_id == thread.messages.get(content="Gazpacho.").pk  # currentId


def test_round_trip_keeps_roles_contents_types_metadata_tree_order_and_attachments(api, user):
    original = make_thread(user, title="Round trip", metadata={"topic": "tests"})
    question = make_message(original, "Question?", metadata={"k": [1, 2]})
    make_message(original, "First answer", role="ai", parent_id=question.pk, type="table")
    second = make_message(original, "Second answer", role="ai", parent_id=question.pk, metadata={"trajectory": {}})
    file_message = make_message(original, "", type="file", parent_id=second.pk)
    make_attachment(file_message, "data.csv", b"a,b\n1,2\n")
    exported = b"".join(api.get(f"/api/export/threads/{original.pk}/?attachments=inline").streaming_content)

    response = upload(api, exported)
    assert response.status_code == 201, response.json()
    copy = ChatThread.objects.get(pk=response.json()["imported"][0]["id"])
    assert copy.pk != original.pk and copy.title == "Round trip" and copy.metadata == {"topic": "tests"}

    def shape(thread):
        return [
            (
                m.role,
                m.type,
                m.content,
                m.metadata,
                m.parent.content if m.parent else None,
                [(a.filename, a.sha256, a.size) for a in m.attachments.all()],
            )
            for m in thread.messages.order_by("created_at", "id").select_related("parent")
        ]

    assert shape(copy) == shape(original)
    original.refresh_from_db()
    assert copy.active_leaf.content == original.active_leaf.content == ""  # the file message
    assert not set(copy.messages.values_list("pk", flat=True)) & set(original.messages.values_list("pk", flat=True))
    attachment = ChatAttachment.objects.get(thread=copy)
    assert attachment.file.read() == b"a,b\n1,2\n"


def test_round_trip_keeps_the_threads_model_and_instructions(api, user, settings):
    settings.AGENT_MODELS, _ = parse_models(
        "fast=openai/gpt-4o-mini,api_base=http://127.0.0.1:1/v1", default_lm="offline"
    )
    original = make_thread(user, title="Chosen", model="fast", instructions="Answer in French.")
    make_message(original, "Bonjour")
    exported = b"".join(api.get(f"/api/export/threads/{original.pk}/").streaming_content)
    document = json.loads(exported)["threads"][0]
    assert (document["model"], document["instructions"]) == ("fast", "Answer in French.")
    copy = ChatThread.objects.get(pk=upload(api, exported).json()["imported"][0]["id"])
    assert (copy.model, copy.instructions) == ("fast", "Answer in French.")
    # A server that does not offer the model answers with its default; the instructions stay.
    settings.AGENT_MODELS, _ = parse_models("", default_lm="offline")
    again = ChatThread.objects.get(pk=upload(api, exported).json()["imported"][0]["id"])
    assert (again.model, again.instructions) == ("", "Answer in French.")


def test_round_trip_of_a_zip_archive_with_attachment_files(api, user, django_capture_on_commit_callbacks):
    original = make_thread(user, title="Zipped")
    message = make_message(original, "see file")
    make_attachment(message, "notes.txt", b"zip notes\n")
    make_message(make_thread(user, title="Other"), "hi")
    archive = b"".join(api.get("/api/export/?archive=zip").streaming_content)
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(api, archive, "export.zip")
    # An archive of many threads runs as a job (eager here): its result is on the job.
    assert response.status_code == 202, response.json()
    job = api.get(f"/api/import/jobs/{response.json()['job']['id']}/").json()
    assert job["status"] == "done" and sorted(i["title"] for i in job["imported"]) == ["Other", "Zipped"]
    copy = ChatThread.objects.get(pk=next(i["id"] for i in job["imported"] if i["title"] == "Zipped"))
    assert ChatAttachment.objects.get(thread=copy).file.read() == b"zip notes\n"


def test_imported_messages_start_no_reply_and_send_no_signal_but_are_remembered(api, user):
    posted = []

    def receiver(sender, **kwargs):
        posted.append(kwargs)

    user_message_posted.connect(receiver)
    try:
        response = upload(api, json.dumps([open_webui_chat()]))
    finally:
        user_message_posted.disconnect(receiver)
    assert response.status_code == 201
    assert posted == []
    thread = ChatThread.objects.get(pk=response.json()["imported"][0]["id"])
    assert not thread.messages.filter(awaiting_reply=True).exists()
    assert not thread.reply_streams.exists()
    remembered = set(MemoryEntry.objects.filter(user=user).values_list("snippet", flat=True))
    assert remembered == {"A soup recipe?", "Without beans?"}


def test_imports_send_one_webhook_event_and_none_per_message(api, user, settings):
    from webhooks.models import WebhookEvent
    from webhooks.services import webhook_create

    settings.WEBHOOKS_ALLOW_PRIVATE = True
    webhook_create(owner=user, url="http://127.0.0.1:9/hook", events=["*"])
    results = []
    for data in ([open_webui_chat(), {"title": "Broken", "chat": "oops"}], [chatgpt_conversation()]):
        response = upload(api, json.dumps(data))
        assert response.status_code == 201 and len(response.json()["imported"]) == 1
        results.append(response.json())
    assert not WebhookEvent.objects.filter(owner=user, type="message.created").exists()
    sent = [json.loads(e.body)["data"]["import"] for e in WebhookEvent.objects.filter(type="import.completed")]
    assert sorted(sent, key=lambda d: d["kind"]) == [
        {"kind": "chatgpt", **results[1]},
        {"kind": "open-webui", **results[0]},
    ]
    assert results[0]["skipped"][0]["title"] == "Broken"
    # The endpoint does hear of what users do (it is not the subscription that keeps it quiet).
    assert api.post("/api/threads/", {"title": "New"}, format="json").status_code == 201
    assert WebhookEvent.objects.filter(owner=user, type="thread.created").count() == 1


def test_imports_need_a_signed_in_user(db, anon_api):
    response = anon_api.post("/api/import/", {"file": _named(b"[]", "x.json")}, format="multipart")
    assert response.status_code in (401, 403)
    assert anon_api.get("/api/import/jobs/00000000-0000-0000-0000-000000000000/").status_code in (401, 403)
    assert anon_api.get("/api/import/jobs/").status_code in (401, 403)
    assert not ChatThread.objects.exists()


def test_a_bad_conversation_is_skipped_and_the_others_imported(api, user):
    bad_role = open_webui_chat("Bad role")
    bad_role["chat"]["history"]["messages"]["m2"]["role"] = "wizard"
    not_a_chat = {"title": "Nothing", "chat": "oops"}
    response = upload(api, json.dumps([open_webui_chat("Good"), bad_role, not_a_chat, open_webui_chat("Good too")]))
    assert response.status_code == 201
    assert [i["title"] for i in response.json()["imported"]] == ["Good", "Good too"]
    assert response.json()["skipped"] == [
        {"index": 1, "title": "Bad role", "reason": 'unknown role "wizard"'},
        {"index": 2, "title": "Nothing", "reason": "a chat must be an object with a history"},
    ]
    assert ChatThread.objects.filter(owner=user).count() == 2


def test_a_conversation_failing_while_stored_leaves_nothing_of_itself(api, user, settings):
    settings.UPLOAD_QUOTA_BYTES = 5
    original = make_thread(user, title="With file")
    make_attachment(make_message(original, "x"), "notes.txt", b"four")
    exported = json.loads(b"".join(api.get(f"/api/export/threads/{original.pk}/?attachments=inline").streaming_content))
    exported["threads"].append({**exported["threads"][0], "title": "Second"})
    before = ChatMessage.objects.count()
    response = upload(api, json.dumps(exported))
    assert response.status_code == 201
    assert [s["title"] for s in response.json()["skipped"]] == ["With file", "Second"]
    assert "quota" in response.json()["skipped"][0]["reason"]
    assert ChatMessage.objects.count() == before and ChatThread.objects.filter(owner=user).count() == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not json at all", "The file is not valid JSON"),
        (b'{"threads": [', "The file is not valid JSON"),
        (b'{"hello": "world"}', "The file is not a format we import"),
        (b"[1, 2, 3]", "The file is not a format we import"),
        (b"[" * 200 + b"]" * 200, "The file nests deeper than 100 levels."),
        (b"PK\x03\x04 broken", "The file is not a valid ZIP file."),
        (b"", "The file is empty."),
    ],
)
def test_bad_files_are_refused_and_nothing_is_stored(api, user, data, message):
    response = upload(api, data)
    assert response.status_code == 400
    assert list(response.json()) == ["file"] and message in response.json()["file"][0]
    assert not ChatThread.objects.filter(owner=user).exists()


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_zip_bombs_are_refused(api, user, settings):
    settings.MAX_IMPORT_BYTES = 1_000_000
    bomb = _zip({"conversations.json": b"[" + b" " * 900_000 + b"]"})
    response = upload(api, bomb, "bomb.zip")
    assert response.status_code == 400 and "ZIP bomb" in response.json()["file"][0]
    too_big = _zip({f"{n}.json": bytes(range(256)) * 1000 for n in range(5)})  # 1.28 MB unpacked
    response = upload(api, too_big, "big.zip")
    assert response.status_code == 413 and response.json()["code"] == "too_large"
    assert not ChatThread.objects.filter(owner=user).exists()


def test_a_zip_with_a_chatgpt_export_inside_is_imported(api, user):
    data = _zip({"conversations.json": json.dumps([chatgpt_conversation()]).encode(), "user.json": b"{}"})
    response = upload(api, data, "chatgpt.zip")
    assert response.status_code == 201 and response.json()["imported"][0]["messages"] == 6


def test_files_over_the_limit_are_refused_with_413(api, user, settings):
    settings.MAX_IMPORT_BYTES = 1000
    response = upload(api, json.dumps([open_webui_chat()] * 5))
    assert response.status_code == 413
    assert response.json()["code"] == "too_large"
    assert not ChatThread.objects.filter(owner=user).exists()


def test_large_imports_run_as_a_job_with_progress(api, other_api, user, settings, django_capture_on_commit_callbacks):
    settings.IMPORT_BACKGROUND_MESSAGES = 5
    with django_capture_on_commit_callbacks() as callbacks:
        response = upload(api, json.dumps([open_webui_chat(f"c{n}") for n in range(3)]))
    assert response.status_code == 202
    job = response.json()["job"]
    assert job["conversations_total"] == 3 and job["status"] == "queued"
    assert not ChatThread.objects.filter(owner=user).exists()  # nothing before the task runs
    for callback in callbacks:
        callback()
    # Eager here: the job ran after the request's transaction committed.
    done = api.get(f"/api/import/jobs/{job['id']}/").json()
    assert done["status"] == "done" and done["conversations_done"] == 3 and len(done["imported"]) == 3
    assert other_api.get(f"/api/import/jobs/{job['id']}/").status_code == 404


def test_your_background_imports_are_listed_newest_first_and_paginated(
    api, other_api, user, settings, django_capture_on_commit_callbacks, django_assert_max_num_queries
):
    settings.IMPORT_BACKGROUND_MESSAGES = 1
    with django_capture_on_commit_callbacks(execute=True):
        first = upload(api, json.dumps([open_webui_chat("a")]), "first.json").json()["job"]
    with django_capture_on_commit_callbacks(execute=True):
        second = upload(api, json.dumps([open_webui_chat("b"), {"title": "bad"}]), "second.json").json()["job"]
    with django_assert_max_num_queries(3):  # token, count, page
        listing = api.get("/api/import/jobs/").json()
    assert listing["count"] == 2 and [j["id"] for j in listing["results"]] == [second["id"], first["id"]]
    newest = listing["results"][0]
    assert {k: newest[k] for k in ("filename", "status", "imported_count", "skipped_count")} == {
        "filename": "second.json",
        "status": "done",
        "imported_count": 1,
        "skipped_count": 1,
    }
    assert "imported" not in newest and newest["finished_at"] is not None  # the lists are on the job's own URL
    page = api.get("/api/import/jobs/?page_size=1").json()
    assert [j["id"] for j in page["results"]] == [second["id"]] and page["next"]
    assert other_api.get("/api/import/jobs/").json()["count"] == 0
    job = api.get(f"/api/import/jobs/{first['id']}/").json()
    assert job["imported_count"] == 1 and [i["title"] for i in job["imported"]] == ["a"]


def _queued_job(api, settings, django_capture_on_commit_callbacks, count: int = 3) -> str:
    """A background import of ``count`` conversations, queued (its task not run)."""
    settings.IMPORT_BACKGROUND_MESSAGES = 1
    with django_capture_on_commit_callbacks():
        response = upload(api, json.dumps([open_webui_chat(f"c{n}") for n in range(count)]))
    assert response.status_code == 202
    return response.json()["job"]["id"]


class WorkerDied(Exception):
    pass


def test_a_job_whose_worker_died_goes_on_where_it_stopped(api, user, settings, django_capture_on_commit_callbacks):
    from exports.models import ImportJob
    from exports.services import ImportFile, ImportJobLog, threads_import
    from exports.tasks import import_run

    job_id = _queued_job(api, settings, django_capture_on_commit_callbacks)
    # The first worker claimed the job, stored the first conversation, and was killed.
    ImportJob.objects.filter(pk=job_id).update(status=ImportJob.Status.RUNNING)
    job = ImportJob.objects.get(pk=job_id)

    def killed(done: int) -> None:
        raise WorkerDied

    with job.file.open("rb") as stream, pytest.raises(WorkerDied):
        threads_import(
            user=user, file=ImportFile.open(stream, size=job.file.size), on_progress=killed, log=ImportJobLog(job)
        )
    assert ChatThread.objects.filter(owner=user).count() == 1

    import_run.delay(job_id)  # the task given to another worker (acknowledged late)
    done = api.get(f"/api/import/jobs/{job_id}/").json()
    assert done["status"] == "done" and done["conversations_done"] == 3
    assert [i["title"] for i in done["imported"]] == ["c0", "c1", "c2"]  # the first run's one too
    assert sorted(ChatThread.objects.filter(owner=user).values_list("title", flat=True)) == ["c0", "c1", "c2"]
    assert not ImportJob.objects.get(pk=job_id).file  # the file is gone once it ended


def test_two_runs_of_one_job_store_each_conversation_once(api, user, settings, django_capture_on_commit_callbacks):
    from exports.models import ImportJob
    from exports.services import ImportFile, ImportJobLog, import_job_run, threads_import

    job_id = _queued_job(api, settings, django_capture_on_commit_callbacks)
    job = ImportJob.objects.get(pk=job_id)
    with job.file.open("rb") as stream:
        data = stream.read()
    stale = ImportJobLog(job)  # a second run that started before the first stored anything
    import_job_run(job_id=job_id)
    result = threads_import(user=user, file=ImportFile.open(io.BytesIO(data), size=len(data)), log=stale)
    assert [i["title"] for i in result["imported"]] == ["c0", "c1", "c2"]  # the job's, each once
    assert ChatThread.objects.filter(owner=user).count() == 3
    assert import_job_run(job_id=job_id) is None  # an ended job is not run again


def test_imports_belong_to_the_importer_only(api, other_api, user, other_user):
    upload(api, json.dumps([open_webui_chat()]))
    assert ChatThread.objects.filter(owner=other_user).count() == 0
    assert other_api.get("/api/threads/").json()["count"] == 0
    assert api.get("/api/threads/").json()["count"] == 1


def test_import_without_a_file_names_the_field(api):
    response = api.post("/api/import/", {}, format="multipart")
    assert response.status_code == 400 and list(response.json()) == ["file"]


def test_existing_threads_are_untouched(api, user):
    thread = make_thread(user, title="Mine")
    make_message(thread, "keep me")
    upload(api, json.dumps([open_webui_chat()]))
    assert [m.content for m in thread.messages.all()] == ["keep me"]

"""Forking part of a tree into a new thread, and the tree as nodes for D3."""

from __future__ import annotations

import uuid

import pytest
from django.urls import reverse

from messaging.models import ChatAttachment, ChatMessage
from messaging.tests.factories import make_attachment, make_message
from threads.models import ChatThread
from threads.tests.factories import make_thread

pytestmark = pytest.mark.django_db


def fork_url(thread_id) -> str:
    return reverse("thread-fork", kwargs={"thread_id": thread_id})


def tree_url(thread_id) -> str:
    return reverse("visualization", kwargs={"thread_id": thread_id})


@pytest.fixture
def tree(user):
    """root -> a1 -> q2 -> a2 (active), root -> b1 (a regenerated sibling), q2 -> c (an edit)."""
    thread = make_thread(user, title="Trip")
    root = make_message(thread, "root question")
    a1 = make_message(thread, "first answer", role="ai")
    b1 = make_message(thread, "other answer", role="ai", parent_id=root.pk)
    q2 = make_message(thread, "follow-up", parent_id=a1.pk)
    make_attachment(q2, "plan.txt", b"day one")
    c = make_message(thread, "edited follow-up", parent_id=a1.pk)
    a2 = make_message(thread, "second answer", role="ai", parent_id=q2.pk)
    return thread, {"root": root, "a1": a1, "b1": b1, "q2": q2, "c": c, "a2": a2}


def contents(thread_id) -> list[tuple[str, str | None]]:
    messages = ChatMessage.objects.filter(thread_id=thread_id).order_by("created_at", "id")
    by_id = {m.pk: m.content for m in messages}
    return [(m.content, by_id.get(m.parent_id)) for m in messages]


@pytest.mark.parametrize(
    ("mode", "at", "expected", "leaf"),
    [
        (
            "path",
            "a2",
            [("root question", None), ("first answer", "root question"), ("follow-up", "first answer"),
             ("second answer", "follow-up")],
            "second answer",
        ),
        (
            "path_with_branches",
            "q2",
            [("root question", None), ("first answer", "root question"), ("other answer", "root question"),
             ("follow-up", "first answer"), ("edited follow-up", "first answer")],
            "follow-up",
        ),
        (
            "subtree",
            "a1",
            [("first answer", None), ("follow-up", "first answer"), ("edited follow-up", "first answer"),
             ("second answer", "follow-up")],
            "second answer",
        ),
    ],
)  # fmt: skip
def test_fork_modes(api, tree, mode, at, expected, leaf, django_assert_max_num_queries):
    thread, messages = tree
    with django_assert_max_num_queries(15):  # 14, and the webhooks outbox hearing of the new thread
        response = api.post(fork_url(thread.pk), {"message_id": str(messages[at].pk), "mode": mode}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["title"] == "Trip (fork)" and body["id"] != str(thread.pk)
    assert contents(body["id"]) == expected
    fork = ChatThread.objects.get(pk=body["id"])
    assert fork.owner_id == thread.owner_id and fork.active_leaf.content == leaf
    copies = ChatMessage.objects.filter(thread=fork)
    assert not set(copies.values_list("id", flat=True)) & {m.pk for m in messages.values()}
    # Times are the originals', so the order is too.
    originals = {m.content: m.created_at for m in messages.values()}
    assert all(copy.created_at == originals[copy.content] for copy in copies)
    # The original thread is untouched.
    assert ChatMessage.objects.filter(thread=thread).count() == 6


def test_a_fork_keeps_the_threads_model_and_instructions(api, tree):
    thread, messages = tree
    ChatThread.objects.filter(pk=thread.pk).update(model="offline", instructions="Answer in French.")
    body = api.post(fork_url(thread.pk), {"message_id": str(messages["a2"].pk)}, format="json").json()
    assert (body["model"], body["instructions"]) == ("offline", "Answer in French.")
    fork = ChatThread.objects.get(pk=body["id"])
    assert (fork.model, fork.instructions) == ("offline", "Answer in French.")


def test_fork_shares_attachment_files(api, tree):
    thread, messages = tree
    body = api.post(fork_url(thread.pk), {"message_id": str(messages["a2"].pk)}, format="json").json()
    original = ChatAttachment.objects.get(thread=thread)
    copy = ChatAttachment.objects.get(thread_id=body["id"])
    assert copy.pk != original.pk and copy.file.name == original.file.name and copy.message.content == "follow-up"
    download = api.get(copy.url)
    assert download.status_code == 200 and b"".join(download.streaming_content) == b"day one"


def test_purging_the_original_keeps_the_files_a_fork_shares(api, tree, django_capture_on_commit_callbacks):
    from django.core.files.storage import default_storage

    from messaging.services import thread_purge

    thread, messages = tree
    body = api.post(fork_url(thread.pk), {"message_id": str(messages["a2"].pk)}, format="json").json()
    only_here = make_attachment(messages["b1"], "draft.txt", b"not forked")
    with django_capture_on_commit_callbacks(execute=True):
        assert thread_purge(thread=thread) == {"messages": 6, "files": 1}
    assert not default_storage.exists(only_here.file.name)
    copy = ChatAttachment.objects.get(thread_id=body["id"])
    download = api.get(copy.url)
    assert download.status_code == 200 and b"".join(download.streaming_content) == b"day one"


def test_fork_refusals(api, other_api, tree, user):
    thread, messages = tree
    payload = {"message_id": str(messages["a1"].pk)}
    assert other_api.post(fork_url(thread.pk), payload, format="json").status_code == 404
    response = api.post(fork_url(thread.pk), {**payload, "mode": "everything"}, format="json")
    assert response.status_code == 400 and "mode" in response.json()
    elsewhere = make_message(make_thread(user), "x")
    response = api.post(fork_url(thread.pk), {"message_id": str(elsewhere.pk)}, format="json")
    assert response.status_code == 404 and response.json() == {"detail": "Message not found in this thread."}
    assert api.post(fork_url(thread.pk), {}, format="json").status_code == 400
    assert ChatThread.objects.filter(owner=user).count() == 2


def test_visualization_nodes(api, other_api, tree, django_assert_max_num_queries):
    thread, messages = tree
    make_message(thread, "**Bold** `code`\n\n# Title " + "x" * 300, parent_id=messages["a2"].pk)
    with django_assert_max_num_queries(3):  # token, thread, nodes
        response = api.get(tree_url(thread.pk))
    assert response.status_code == 200
    body = response.json()
    active = ChatThread.objects.get(pk=thread.pk).active_leaf_id
    assert body["thread"] == str(thread.pk) and body["active_leaf"] == str(active)
    nodes = {n["preview"][:20]: n for n in body["nodes"]}
    assert len(body["nodes"]) == 7
    root = nodes["root question"]
    assert root["parent"] is None and root["role"] == "user" and root["children"] == 2 and root["on_active_path"]
    assert not nodes["other answer"]["on_active_path"] and nodes["other answer"]["parent"] == str(messages["root"].pk)
    assert not nodes["edited follow-up"]["on_active_path"]
    last = body["nodes"][-1]
    assert last["preview"].startswith("Bold code Title xxx") and len(last["preview"]) == 120
    assert last["on_active_path"] and last["type"] == "text" and last["created_at"].endswith("Z")
    assert other_api.get(tree_url(thread.pk)).status_code == 404
    assert api.get(tree_url(uuid.uuid4())).status_code == 404


def test_visualization_of_an_empty_thread(api, user):
    thread = make_thread(user)
    assert api.get(tree_url(thread.pk)).json() == {"thread": str(thread.pk), "active_leaf": None, "nodes": []}

"""Conversations as trees: parents on send, the active leaf, paths, switching branch."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse

from chatproject.errors import NotFound
from messaging.models import ChatMessage
from messaging.selectors import active_leaf_for, message_path
from messaging.services import message_send
from messaging.tests.factories import make_attachment, make_message
from threads.models import ChatThread
from threads.tests.factories import make_thread
from threads.tree import newest_leaf, path_to

pytestmark = pytest.mark.django_db


def messages_url(thread_id) -> str:
    return reverse("message-list", kwargs={"thread_id": thread_id})


def thread_url(thread_id) -> str:
    return reverse("thread-detail", kwargs={"thread_id": thread_id})


def fresh(thread: ChatThread) -> ChatThread:
    return ChatThread.objects.get(pk=thread.pk)


def test_path_and_newest_leaf_over_plain_pairs():
    pairs = [("a", None), ("b", "a"), ("c", "b"), ("d", "a"), ("e", "d"), ("f", "b"), ("z", None)]
    assert path_to(pairs, "e") == ["a", "d", "e"]
    assert path_to(pairs, "missing") == []
    # The newest message under a node, wherever it is below it.
    assert newest_leaf(pairs, "a") == "f"
    assert newest_leaf(pairs, "d") == "e"
    assert newest_leaf(pairs, "c") == "c"
    assert newest_leaf(pairs, "z") == "z"


@pytest.fixture
def post(api, django_capture_on_commit_callbacks):
    """POST a message and run what its commit sets off (the agent's reply, inline in tests)."""

    def post(thread, payload):
        with django_capture_on_commit_callbacks(execute=True):
            response = api.post(messages_url(thread.pk), payload, format="json")
        assert response.status_code == 201, response.json()
        return response.json()

    return post


def test_sends_without_parent_continue_the_active_branch_and_replies_answer_them(post, user):
    thread = make_thread(user)
    first = post(thread, {"content": "what is 2 plus 2?"})
    # The reply runs inline in tests: its parent is the question, and it becomes the active leaf.
    reply = ChatMessage.objects.get(thread=thread, role="ai")
    assert first["parent"] is None and reply.parent_id == uuid.UUID(first["id"])
    assert fresh(thread).active_leaf_id == reply.pk
    second = post(thread, {"content": "and 3 plus 3?"})
    assert second["parent"] == str(reply.pk)
    second_reply = ChatMessage.objects.get(parent_id=second["id"])
    assert fresh(thread).active_leaf_id == second_reply.pk
    assert [m.pk for m in message_path(thread=fresh(thread))] == [
        uuid.UUID(first["id"]),
        reply.pk,
        uuid.UUID(second["id"]),
        second_reply.pk,
    ]


def test_an_edit_branches_from_the_parent_and_keeps_the_original(post, user):
    thread = make_thread(user)
    first = post(thread, {"content": "2 plus 2"})
    second = post(thread, {"content": "3 plus 3"})
    edit = post(thread, {"content": "4 plus 4", "parent": second["parent"]})
    assert edit["parent"] == second["parent"]
    assert edit["sibling_ids"] == [second["id"], edit["id"]]
    path = message_path(thread=fresh(thread))
    assert [m.content for m in path] == ["2 plus 2", "2 plus 2 = **4**", "4 plus 4", "4 plus 4 = **8**"]
    # An edit of the first message is a second root; both roots are siblings.
    root_edit = post(thread, {"content": "5 plus 5", "parent": None})
    assert root_edit["parent"] is None and root_edit["sibling_ids"] == [first["id"], root_edit["id"]]
    assert [m.content for m in message_path(thread=fresh(thread))] == ["5 plus 5", "5 plus 5 = **10**"]
    assert ChatMessage.objects.filter(thread=thread).count() == 8


def test_parent_must_be_a_message_of_the_thread(api, user):
    thread, other = make_thread(user), make_thread(user)
    foreign = make_message(other, "elsewhere")
    response = api.post(messages_url(thread.pk), {"content": "hi", "parent": str(foreign.pk)}, format="json")
    assert (response.status_code, response.json()["detail"]) == (404, "Parent message not found in this thread.")
    assert not ChatMessage.objects.filter(thread=thread).exists()


def test_a_reply_finishing_on_a_branch_the_user_left_does_not_pull_them_back(user):
    from messaging.services import stream_finish, stream_start

    thread = make_thread(user)
    question = make_message(thread, "q1")
    stream = stream_start(reply_to=question)
    other = make_message(thread, "q2", parent_id=None)  # the user went elsewhere meanwhile
    stream_finish(stream=stream, status="complete", content="answer")
    assert fresh(thread).active_leaf_id == other.pk


def test_message_path_and_active_leaf_for(user, other_user):
    thread = make_thread(user)
    root = make_message(thread, "root")
    a = make_message(thread, "a", role="ai")
    make_message(thread, "b", parent_id=root.pk)
    b_child = make_message(thread, "b child")
    assert [m.content for m in message_path(thread=fresh(thread))] == ["root", "b", "b child"]
    assert [m.content for m in message_path(thread=thread, leaf=a)] == ["root", "a"]
    assert active_leaf_for(thread=thread, message=root) == b_child
    assert active_leaf_for(thread=thread, message=a) == a
    assert message_path(thread=make_thread(user)) == []
    with pytest.raises(NotFound):
        message_path(thread=make_thread(other_user), leaf=a)


def test_path_costs_the_same_queries_whatever_its_length(user, django_assert_num_queries):
    thread = make_thread(user)
    for n in range(30):
        make_message(thread, f"m{n}")
    thread = fresh(thread)
    # pairs, messages, attachments
    with django_assert_num_queries(3):
        assert len(message_path(thread=thread)) == 30


def test_list_reads_the_active_path_or_a_leafs_path(api, user, django_assert_max_num_queries):
    thread = make_thread(user)
    root = make_message(thread, "root")
    old = make_message(thread, "old")
    new = make_message(thread, "new", parent_id=root.pk)
    everything = api.get(messages_url(thread.pk)).json()["results"]
    assert [m["content"] for m in everything] == ["root", "old", "new"]
    assert everything[0]["children_count"] == 2 and everything[1]["sibling_ids"] == [str(old.pk), str(new.pk)]
    with django_assert_max_num_queries(9):
        active = api.get(messages_url(thread.pk), {"path": "active"}).json()["results"]
    assert [m["content"] for m in active] == ["root", "new"]
    by_leaf = api.get(messages_url(thread.pk), {"leaf": str(old.pk)}).json()["results"]
    assert [m["content"] for m in by_leaf] == ["root", "old"]
    assert api.get(messages_url(thread.pk), {"leaf": str(uuid.uuid4())}).status_code == 404
    assert api.get(messages_url(thread.pk), {"path": "all"}).status_code == 400


@pytest.mark.parametrize("page_size", [1, 10, 200])
@pytest.mark.parametrize("branch", ["path", "leaf"])
def test_a_branch_page_costs_the_same_queries_whatever_its_size(
    api, user, branch, page_size, django_assert_num_queries
):
    thread = make_thread(user)
    root = make_message(thread, "root")
    make_message(thread, "a sibling branch", parent_id=None)
    make_message(thread, "its reply", role="ai", parent_id=root.pk)
    for n in range(12):
        make_attachment(make_message(thread, f"m{n}"), f"f{n}.txt")
    leaf = fresh(thread).active_leaf_id
    params = {"path": "active"} if branch == "path" else {"leaf": str(leaf)}
    # token, thread, (the leaf), the tree's (id, parent) pairs, the page, attachments, children counts, siblings
    with django_assert_num_queries(7 if branch == "path" else 8):
        response = api.get(messages_url(thread.pk), {**params, "page_size": page_size})
    results = response.json()["results"]
    assert len(results) == min(page_size, 14) and results[0]["content"] == "root"


def test_patch_active_leaf_switches_to_the_newest_message_under_it(api, other_api, user):
    thread = make_thread(user)
    root = make_message(thread, "root")
    first_answer = make_message(thread, "first", role="ai")
    make_message(thread, "second", role="ai", parent_id=root.pk)
    follow_up = make_message(thread, "follow-up", parent_id=first_answer.pk)
    response = api.patch(thread_url(thread.pk), {"active_leaf": str(first_answer.pk)}, format="json")
    assert response.status_code == 200 and response.json()["active_leaf"] == str(follow_up.pk)
    assert fresh(thread).active_leaf_id == follow_up.pk
    # The next send continues the branch switched to.
    message, _ = message_send(thread=fresh(thread), sender=user, content="hello")
    assert message.parent_id == follow_up.pk
    bad = api.patch(thread_url(thread.pk), {"active_leaf": str(uuid.uuid4())}, format="json")
    assert (bad.status_code, bad.json()["detail"]) == (404, "Message not found in this thread.")
    malformed = api.patch(thread_url(thread.pk), {"active_leaf": "not-an-id"}, format="json")
    assert malformed.status_code == 400 and "active_leaf" in malformed.json()
    assert other_api.patch(thread_url(thread.pk), {"active_leaf": str(root.pk)}, format="json").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_the_data_migration_gives_existing_messages_parents():
    executor = MigrationExecutor(connection)
    before = [("messaging", "0003_awaiting_reply"), ("threads", "0001_initial")]
    executor.migrate(before)
    apps = executor.loader.project_state(before).apps
    User = apps.get_model("auth", "User")
    Thread = apps.get_model("threads", "ChatThread")
    Message = apps.get_model("messaging", "ChatMessage")
    Stream = apps.get_model("messaging", "ReplyStream")
    owner = User.objects.create(username="old")
    thread = Thread.objects.create(owner=owner, title="old")
    Thread.objects.create(owner=owner, title="empty")
    q1 = Message.objects.create(thread=thread, role="user", content="q1", sender=owner)
    a1 = Message.objects.create(thread=thread, role="ai", content="a1", parent=q1)
    q2 = Message.objects.create(thread=thread, role="user", content="q2", sender=owner)
    q3 = Message.objects.create(thread=thread, role="user", content="q3", sender=owner)
    # Two questions in a row: the reply to the first came after both, without a parent.
    a2 = Message.objects.create(thread=thread, role="ai", content="a2")
    Stream.objects.create(thread=thread, reply_to=q2, message=a2, status="complete", heartbeat_at="2026-01-01T00:00Z")
    a3 = Message.objects.create(thread=thread, role="ai", content="a3")

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    parents = dict(ChatMessage.objects.filter(thread_id=thread.pk).values_list("content", "parent_id"))
    assert parents == {"q1": None, "a1": q1.pk, "q2": a1.pk, "q3": q2.pk, "a2": q2.pk, "a3": q3.pk}
    assert ChatThread.objects.get(pk=thread.pk).active_leaf_id == a3.pk
    assert ChatThread.objects.get(title="empty").active_leaf_id is None

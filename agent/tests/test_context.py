import pytest

from agent.context import gather, title_for, update_thread_after_reply
from agent.memory import memory_add
from agent.services import reply_to_message
from messaging.models import ChatMessage
from messaging.tests.factories import make_attachment, make_message
from threads.services import thread_delete
from threads.tests.factories import make_thread

pytestmark = pytest.mark.django_db


def test_history_keeps_the_newest_turns_within_the_budget(user, settings):
    settings.AGENT_HISTORY_CHARS = 60
    thread = make_thread(user)
    for n in range(5):
        make_message(thread, f"question number {n}")
        make_message(thread, f"answer number {n}", role="ai")
    question = make_message(thread, "and now?")
    assert gather(question).history == "User: question number 4\nAssistant: answer number 4"


def test_memories_come_from_the_users_other_threads_only(user, other_user):
    memory_add(make_message(make_thread(user, "Garden"), "The tomatoes need staking this weekend."))
    memory_add(make_message(make_thread(other_user, "Bob"), "My tomatoes are doing great."))
    current = make_thread(user, "Now")
    memory_add(make_message(current, "Tomatoes again, in this thread."))
    deleted = make_thread(user, "Old")
    memory_add(make_message(deleted, "Tomatoes in a deleted thread."))
    thread_delete(thread=deleted)
    context = gather(make_message(current, "what about the tomatoes?"))
    assert context.memories.endswith("“Garden”) The tomatoes need staking this weekend.")
    assert context.memories.count("\n") == 0


def test_file_messages_name_their_attachments_and_tools_get_the_files(user):
    thread = make_thread(user)
    upload = make_message(thread, "here you go", type=ChatMessage.Type.FILE)
    make_attachment(upload, "notes.txt", b"hello")
    context = gather(make_message(thread, "summarize this file"))
    assert context.history == "User: [Attached file: notes.txt (text/plain, 5 bytes)] here you go"
    (attachment,) = context.tools.attachments
    assert (attachment.filename, attachment.size) == ("notes.txt", 5)
    assert context.tools.user_id == user.pk and context.memories == "(none)"


def test_tools_see_only_the_branch_being_answered(user):
    """Files and memory hits of a branch the user left never reach the agent; the branch's own
    (and other threads') do."""
    thread = make_thread(user)
    root = make_message(thread, "Let us plan the garden.")
    left = make_message(thread, "the old plan", type=ChatMessage.Type.FILE)
    make_attachment(left, "old-plan.txt", b"roses")
    memory_add(make_message(thread, "The gate code is 4711.", parent_id=left.pk))
    kept = make_message(thread, "the new plan", type=ChatMessage.Type.FILE, parent_id=root.pk)
    make_attachment(kept, "new-plan.txt", b"tulips")
    memory_add(make_message(thread, "The gate by the shed is blue."))
    memory_add(make_message(make_thread(user, "Work"), "The gate at work is red."))
    context = gather(make_message(thread, "what is in the file?"))
    assert [a.filename for a in context.tools.attachments] == ["new-plan.txt"]
    assert context.tools.memory_search is not None
    found = {hit["snippet"] for hit in context.tools.memory_search("gate", 10)}
    assert found == {"The gate by the shed is blue.", "The gate at work is red."}


def test_the_first_exchange_titles_an_untitled_thread_and_keeps_a_summary(user):
    thread = make_thread(user, title="")
    reply_to_message(make_message(thread, "Plan my weekend trip to the mountains near Grenoble please").pk)
    thread.refresh_from_db()
    assert thread.title == "Plan my weekend trip to the mountains near…"
    assert thread.summary == "Plan my weekend trip to the mountains near Grenoble please"
    reply_to_message(make_message(thread, "Also book a hut, what is 2 plus 2?").pk)
    thread.refresh_from_db()
    assert thread.title == "Plan my weekend trip to the mountains near…"  # kept once set
    assert "book a hut" in thread.summary


def test_a_title_the_user_chose_is_kept(user):
    thread = make_thread(user, title="Mine")
    message = make_message(thread, "something else entirely")
    update_thread_after_reply(message)
    thread.refresh_from_db()
    assert thread.title == "Mine"


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ("Short one", "Short one"),
        ("one two three four five six seven eight nine", "one two three four five six seven eight…"),
        ("x" * 100, "x" * 59 + "…"),
    ],
)
def test_title_for(text, title):
    assert title_for(text) == title


def test_a_long_path_loads_only_the_turns_the_history_holds(user):
    """A 300-message path: the agent's context loads its last turns as objects (the history), its
    ids for the memory search and its files (the first message's too), never the whole path."""
    from django.db.models.signals import post_init

    from agent.context import HISTORY_TURNS

    thread = make_thread(user)
    first = make_message(thread, "the plan", type=ChatMessage.Type.FILE)
    make_attachment(first, "plan.txt", b"the plan")
    for n in range(300):
        make_message(thread, f"turn {n}")
    question = make_message(thread, "what was the plan?")
    loaded: list[ChatMessage] = []

    def count(sender, instance, **kwargs):
        loaded.append(instance)

    post_init.connect(count, sender=ChatMessage)
    try:
        context = gather(ChatMessage.objects.select_related("thread").get(pk=question.pk))
    finally:
        post_init.disconnect(count, sender=ChatMessage)
    assert len(loaded) <= HISTORY_TURNS + 5
    assert context.history.startswith("User: turn 250\n") and context.history.endswith("User: turn 299")
    assert [a.filename for a in context.tools.attachments] == ["plan.txt"]

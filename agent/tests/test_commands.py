"""The agent's commands: ask, chat, agent_tools, memory_search, rebuild_memory's progress."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from agent.memory import memory_add
from messaging.models import ChatMessage, ReplyStream
from messaging.tests.factories import make_message
from threads.models import ChatThread
from threads.tests.factories import make_thread

pytestmark = pytest.mark.django_db


def run(*args, stdin=None, **options):
    out, err = io.StringIO(), io.StringIO()
    if stdin is not None:
        options["stdin"] = io.StringIO(stdin)
    call_command(*args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def test_ask_streams_the_reply_and_stores_both_messages_like_a_sent_message(user):
    out, err = run("ask", "--user", user.username, "what is 6 times 7?")
    assert "6 times 7 = **42**" in out
    assert "[tool] calculator" in out  # the tool step, on its own line
    [thread] = ChatThread.objects.filter(owner=user)
    assert f"thread {thread.pk}" in err
    question = ChatMessage.objects.get(thread=thread, role="user")
    answer = ChatMessage.objects.get(thread=thread, role="ai")
    assert (question.role, question.sender, question.content, question.awaiting_reply) == (
        "user",
        user,
        "what is 6 times 7?",
        False,
    )
    assert (answer.role, answer.parent_id, answer.content) == ("ai", question.pk, "6 times 7 = **42**")
    stream = ReplyStream.objects.get(reply_to=question)
    assert stream.status == "complete" and answer.metadata["stream_id"] == str(stream.pk)
    thread.refresh_from_db()
    assert thread.active_leaf_id == answer.pk and thread.title  # titled after the first exchange
    assert question.memory_entry is not None  # remembered, as any message sent


class WatchedOutput(io.StringIO):
    """Notes, for each piece written, whether the reply (the AI message) was stored by then."""

    def __init__(self) -> None:
        super().__init__()
        self.pieces: list[tuple[str, bool]] = []

    def write(self, text: str) -> int:
        if text.strip():
            self.pieces.append((text, ChatMessage.objects.filter(role="ai").exists()))
        return super().write(text)


def test_ask_prints_the_reply_while_it_is_produced(user, settings):
    # Words a few milliseconds apart: an instant model's words arrive together, as one piece.
    settings.AGENT_OFFLINE_WORD_DELAY_MS = 10
    out = WatchedOutput()
    call_command("ask", "--user", user.username, "what is 6 times 7?", stdout=out, stderr=io.StringIO())
    before_stored = [text for text, stored in out.pieces if not stored]
    # Word by word as the model produces it, all of it before the reply is stored (at its end).
    assert "6 times 7 = **42**" in "".join(before_stored)
    assert len([text for text in before_stored if "[tool]" not in text]) > 3


def test_ask_continues_a_thread_and_refuses_someone_elses(user, other_user):
    thread = make_thread(user)
    make_message(thread, "earlier")
    run("ask", "--user", user.username, "--thread", str(thread.pk), "2+2")
    assert ChatMessage.objects.filter(thread=thread).count() == 3
    with pytest.raises(CommandError) as refused:
        run("ask", "--user", other_user.username, "--thread", str(thread.pk), "mine?")
    assert refused.value.returncode == 2
    assert ChatMessage.objects.filter(thread=thread).count() == 3


def test_ask_needs_a_user_when_there_are_several(user, other_user):
    with pytest.raises(CommandError) as error:
        run("ask", "hello")
    assert error.value.returncode == 2 and "--user" in str(error.value)


def test_ask_exits_1_when_the_reply_is_an_error(user, settings):
    settings.AGENT_REPLY_GENERATOR = "agent.tests.test_commands.failing_generator"
    with pytest.raises(CommandError) as error:
        run("ask", "--user", user.username, "hello")
    assert error.value.returncode == 1
    assert ChatMessage.objects.get(role="ai").type == "error"


def failing_generator(message):
    raise RuntimeError("the model is away")
    yield  # pragma: no cover


def test_chat_reads_stdin_with_new_threads_and_quit(user):
    script = "what is 6 times 7?\n/threads\n/new\nhello there\n/bogus\n/quit\nnever sent\n"
    out, err = run("chat", "--user", user.username, stdin=script)
    assert "6 times 7 = **42**" in out
    assert "Unknown command /bogus" in err
    threads = list(ChatThread.objects.filter(owner=user).order_by("created_at"))
    assert len(threads) == 2  # /new started the second
    assert [m.content for m in ChatMessage.objects.filter(thread=threads[1], role="user")] == ["hello there"]
    assert ChatMessage.objects.filter(thread=threads[1], role="ai").count() == 1
    assert str(threads[0].pk) in out  # /threads listed the first
    assert not ChatMessage.objects.filter(content="never sent").exists()
    assert out.rstrip().endswith("Bye.")


def test_chat_ends_at_end_of_input(user):
    thread = make_thread(user)
    out, _ = run("chat", "--user", user.username, "--thread", str(thread.pk), stdin="2+3\n")
    assert ChatMessage.objects.filter(thread=thread).count() == 2 and "Bye." in out


def test_agent_tools_lists_the_registry_with_descriptions():
    out, _ = run("agent_tools", "--json")
    tools = {tool["name"]: tool for tool in json.loads(out)}
    assert {"calculator", "run_python", "memory_search", "weather"} <= set(tools)
    assert "15% of 240" in tools["calculator"]["description"]
    table, _ = run("agent_tools")
    assert table.splitlines()[0] == "tool\targuments\tdescription"


def test_agent_tools_runs_one():
    out, _ = run("agent_tools", "--run", "calculator", "--input", '{"expression": "2^10"}', "--json")
    assert json.loads(out)["output"] == "2^10 = 1024"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--run", "nope"], "No tool 'nope'"),
        (["--run", "calculator", "--input", "{"], "not JSON"),
        (["--run", "calculator", "--input", "[]"], "JSON object"),
        (["--run", "calculator", "--input", '{"wrong": 1}'], "unexpected keyword"),
    ],
)
def test_agent_tools_refuses_bad_input_as_usage_errors(arguments, message):
    with pytest.raises(CommandError, match=message) as error:
        run("agent_tools", *arguments)
    assert error.value.returncode == 2


def test_memory_search_shows_bm25_hits_with_scores(user, other_user):
    thread = make_thread(user, title="Travel")
    for text in ("Planning a zeppelin trip to Oslo.", "Zeppelin zeppelin everywhere.", "Groceries list."):
        memory_add(make_message(thread, text))
    memory_add(make_message(make_thread(other_user), "My own zeppelin."))
    out, _ = run("memory_search", "--user", user.username, "zeppelin", "--json")
    hits = json.loads(out)
    assert [hit["snippet"] for hit in hits] == ["Zeppelin zeppelin everywhere.", "Planning a zeppelin trip to Oslo."]
    assert hits[0]["score"] > hits[1]["score"] > 0 and hits[0]["thread_title"] == "Travel"
    table, _ = run("memory_search", "--user", user.username, "zeppelin")
    assert "Zeppelin zeppelin everywhere." in table and f"{hits[0]['score']:.4f}" in table


def test_rebuild_memory_reports_progress_on_stderr(user):
    thread = make_thread(user)
    for n in range(5):
        make_message(thread, f"message {n}")
    out, err = run("rebuild_memory", "--batch-size", "2")
    assert out == "Rebuilt memory: 5 message(s) indexed.\n"
    assert err.splitlines()[-1] == "messages: 5/5"


class CtrlCAtThePrompt(io.StringIO):
    def readline(self, *args):
        raise KeyboardInterrupt


class CtrlCMidReply(io.StringIO):
    def write(self, text):
        if "times" in text:  # the answer has begun
            raise KeyboardInterrupt
        return super().write(text)


def test_ctrl_c_ends_chat_and_ask_with_status_130_not_a_traceback(user):
    with pytest.raises(CommandError, match="Interrupted") as error:
        call_command(
            "chat", "--user", user.username, stdin=CtrlCAtThePrompt(), stdout=io.StringIO(), stderr=io.StringIO()
        )
    assert error.value.returncode == 130
    with pytest.raises(CommandError, match="Interrupted") as error:
        call_command("ask", "--user", user.username, "what is 6 times 7?", stdout=CtrlCMidReply(), stderr=io.StringIO())
    assert error.value.returncode == 130
    # The reply cut short is left to the stale sweep (README, Commands), as a dead worker's is.
    assert ReplyStream.objects.get().status == "streaming" and not ChatMessage.objects.filter(role="ai").exists()

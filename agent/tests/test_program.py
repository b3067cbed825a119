"""The real-model path: dspy.LM over HTTP to a scripted OpenAI-compatible server on 127.0.0.1."""

import json
import time

import pytest

from agent.services import reply_to_message
from messaging.models import ReplyStream
from messaging.selectors import stream_chunk_list
from messaging.tests.factories import make_message
from threads.tests.factories import make_thread

from .fake_openai import FakeOpenAI, fields, step
from .local_http import LocalServer, Reply

# Transactional: the reply's heartbeat thread (its own connection) must see the stream row, or a
# reply slower than STREAM_HEARTBEAT_SECONDS (a loaded machine) would think it lost its stream.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_outside_network")]

ANSWER = "Six times seven is **42**."


@pytest.fixture
def hosted_model(settings):
    def use(server: LocalServer, retries: int = 0, timeout: int = 10) -> None:
        settings.AGENT_LM, settings.OPENAI_API_KEY = "openai/test-model", "sk-test"
        settings.AGENT_API_BASE = server.url + "/v1"
        settings.AGENT_MAX_RETRIES, settings.AGENT_TIMEOUT_SECONDS = retries, timeout

    return use


def test_tool_steps_then_a_streamed_answer(user, hosted_model):
    thread = make_thread(user)
    make_message(thread, "Earlier question about numbers.")
    question = make_message(thread, "what is 6 times 7?")
    model = FakeOpenAI(
        [step("calculator", {"expression": "6 times 7"})],
        fields(reasoning="The calculator said 42.", answer=ANSWER),
        piece=4,
        pause=0.06,
    )
    with model:
        hosted_model(model)
        answer = reply_to_message(question.pk)

    assert (answer.type, answer.content) == ("text", ANSWER)
    assert answer.metadata["model"] == "openai/test-model"
    trajectory = answer.metadata["trajectory"]
    assert trajectory["tool_name_0"] == "calculator" and trajectory["tool_args_0"] == {"expression": "6 times 7"}
    assert trajectory["observation_0"] == "6 times 7 = 42" and trajectory["tool_name_1"] == "finish"

    step_one, step_two, final = model.requests
    assert [r.json().get("stream", False) for r in model.requests] == [False, False, True]
    assert all(
        r.headers["authorization"] == "Bearer sk-test" and r.json()["model"] == "test-model" for r in model.requests
    )
    first_prompt = step_one.json()["messages"][-1]["content"]
    assert "what is 6 times 7?" in first_prompt and "User: Earlier question about numbers." in first_prompt
    # The tool's observation went back to the model.
    assert "6 times 7 = 42" in step_two.json()["messages"][-1]["content"]
    assert "6 times 7 = 42" in final.json()["messages"][-1]["content"]

    chunks = [delta for _, delta in stream_chunk_list(stream_id=ReplyStream.objects.get(reply_to=question).pk)]
    assert len(chunks) >= 3 and "".join(chunks) == ANSWER


def test_an_answer_sent_in_one_piece(user, hosted_model):
    question = make_message(make_thread(user), "hello")
    model = FakeOpenAI([], fields(reasoning="No tool needed.", answer="Hello! How can I help?"), piece=10_000)
    with model:
        hosted_model(model)
        answer = reply_to_message(question.pk)
    assert answer.content == "Hello! How can I help?"
    assert answer.metadata["trajectory"]["tool_name_0"] == "finish"
    assert stream_chunk_list(stream_id=ReplyStream.objects.get(reply_to=question).pk) == [(0, "Hello! How can I help?")]


def test_a_tool_called_with_bad_arguments_is_an_observation_not_a_failure(user, hosted_model):
    question = make_message(make_thread(user), "compute something")
    model = FakeOpenAI([step("calculator", {"wrong": 1})], fields(reasoning="The tool failed.", answer="Sorry."))
    with model:
        hosted_model(model)
        answer = reply_to_message(question.pk)
    assert answer.type == "text" and answer.content == "Sorry."
    assert "Execution error in calculator" in answer.metadata["trajectory"]["observation_0"]


def failed(question):
    stream = ReplyStream.objects.get(reply_to=question)
    assert stream.status == "error"
    return stream.message


def test_provider_errors_become_agent_errors_after_retries(user, hosted_model):
    question = make_message(make_thread(user), "what is 6 times 7?")
    broken = LocalServer(lambda request: Reply.json({"error": {"message": "upstream overloaded"}}, status=503))
    with broken:
        hosted_model(broken, retries=1)
        answer = reply_to_message(question.pk)
    assert answer == failed(question)
    assert answer.type == "error" and answer.role == "ai"
    assert answer.content.startswith("The agent failed: AgentError: The model failed:")
    assert answer.metadata["error"] == "AgentError"
    assert len(broken.requests) == 2  # the request and one retry


def test_a_bad_key_is_an_agent_error(user, hosted_model):
    question = make_message(make_thread(user), "hi")
    refusing = LocalServer(lambda request: Reply.json({"error": {"message": "Incorrect API key"}}, status=401))
    with refusing:
        hosted_model(refusing, retries=2)
        answer = reply_to_message(question.pk)
    assert answer.type == "error" and "The model failed" in answer.content


def test_a_model_that_does_not_answer_in_time_is_an_agent_error(user, hosted_model):
    question = make_message(make_thread(user), "hi")

    def slow(request):
        time.sleep(3)
        return Reply.json({})

    with LocalServer(slow) as server:
        hosted_model(server, timeout=1)
        answer = reply_to_message(question.pk)
    assert answer.type == "error" and "timed out" in answer.content, answer.content


def test_unreadable_model_output_is_an_agent_error(user, hosted_model):
    question = make_message(make_thread(user), "hi")
    model = FakeOpenAI(["I refuse to use your format."] * 5, "Neither here.")
    with model:
        hosted_model(model)
        answer = reply_to_message(question.pk)
    assert answer.type == "error" and answer.content.startswith("The agent failed: AgentError: The model failed:")


def test_a_model_string_litellm_does_not_know_is_an_agent_error(user, settings):
    settings.AGENT_LM = "no-such-provider/model"
    question = make_message(make_thread(user), "hi")
    answer = reply_to_message(question.pk)
    assert answer.type == "error"
    assert answer.content.startswith("The agent failed: AgentError: The model"), answer.content


def test_a_fact_said_only_on_a_sibling_branch_never_reaches_the_prompt(user, hosted_model):
    thread = make_thread(user)
    root = make_message(thread, "Let us talk about my cat.")
    make_message(thread, "My cat is called Zanzibar.", parent_id=root.pk)  # a branch the user left
    make_message(thread, "She likes fish.", parent_id=root.pk)
    question = make_message(thread, "What is my cat called?")
    model = FakeOpenAI([], fields(reasoning="Not said.", answer="You did not say."), piece=10_000)
    with model:
        hosted_model(model)
        reply_to_message(question.pk)
    prompts = " ".join(json.dumps(r.json()["messages"]) for r in model.requests)
    assert "Let us talk about my cat." in prompts and "She likes fish." in prompts
    assert "Zanzibar" not in prompts


def test_items_ready_at_once_are_taken_together():
    """A reply that fell behind finds several pieces waiting: it takes them all in one go (and
    so sends them as one chunk), and waits only when nothing is there."""
    import queue

    from agent.program import _take_ready

    ready: queue.SimpleQueue = queue.SimpleQueue()
    for item in ("a", "b", "c"):
        ready.put(item)
    assert _take_ready(ready) == ["a", "b", "c"]
    ready.put("d")
    assert _take_ready(ready) == ["d"]


def test_the_stream_bridge_keeps_order_and_raises_the_streams_error():
    import asyncio

    from agent.program import _ready_batches

    async def stream():
        for n in range(5):
            yield n
        await asyncio.sleep(0.05)
        yield 5
        raise ValueError("the model broke")

    taken: list = []

    def read_all() -> None:
        for batch in _ready_batches(stream()):
            assert batch  # never an empty batch
            taken.extend(batch)

    with pytest.raises(ValueError, match="the model broke"):
        read_all()
    assert taken == [0, 1, 2, 3, 4, 5]

"""The ReAct program is built once per process and model, and never carries one reply into another.

Replies go through the real path (``reply_to_message``: context, memory, tools, DSPy, LiteLLM over
HTTP) to a scripted OpenAI-compatible server that records every prompt it is sent.
"""

import functools
import threading
import time

import pytest

from agent import program as agent_program
from agent.memory import memory_add
from agent.services import reply_to_message
from agent.tools import ToolContext, build_tools
from chatproject.catalog import default_spec
from messaging.tests.factories import make_message
from threads.tests.factories import make_thread

from .fake_openai import FakeOpenAI, fields, finish, step
from .local_http import Reply, Request

# Transactional: replies run their heartbeat (and here a second reply) on other threads.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_outside_network")]

SECRET = "4711"


class MemoryThenAnswer(FakeOpenAI):
    """Each reply: a memory search for the locker code, then ``finish``, then an answer; decided by
    the prompt alone, so replies running at once each get their own script."""

    def __init__(self, pause: float = 0.0) -> None:
        super().__init__([], fields(reasoning="Looked it up.", answer="Done."), pause=pause)

    def reply(self, request: Request) -> Reply:
        body = request.json()
        if "next_tool_name" in body["messages"][0]["content"] and "observation_0" not in str(body["messages"]):
            self.steps = [step("memory_search", {"query": "locker code"})]
        else:
            self.steps = [finish()]
        return super().reply(request)


@pytest.fixture
def scripted(settings):
    def use(server: FakeOpenAI) -> None:
        settings.AGENT_LM, settings.OPENAI_API_KEY = "openai/scripted", "sk-test"
        settings.AGENT_API_BASE = server.api_base
        settings.AGENT_MAX_RETRIES = 0

    return use


@pytest.fixture(autouse=True)
def _fresh_programs():
    agent_program._programs.clear()
    yield
    agent_program._programs.clear()


def alice_and_bob(user, other_user):
    """Alice said her locker code in another thread (her memory) and in this one (its history);
    Bob asks the same question in his thread. Returns their questions."""
    memory_add(make_message(make_thread(user, "Gym"), f"My locker code is {SECRET}, remember it."))
    alice_thread = make_thread(user, "Alice asks")
    make_message(alice_thread, f"Also: the locker code {SECRET} opens the blue door.")
    alice = make_message(alice_thread, "Alice: what is my locker code?")
    memory_add(make_message(make_thread(other_user, "Bob's gym"), "My locker is number 12."))
    bob = make_message(make_thread(other_user, "Bob asks"), "Bob: what is my locker code?")
    return alice, bob


def prompts_of(server: FakeOpenAI, asker: str) -> list[str]:
    return [str(r.json()["messages"]) for r in server.requests if asker in str(r.json()["messages"])]


def check_no_leak(server: FakeOpenAI) -> None:
    alice = prompts_of(server, "Alice: what is my locker code?")
    bob = prompts_of(server, "Bob: what is my locker code?")
    assert len(alice) == 3 and len(bob) == 3  # the memory step, finish, the answer
    # Alice's code reached her prompts: in her history, her memories, and her memory tool's answer.
    assert all(SECRET in prompt for prompt in alice)
    assert "observation_0" in alice[1] and "From your earlier messages" in alice[1]
    # Nothing of Alice's reaches Bob's: his memory tool searched his own messages only.
    assert not any(SECRET in prompt or "blue door" in prompt for prompt in bob)
    assert "number 12" in bob[1]


def test_two_users_replies_in_a_row_share_the_program_but_not_the_context(user, other_user, scripted):
    alice, bob = alice_and_bob(user, other_user)
    with MemoryThenAnswer() as server:
        scripted(server)
        assert reply_to_message(alice.pk).content == "Done."
        [first] = agent_program._programs.values()
        assert reply_to_message(bob.pk).content == "Done."
        assert list(agent_program._programs.values()) == [first]  # the same object, not rebuilt
    check_no_leak(server)
    # The shared program keeps nothing of either reply.
    for module in [first, *(sub for _, sub in first.named_sub_modules())]:
        assert list(module.history) == []


def test_two_users_replies_at_once_keep_their_own_tools(user, other_user, scripted):
    alice, bob = alice_and_bob(user, other_user)
    results = {}
    with MemoryThenAnswer(pause=0.02) as server:
        scripted(server)
        barrier = threading.Barrier(2)

        def reply(name, message):
            from django.db import connection

            barrier.wait()
            try:
                results[name] = reply_to_message(message.pk).content
            finally:
                connection.close()

        runs = [threading.Thread(target=reply, args=pair) for pair in (("alice", alice), ("bob", bob))]
        for run in runs:
            run.start()
        for run in runs:
            run.join(60)
    assert results == {"alice": "Done.", "bob": "Done."}
    assert len(agent_program._programs) == 1
    check_no_leak(server)


def test_a_settings_or_model_change_builds_another_program(settings, scripted):
    tools = build_tools(ToolContext(user_id=1))
    offline = agent_program.program_for(default_spec(), tools)
    assert agent_program.program_for(default_spec(), build_tools(ToolContext(user_id=2))) is offline
    settings.AGENT_MAX_ITERS = 3
    fewer = agent_program.program_for(default_spec(), tools)
    assert fewer is not offline and fewer.max_iters == 3
    with MemoryThenAnswer() as server:
        scripted(server)
        hosted = agent_program.program_for(default_spec(), tools)
    assert hosted is not fewer and default_spec().model == "openai/scripted"
    # A different set of tools (another registry) is another program too.
    assert agent_program.program_for(default_spec(), {"calculator": tools["calculator"]}) is not hosted


def test_a_cached_tool_called_outside_a_reply_refuses(user):
    program = agent_program.program_for(default_spec(), build_tools(ToolContext(user_id=user.pk)))
    with pytest.raises(RuntimeError, match="outside a reply"):
        program.tools["calculator"](expression="1 + 1")


def test_offline_replies_reuse_one_program(user):
    thread = make_thread(user)
    for n in range(2):
        answer = reply_to_message(make_message(thread, f"what is {n} plus 1?").pk)
        assert answer.content.endswith(f"**{n + 1}**"), answer.content
    assert len(agent_program._programs) == 1


def test_more_replies_at_once_than_dspy_has_threads_all_finish():
    """Twelve offline replies run at once in one process (a thread-pool worker's case), each held
    inside its calculator step until all twelve are there: more than DSPy's default of 8 program
    threads. With DSPy's shared limiter left at 8 the last four never start (their wake-up comes
    from another reply's event loop) and the barrier breaks."""
    at_once = 12
    barrier = threading.Barrier(at_once, timeout=30)
    tools = build_tools(ToolContext())
    calculator = tools["calculator"]

    @functools.wraps(calculator)
    def held_calculator(*args, **kwargs):
        barrier.wait()
        return calculator(*args, **kwargs)

    tools = {**tools, "calculator": held_calculator}
    answers: dict[int, str] = {}

    def reply(number: int) -> None:
        for kind, value in agent_program.run_program(
            tools=tools, history="", memories="", message=f"what is {number} plus 1?", model=default_spec()
        ):
            if kind == "result":
                answers[number] = str(value.answer)

    threads = [threading.Thread(target=reply, args=(n,), daemon=True) for n in range(at_once)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    assert not barrier.broken
    assert sorted(answers) == list(range(at_once))
    assert all(answers[n].endswith(f"**{n + 1}**") for n in range(at_once)), answers

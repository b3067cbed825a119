"""A thread's model and custom instructions over WebSocket: the thread's chosen model answers a
message sent over the socket, with the thread's instructions (never another user's) in its prompt;
the reply's message says which model wrote it, and a model no longer offered falls back to the
default with a ``stream_status`` saying so."""

import pytest
from asgiref.sync import sync_to_async

from chatproject.catalog import ModelSpec
from messaging.tests.test_consumers import connect, ready, receive_until
from threads.services import preferences_update
from threads.tests.factories import make_thread, make_user

from .fake_openai import FakeOpenAI, fields, step

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


async def test_over_websocket_the_reply_says_its_model_and_a_removed_one_falls_back(settings):
    settings.ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]
    alice = await sync_to_async(make_user)("alice")
    thread = await sync_to_async(make_thread)(alice, model="retired")
    client = await connect(alice, thread)
    await ready(client)
    await client.send_json_to({"type": "message", "content": "what is 6 times 7?", "client_id": "m1"})
    events = await receive_until(client, "stream_end")
    statuses = [e for e in events if e["type"] == "stream_status"]
    assert statuses[0]["step"] == "model_fallback" and statuses[0]["error"] == "unknown_model"
    assert statuses[0]["message"] == "The model 'retired' is not available any more; this thread now uses 'offline'."
    end = events[-1]
    assert end["message"]["content"] == "6 times 7 = **42**"
    assert end["message"]["metadata"]["model"] == "offline"
    await client.disconnect()


async def test_over_websocket_the_chosen_model_answers_with_the_threads_instructions(settings):
    settings.ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]
    settings.OPENAI_API_KEY = "sk-test"
    alice = await sync_to_async(make_user)("alice")
    bob = await sync_to_async(make_user)("bob")
    await sync_to_async(preferences_update)(user=alice, instructions="Always answer like a pirate.")
    await sync_to_async(preferences_update)(user=bob, instructions="Reveal Bob's secret plan.")
    with FakeOpenAI([step("finish", {})], fields(reasoning="r", answer="Answered in haiku.")) as model:
        settings.AGENT_MODELS = {
            **settings.AGENT_MODELS,
            "hosted": ModelSpec("hosted", "openai/hosted-1", api_base=model.api_base, api_key_env="OPENAI_API_KEY"),
        }
        thread = await sync_to_async(make_thread)(alice, model="hosted", instructions="Answer in haiku.")
        client = await connect(alice, thread)
        await ready(client)
        await client.send_json_to({"type": "message", "content": "hello", "client_id": "m1"})
        events = await receive_until(client, "stream_end", timeout=15)
        await client.disconnect()
    end = events[-1]
    assert end["status"] == "complete" and end["message"]["content"] == "Answered in haiku."
    assert end["message"]["metadata"]["model"] == "hosted"
    prompts = [r.json()["messages"][-1]["content"] for r in model.requests]
    assert prompts and all(r.json()["model"] == "hosted-1" for r in model.requests)
    assert all("Answer in haiku." in p and "pirate" not in p and "Bob" not in p for p in prompts)

"""A thread's model over WebSocket: the reply's message says which model wrote it, and a model no
longer offered falls back to the default with a ``stream_status`` saying so."""

import pytest
from asgiref.sync import sync_to_async

from messaging.tests.test_consumers import connect, ready, receive_until
from threads.tests.factories import make_thread, make_user

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

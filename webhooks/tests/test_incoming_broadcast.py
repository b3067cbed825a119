"""An incoming webhook's message reaches the thread's open pages (the WebSocket), as any sent
message does: through the project's real ASGI stack and channel layer."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from asgiref.sync import sync_to_async
from rest_framework.test import APIClient
from standardwebhooks.webhooks import Webhook as StandardWebhook

from messaging.tests.test_consumers import connect, ready, receive_until
from threads.tests.factories import make_thread, make_user
from webhooks.services import incoming_endpoint_create

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


def signed_post(endpoint, content: str):
    body = json.dumps({"content": content, "reply": False})
    at = datetime.now(tz=UTC)
    return APIClient().generic(
        "POST",
        f"/api/webhooks/incoming/{endpoint.pk}/",
        body,
        content_type="application/json",
        HTTP_WEBHOOK_ID="msg_broadcast",
        HTTP_WEBHOOK_TIMESTAMP=str(int(at.timestamp())),
        HTTP_WEBHOOK_SIGNATURE=StandardWebhook(endpoint.secret).sign("msg_broadcast", at, body),
    )


async def test_an_incoming_message_is_shown_in_the_threads_open_pages(settings):
    settings.ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]
    owner = await sync_to_async(make_user)("alice")
    thread = await sync_to_async(make_thread)(owner)
    endpoint = await sync_to_async(incoming_endpoint_create)(owner=owner, thread_id=thread.pk)
    page = await connect(owner, thread)
    try:
        await ready(page)
        response = await sync_to_async(signed_post)(endpoint, "Build 42 failed")
        assert response.status_code == 202, response.json()
        shown = (await receive_until(page, "message"))[-1]["message"]
        assert shown["id"] == response.json()["message"] and shown["content"] == "Build 42 failed"
    finally:
        await page.disconnect()

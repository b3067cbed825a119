"""The periodic sweeps where no Celery beat runs: a thread of the server on the embedded default.

A reply whose worker died while nobody had its thread open, and a stored message whose reply never
started, are both seen to by the server itself. (On the production stack Celery beat sends the
same tasks: see test_redis_options and test_faults.)
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from datetime import timedelta

import pytest
from django.utils import timezone

from chatproject.periodic import run_periodic_tasks
from chatproject.testing import Stack
from messaging.models import ChatMessage, ReplyStream
from messaging.services import message_send, stream_append, stream_start
from threads.tests.factories import make_thread

# Made in a process of its own that then exits: the worker of this stream is gone for good, and
# the other message was stored (in the reply outbox) but its reply was never queued.
ORPHANS = """
from datetime import timedelta
from django.contrib.auth import get_user_model
from django.utils import timezone
from messaging.models import ChatMessage, ReplyStream
from messaging.services import message_create, stream_append, stream_start
from threads.models import ChatThread
thread = ChatThread.objects.get(owner=get_user_model().objects.get(username="user0"))
def stored(content):
    message = message_create(thread=thread, role="user", sender=thread.owner, content=content, awaiting_reply=True)
    ChatMessage.objects.filter(pk=message.pk).update(created_at=timezone.now() - timedelta(seconds=60))
    return message
stream = stream_start(reply_to=stored("uppercase: a reply cut short"))
stream_append(stream=stream, delta="A REPLY")
ReplyStream.objects.filter(pk=stream.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=60))
stored("what is 2 plus 5?")
"""


@pytest.mark.django_db
def test_one_run_sweeps_stale_streams_and_unanswered_messages(settings):
    settings.STREAM_STALE_SECONDS = 10
    thread = make_thread()
    dead, _ = message_send(thread=thread, sender=thread.owner, content="q")
    stream = stream_start(reply_to=dead)
    stream_append(stream=stream, delta="half")
    ReplyStream.objects.filter(pk=stream.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=11))
    lost, _ = message_send(thread=thread, sender=thread.owner, content="what is 2 plus 5?")
    ChatMessage.objects.filter(pk=lost.pk).update(created_at=timezone.now() - timedelta(seconds=11))
    run_periodic_tasks()
    stream.refresh_from_db()
    assert stream.status == "interrupted" and stream.message.content == "half"
    assert ChatMessage.objects.get(parent=lost, role="ai").content == "2 plus 5 = **7**"


@pytest.mark.skipif(bool(os.environ.get("REDIS_URL")), reason="the embedded default's thread; beat is in test_faults")
def test_the_embedded_server_sweeps_with_no_client_connected(tmp_path):
    env = {"STREAM_STALE_SECONDS": "2", "SWEEP_INTERVAL_SECONDS": "1", "AGENT_OFFLINE_WORD_DELAY_MS": "0"}
    with Stack(tmp_path, redis=False, env=env) as stack:  # its health check starts the thread
        user = stack.create_users(1)[0]
        stack.manage("shell", "-c", ORPHANS)
        thread = user["threads"][0]
        request = urllib.request.Request(
            stack.http_url(0, f"/api/threads/{thread}/messages/"), headers={"Authorization": f"Token {user['token']}"}
        )
        deadline = time.monotonic() + 20
        while True:
            with urllib.request.urlopen(request, timeout=10) as response:
                replies = [m for m in json.load(response)["results"] if m["role"] == "ai"]
            by_status = {m["metadata"].get("stream_status"): m["content"] for m in replies}
            if len(replies) == 2:
                break
            assert time.monotonic() < deadline, f"not swept: {replies}\n{stack.logs_text()}"
            time.sleep(0.3)
        assert by_status == {"interrupted": "A REPLY", "complete": "2 plus 5 = **7**"}

"""A background import on a real Celery worker (the PostgreSQL + Redis run): the upload is kept
by the server, read by the task in another process, and its progress and result are read over
HTTP, as the import page does."""

from __future__ import annotations

import json
import os
import time
import urllib.request
import uuid

import pytest

from chatproject.testing import Stack
from exports.tests.fixtures import open_webui_chat

pytestmark = pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis (a broker and a worker)")


def call(stack: Stack, user: dict, path: str, *, file: bytes | None = None) -> tuple[int, dict]:
    headers = {"Authorization": f"Token {user['token']}"}
    body = None
    if file is not None:
        boundary = uuid.uuid4().hex
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="export.json"\r\n'
                f"Content-Type: application/json\r\n\r\n"
            ).encode()
            + file
            + f"\r\n--{boundary}--\r\n".encode()
        )
        headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
    request = urllib.request.Request(stack.http_url(0, path), data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.load(response)


def test_a_large_import_runs_on_a_real_worker(tmp_path):
    with Stack(tmp_path, env={"IMPORT_BACKGROUND_MESSAGES": "5"}, worker_concurrency=1) as stack:
        [user] = stack.create_users(1, threads_each=0)
        data = [open_webui_chat("Recipes"), open_webui_chat("Soups"), {"title": "broken", "chat": "oops"}]
        status, started = call(stack, user, "/api/import/", file=json.dumps(data).encode())
        assert status == 202, started
        job_id = started["job"]["id"]
        deadline = time.monotonic() + 30
        while (job := call(stack, user, f"/api/import/jobs/{job_id}/")[1])["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, f"the job did not end: {job}\n{stack.logs_text()}"
            time.sleep(0.2)
        assert job["status"] == "done", job
        assert [i["title"] for i in job["imported"]] == ["Recipes", "Soups"]
        assert job["skipped"] == [{"index": 2, "title": "broken", "reason": "a chat must be an object with a history"}]
        assert job["conversations_done"] == 3
        assert call(stack, user, "/api/import/jobs/")[1]["count"] == 1
        assert call(stack, user, "/api/threads/")[1]["count"] == 2
        # A small file is imported in the request, whatever the worker.
        status, result = call(stack, user, "/api/import/", file=json.dumps([open_webui_chat("Small")]).encode())
        assert status == 201 and result["imported"][0]["messages"] == 4

"""Profiling on the production stack: a real Daphne server records itself and finds a real Celery
worker (a process it did not start) through Celery, on a redis-server of the test's own."""

from __future__ import annotations

import json
import time

import pytest
import requests

from .conftest import flamegraph_frames, speedscope_frames

STAFF = (
    "import json\n"
    "from django.contrib.auth import get_user_model\n"
    "from rest_framework.authtoken.models import Token\n"
    "user = get_user_model().objects.create_user(username='ops', password='x', is_staff=True)\n"
    "print('TOKEN=' + Token.objects.create(user=user).key)\n"
)


def record(stack, token: str, body: dict) -> tuple[dict, bytes]:
    headers = {"Authorization": f"Token {token}"}
    response = requests.post(stack.http_url(0, "/api/profiling/"), json=body, headers=headers, timeout=60)
    assert response.status_code == 202, response.text
    profile = response.json()
    deadline = time.monotonic() + 90
    while profile["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.3)
        profile = requests.get(
            stack.http_url(0, f"/api/profiling/{profile['id']}/"), headers=headers, timeout=10
        ).json()
    assert profile["status"] == "done", (profile, stack.logs_text())
    data = requests.get(stack.http_url(0, profile["data_url"]), headers=headers, timeout=10)
    assert data.status_code == 200
    return profile, data.content


def test_the_web_server_and_the_celery_worker(settings, tmp_path):
    if not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL: on the embedded default the worker is the web process (test_profiling)")
    from chatproject.testing import Stack

    with Stack(tmp_path, servers=1, env={"CODE_SANDBOX": "off"}, worker_concurrency=2) as stack:
        output = stack.manage("shell", "-c", STAFF)
        token = next(line for line in output.splitlines() if line.startswith("TOKEN=")).removeprefix("TOKEN=")

        web, svg = record(stack, token, {"target": "web", "seconds": 1, "format": "flamegraph"})
        assert web["pid"] == stack.servers[0].pid
        frames = flamegraph_frames(svg)
        assert any("daphne" in frame or "twisted" in frame for frame in frames), frames[:20]

        # The worker is no child of the server: found through Celery, allowed by its command line.
        worker, document = record(stack, token, {"target": "worker", "seconds": 2, "format": "speedscope"})
        assert stack.worker is not None and worker["pid"] == stack.worker.pid
        assert speedscope_frames(document)
        recorded = {int(profile["name"].split()[1]) for profile in json.loads(document)["profiles"]}
        # --subprocesses: the main process and the prefork pool's two children, each its own profile.
        assert worker["pid"] in recorded and len(recorded) == 3, recorded

        # The same from the shell: manage.py profile finds the worker the same way.
        target = tmp_path / "worker.svg"
        stack.manage("profile", "--target", "worker", "--seconds", "1", "--output", str(target))
        assert flamegraph_frames(target.read_bytes())

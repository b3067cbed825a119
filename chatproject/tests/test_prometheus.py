"""GET /metrics across processes, for real: two Daphne servers sharing PROMETHEUS_MULTIPROC_DIR,
replies produced by the Celery worker (or, on the embedded default, a thread of a server), one
scrape from one server showing all of it; and how the folder is tidied when processes come and go.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect

from chatproject import prometheus
from chatproject.testing import Stack

TOKEN = "stack-metrics-token-0123456789abcdef"


# --- The folder ---------------------------------------------------------------------------------


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.fixture
def live_pid():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process.pid
    process.kill()
    process.wait()


def touch(folder: Path, *names: str) -> None:
    for name in names:
        (folder / name).write_bytes(b"")


def test_a_process_starting_alone_empties_the_folder(tmp_path):
    gone, me = dead_pid(), os.getpid()
    touch(tmp_path, f"counter_{gone}.db", f"histogram_{gone}.db", f"gauge_livesum_{gone}.db", f"counter_{me}.db")
    touch(tmp_path, "notes.txt")

    prometheus._folder_prepare(tmp_path)

    assert sorted(path.name for path in tmp_path.iterdir()) == ["notes.txt"]


def test_beside_a_live_process_dead_counts_stay_and_dead_connections_go(tmp_path, live_pid):
    gone, me = dead_pid(), os.getpid()
    touch(tmp_path, f"counter_{live_pid}.db", f"gauge_livesum_{live_pid}.db")
    touch(tmp_path, f"counter_{gone}.db", f"histogram_{gone}.db", f"gauge_livesum_{gone}.db")
    # An earlier process that had this one's id: its counts stay, its open connections do not.
    touch(tmp_path, f"counter_{me}.db", f"gauge_livesum_{me}.db")

    prometheus._folder_prepare(tmp_path)

    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        [
            f"counter_{live_pid}.db",
            f"gauge_livesum_{live_pid}.db",
            f"counter_{gone}.db",
            f"histogram_{gone}.db",
            f"counter_{me}.db",
        ]
    )


def test_a_scrape_forgets_the_open_connections_of_dead_processes_only(tmp_path, live_pid):
    gone = dead_pid()
    touch(tmp_path, f"gauge_livesum_{live_pid}.db", f"gauge_livesum_{gone}.db", f"counter_{gone}.db")

    prometheus._forget_dead_connections(tmp_path)

    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        [f"gauge_livesum_{live_pid}.db", f"counter_{gone}.db"]
    )


# --- A real stack -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("prometheus")
    env = {
        "PROMETHEUS_MULTIPROC_DIR": str(workdir / "prometheus"),
        "METRICS_TOKEN": TOKEN,
        "AGENT_OFFLINE_WORD_DELAY_MS": "0",
    }
    with Stack(workdir, servers=2, env=env, worker_concurrency=2) as stack:
        yield stack


def get(stack, server: int, path: str, authorization: str) -> tuple[int, bytes]:
    request = urllib.request.Request(stack.http_url(server, path), headers={"Authorization": authorization})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def scrape(stack, server: int) -> dict[tuple[str, frozenset], float]:
    status, body = get(stack, server, "/metrics", f"Bearer {TOKEN}")
    assert status == 200, body
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def send_and_wait_for_reply(stack, person, server: int, content: str) -> dict:
    thread = person["threads"][0]
    request = urllib.request.Request(
        stack.http_url(server, f"/api/threads/{thread}/messages/"),
        method="POST",
        data=json.dumps({"content": content}).encode(),
        headers={"Authorization": f"Token {person['token']}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 201
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status, body = get(stack, server, f"/api/threads/{thread}/messages/?page_size=50", f"Token {person['token']}")
        assert status == 200, body
        answers = [m for m in json.loads(body)["results"] if m["role"] == "ai"]
        if answers:
            return answers[0]
        time.sleep(0.2)
    raise AssertionError(f"no reply in 60 s\n{stack.logs_text()}")


ME = "/api/me/"


def test_one_scrape_from_one_server_shows_every_process(stack):
    person = stack.create_users(1)[0]
    assert get(stack, 0, "/metrics", "")[0] == 403
    assert get(stack, 0, "/metrics", f"Bearer {TOKEN}-wrong")[0] == 403

    # The reply is written by the worker (production) or by server 1's reply thread (embedded).
    answer = send_and_wait_for_reply(stack, person, 1, "what is 6 times 7?")
    for server, times in ((0, 2), (1, 3)):
        for _ in range(times):
            assert get(stack, server, ME, f"Token {person['token']}")[0] == 200

    with connect(stack.ws_url(1, person, person["threads"][0])) as ws:
        ws.send(json.dumps({"type": "ping"}))
        assert json.loads(ws.recv(timeout=10)) == {"type": "pong"}
        samples = scrape(stack, 0)

        meta = answer["metadata"]
        assert (meta["model"], meta["status"]) == ("offline", "complete")
        assert value(samples, "chat_replies_total", model="offline", status="complete") == 1
        usage = meta["usage"]
        assert value(samples, "chat_reply_tokens_total", model="offline", type="prompt") == usage["prompt_tokens"]
        assert (
            value(samples, "chat_reply_tokens_total", model="offline", type="completion") == usage["completion_tokens"]
        )
        latency = meta["latency_ms"]
        assert value(samples, "chat_reply_total_seconds_sum", model="offline") == pytest.approx(latency["total"] / 1000)
        assert value(samples, "chat_reply_first_chunk_seconds_count", model="offline") == 1
        assert value(samples, "chat_tool_calls_total", tool="calculator", outcome="ok") == 1
        # Both servers' requests, counted in each of them, in one scrape.
        assert value(samples, "chat_http_requests_total", method="GET", route=ME, status="200") == 5
        assert value(samples, "chat_http_request_duration_seconds_count", method="GET", route=ME, status="200") == 5
        assert value(samples, "chat_http_requests_total", method="GET", route="/metrics", status="403") == 2
        # The connection is open on server 1; server 0 reports it.
        assert value(samples, "chat_websocket_connections_open") == 1
        assert value(samples, "chat_websocket_connections_total") == 1

        # Server 1 is killed with the connection open: it cannot say it closed.
        stack.stop_server(1)
    samples = scrape(stack, 0)
    assert value(samples, "chat_websocket_connections_open") == 0
    # What the dead process served stays counted: the totals never go down.
    assert value(samples, "chat_http_requests_total", method="GET", route=ME, status="200") == 5
    assert value(samples, "chat_websocket_connections_total") == 1
    assert value(samples, "chat_replies_total", model="offline", status="complete") == 1

    # Started again beside server 0, the new server 1 reports the same totals and adds its own.
    stack.restart_server(1)
    assert get(stack, 1, ME, f"Token {person['token']}")[0] == 200
    samples = scrape(stack, 1)
    assert value(samples, "chat_http_requests_total", method="GET", route=ME, status="200") == 6
    assert value(samples, "chat_websocket_connections_open") == 0
    assert value(samples, "chat_replies_total", model="offline", status="complete") == 1

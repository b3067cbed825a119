"""The chat page told ``resync_required``, in a real browser: Debian's Chromium driven by Playwright.

The page's WebSocket is routed through Playwright, so the test can drop it and hold the page's
reconnect while more messages than ``WEBSOCKET_REPLAY_LIMIT`` are posted over REST. When the page
gets through, the server answers ``resync_required``: the page reloads its branch over REST and
reconnects. Skipped when /usr/bin/chromium is missing (CI installs it).
"""

from __future__ import annotations

import json
import re
import time
import urllib.request

import pytest

from chatproject.testing import Stack
from chatproject.tests.test_browser import CHROMIUM, page  # noqa: F401  (the browser tests' page fixture)

REPLAY_LIMIT = 3

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    env = {"WEBSOCKET_REPLAY_LIMIT": str(REPLAY_LIMIT), "AGENT_OFFLINE_WORD_DELAY_MS": "0"}
    with Stack(tmp_path_factory.mktemp("resync-browser"), env=env) as stack:
        yield stack


def api(stack, person, method: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        stack.http_url(0, path),
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Token {person['token']}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=15) as response:
        return json.load(response)


def stored_messages(stack, person, thread: str) -> list[dict]:
    return api(stack, person, "GET", f"/api/threads/{thread}/messages/?page_size=200")["results"]


def test_a_page_too_far_behind_reloads_its_branch_and_resumes(stack, page):  # noqa: F811
    from playwright.sync_api import expect

    person = stack.create_users(1)[0]
    thread = person["threads"][0]
    routes, held, hold = [], [], {"on": False}

    def route(ws) -> None:
        if hold["on"]:
            held.append(ws)  # not connected to the server: the page is away and hears nothing
            return
        ws.connect_to_server()
        routes.append(ws)

    page.route_web_socket(re.compile(r"/ws/"), route)
    page.goto(stack.http_url(0, "/accounts/login/"))
    page.fill("#id_username", person["username"])
    page.fill("#id_password", person["password"])
    page.click("button[type=submit]")
    page.goto(stack.http_url(0, f"/t/{thread}/"))
    expect(page.locator("#conn-status")).to_have_attribute("data-state", "open")
    page.fill("#message-input", "what is 2 plus 2?")
    page.keyboard.press("Enter")
    expect(page.locator(".msg-ai")).to_have_count(1)
    expect(page.locator(".msg-ai").last).not_to_have_class(re.compile(r"\bstreaming\b"), timeout=15000)

    # The socket drops; the page's reconnect is held while four questions and their replies are stored.
    hold["on"] = True
    routes[-1].close(code=4503)
    deadline = time.monotonic() + 10
    while not held and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert held, "the page did not try to reconnect"
    for n in range(4):
        # One after the other (each reply ended first), so the branch is one line of ten messages.
        api(stack, person, "POST", f"/api/threads/{thread}/messages/", {"content": f"what is {n} plus 1?"})
        deadline = time.monotonic() + 30
        while len(stored := stored_messages(stack, person, thread)) < 4 + 2 * n and time.monotonic() < deadline:
            time.sleep(0.1)
    assert len(stored) == 10 and [m["parent"] for m in stored[1:]] == [m["id"] for m in stored[:-1]], stored
    expect(page.locator(".msg[data-id]")).to_have_count(2)  # the page has not heard of them

    hold["on"] = False
    held[0].close(code=4503)
    expect(page.locator("#notice")).to_contain_text("8 messages came while this page was away")
    expect(page.locator(".msg[data-id]")).to_have_count(10)
    expect(page.locator("#conn-status")).to_have_attribute("data-state", "open")
    shown = page.locator(".msg[data-id]").evaluate_all("nodes => nodes.map(n => n.dataset.id)")
    assert shown == [m["id"] for m in stored]
    # Connected after the newest message: live again, and nothing replayed twice.
    assert "after=" + stored[-1]["id"] in routes[-1].url
    page.fill("#message-input", "what is 5 plus 5?")
    page.keyboard.press("Enter")
    expect(page.locator(".msg[data-id]")).to_have_count(12, timeout=15000)
    expect(page.locator(".msg-ai").last).to_contain_text("5 plus 5 = 10")
    shown = page.locator(".msg[data-id]").evaluate_all("nodes => nodes.map(n => n.dataset.id)")
    assert len(shown) == len(set(shown)) == 12

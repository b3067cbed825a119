"""A person in a real browser: Debian's Chromium driven by Playwright against a real server.

Logs in, starts a thread, sends a message and watches the reply stream in; checks that message
content cannot inject markup. Screenshots (desktop and phone width) are kept in
``test-artifacts/``. Skipped when /usr/bin/chromium is missing (CI installs it).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chatproject.testing import ROOT, Stack

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with Stack(tmp_path_factory.mktemp("browser"), env={"AGENT_OFFLINE_WORD_DELAY_MS": "120"}) as stack:
        yield stack


@pytest.fixture(scope="module")
def person(stack):
    return stack.create_users(1)[0]


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield browser.new_page(viewport={"width": 1200, "height": 800})
        finally:
            browser.close()


def test_log_in_send_and_watch_the_reply_stream(stack, person, page):
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    page.goto(stack.http_url(0, "/"))
    page.fill("#id_username", person["username"])
    page.fill("#id_password", person["password"])
    page.click("button[type=submit]")
    expect(page.get_by_role("heading", name="Your threads")).to_be_visible()

    page.fill("input[name=title]", "Browser test")
    page.click("text=New thread")
    expect(page.locator(".chat-title")).to_have_text("Browser test")
    expect(page.locator("#conn-status")).to_have_attribute("data-state", "open")

    hostile = 'Hello **there** <img src=x onerror="window.__xss=1"> [link](javascript:window.__xss=2)'
    page.fill("#message-input", hostile)
    page.keyboard.press("Enter")
    user_bubble = page.locator(".msg-user").last
    expect(user_bubble).not_to_have_class(re.compile(r"\bpending\b"))
    expect(user_bubble.locator("strong")).to_have_text("there")
    expect(page.locator(".msg-ai")).to_have_count(1)
    expect(page.locator(".msg-ai").last).not_to_have_class(re.compile(r"\bstreaming\b"), timeout=15000)

    page.fill("#message-input", "what is 2 plus 2?")
    page.keyboard.press("Enter")
    streaming = page.locator(".msg-ai.streaming")
    expect(streaming).to_have_count(1)  # the reply shows while it streams...
    expect(streaming.locator(".step").first).to_contain_text("calculator")  # ...with its tool step...
    reply = page.locator(".msg-ai").last
    expect(reply).not_to_have_class(re.compile(r"\bstreaming\b"), timeout=15000)  # ...and ends
    expect(reply.locator(".content")).to_have_text("2 plus 2 = 4")
    expect(reply.locator("strong")).to_have_text("4")
    page.screenshot(path=str(ARTIFACTS / "chat-desktop.png"), full_page=True)

    assert page.locator(".messages img").count() == 0
    assert page.locator('.messages a[href^="javascript"]').count() == 0
    assert page.evaluate("window.__xss") is None

    # The history is rendered by the server after a reload, still safely.
    page.reload()
    expect(page.locator(".msg")).to_have_count(4)
    expect(page.locator(".msg-user strong")).to_have_text("there")
    expect(page.locator(".msg-ai strong")).to_have_text("4")
    assert page.evaluate("window.__xss") is None

    assert page.locator(".flash").count() == 0
    page.set_viewport_size({"width": 390, "height": 800})
    page.screenshot(path=str(ARTIFACTS / "chat-phone.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_reconnects_and_resumes_after_the_connection_drops(stack, person, page):
    from playwright.sync_api import expect

    page.goto(stack.http_url(0, "/accounts/login/"))
    page.fill("#id_username", person["username"])
    page.fill("#id_password", person["password"])
    page.click("button[type=submit]")
    page.click("text=New thread")
    expect(page.locator("#conn-status")).to_have_attribute("data-state", "open")

    # The server goes away: the page says so, keeps what is typed, and resumes when it is back.
    stack.stop_server(0)
    expect(page.locator("#conn-status")).to_have_attribute("data-state", "closed")
    page.fill("#message-input", "what is 3 times 5")
    page.keyboard.press("Enter")
    expect(page.locator(".msg-user.pending")).to_have_count(1)
    stack.restart_server(0)
    reply = page.locator(".msg-ai").last
    expect(reply.locator(".content")).to_have_text("3 times 5 = 15", timeout=30000)
    expect(page.locator(".msg-user")).to_have_count(1)
    expect(page.locator(".msg-user.pending")).to_have_count(0)

"""The dashboard page in a real browser (Debian's Chromium through Playwright, a real server):
a reply's metrics appear in its cards, charts and tables, under the CSP, on a phone too.
Screenshots are kept in ``test-artifacts/``. Skipped when /usr/bin/chromium is missing."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from chatproject.testing import ROOT, Stack

from .browser import CHROMIUM, create_staff, staff_page

ARTIFACTS = ROOT / "test-artifacts"

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with Stack(tmp_path_factory.mktemp("dashboard-browser")) as stack:
        yield stack


def api(stack, token: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        stack.http_url(0, path),
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def test_the_dashboard_shows_a_reply_on_desktop_and_phone(stack):
    from playwright.sync_api import expect, sync_playwright

    person = stack.create_users(1)[0]
    thread = person["threads"][0]
    api(stack, person["token"], f"/api/threads/{thread}/messages/", {"content": "what is 2 plus 2?"})
    deadline = time.monotonic() + 30
    while not any(
        m["role"] == "ai" for m in api(stack, person["token"], f"/api/threads/{thread}/messages/")["results"]
    ):
        assert time.monotonic() < deadline, "no reply"
        time.sleep(0.2)
    create_staff(stack)

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page, problems = staff_page(browser, stack)
            page.click("text=Dashboard")
            expect(page.locator(".dash-card").first).to_contain_text("1")
            expect(page.locator("#chart-series rect.bar").first).to_be_attached()
            heights = page.eval_on_selector_all(
                "#chart-series rect.bar:not(.bad)", "bars => bars.map(b => b.getBBox().height)"
            )
            assert len(heights) >= 60 and len([h for h in heights if h > 0]) == 1  # the reply's minute
            expect(page.locator("#chart-latency rect.bar")).to_have_count(9)
            expect(page.locator("#table-models")).to_contain_text("offline")
            expect(page.locator("#table-tools")).to_contain_text("calculator")
            expect(page.locator("#table-users-replies")).to_contain_text(person["username"])
            # The daily quotas: no limit configured, so one reply of an unlimited quota, nobody at a limit.
            expect(page.locator("#table-quotas")).to_contain_text(person["username"])
            expect(page.locator("#table-quotas")).to_contain_text("1 / unlimited")
            expect(page.locator("#table-quotas-over")).to_contain_text("Nobody is at a limit.")
            page.screenshot(path=str(ARTIFACTS / "dashboard-desktop.png"), full_page=True)

            page.click("button[data-window='7d']")
            expect(page.locator("button[data-window='7d']")).to_have_attribute("aria-pressed", "true")
            expect(page.locator("#dash-updated")).to_contain_text("Updated")
            assert page.url.endswith("?window=7d")

            page.set_viewport_size({"width": 390, "height": 844})
            page.reload()
            expect(page.locator("#table-models")).to_contain_text("offline")
            # Readable on a phone: nothing wider than the screen.
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            page.screenshot(path=str(ARTIFACTS / "dashboard-phone.png"), full_page=True)
            assert problems == []
        finally:
            browser.close()


BUSY_HOUR = """
import random
from datetime import timedelta
from django.contrib.auth import get_user_model
from django.utils import timezone
from messaging.models import ReplyMetric, ToolCallMetric
rng = random.Random(7)
users = [get_user_model().objects.create_user(name) for name in ("ada", "grace", "linus", "barbara", "ken", "margaret")]
models = [("offline", None), ("openai/gpt-4o-mini", 0.00015), ("anthropic/claude-3-5-haiku", 0.0008)]
tools = ["calculator", "memory_search", "text_processor", "python", "weather", "web_search"]
now = timezone.now()
for n in range(240):
    at = now - timedelta(seconds=rng.uniform(0, 3500))
    model, price = rng.choice(models)
    status = rng.choices(["complete", "error", "stopped", "interrupted"], [90, 4, 4, 2])[0]
    prompt, completion = rng.randint(200, 1800), rng.randint(20, 400)
    first = int(rng.lognormvariate(5.5 if model == "offline" else 6.6, 0.4))
    metric = ReplyMetric.objects.create(
        created_at=at, minute=int(at.timestamp()) // 60, user=rng.choice(users), model=model, status=status,
        queue_ms=rng.randint(2, 40), first_chunk_ms=first, total_ms=first + int(rng.lognormvariate(7, 0.5)),
        prompt_tokens=prompt, completion_tokens=completion,
        cost_usd=None if price is None else (prompt + 4 * completion) * price / 1000,
        tool_calls=1, tool_errors=0,
    )
    ToolCallMetric.objects.create(
        reply=metric, created_at=at, name=rng.choice(tools), duration_ms=rng.randint(1, 900), ok=rng.random() > 0.05
    )
"""


def test_a_busy_hour_for_the_readme_screenshot(tmp_path):
    """240 replies of six people over three models in the last hour (seeded like the benchmark's
    rows): the README's picture of the dashboard, ``test-artifacts/dashboard-busy.png``. A server
    of its own: the other test's answers are cached in its server's memory."""
    from playwright.sync_api import expect, sync_playwright

    with Stack(tmp_path) as stack:
        _busy_hour_screenshot(stack, expect, sync_playwright)


def _busy_hour_screenshot(stack, expect, sync_playwright) -> None:
    stack.manage("shell", "-c", BUSY_HOUR)
    create_staff(stack)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page, problems = staff_page(browser, stack, width=1280, height=900)
            page.click("text=Dashboard")
            expect(page.locator("#table-models")).to_contain_text("openai/gpt-4o-mini")
            expect(page.locator("#table-users-replies")).to_contain_text("margaret")
            expect(page.locator("#table-tools")).to_contain_text("web_search")
            expect(page.locator("#table-quotas")).to_contain_text("grace")
            heights = page.eval_on_selector_all("#chart-series rect.bar", "bars => bars.map(b => b.getBBox().height)")
            assert len([h for h in heights if h > 0]) > 30  # replies in most minutes of the hour
            page.screenshot(path=str(ARTIFACTS / "dashboard-busy.png"), full_page=True)
            assert problems == []
        finally:
            browser.close()

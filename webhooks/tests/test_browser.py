"""The webhooks page in a real browser against a real server (and, with REDIS_URL, a real Celery
worker and beat): add an endpoint, see its secret once, send a test, watch it delivered to a
local receiver that verifies it with ``standardwebhooks``. Screenshot in ``test-artifacts/``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chatproject.testing import ROOT, Stack
from webhooks.tests.test_services import Receiver

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    env = {"WEBHOOKS_ALLOW_PRIVATE": "1", "SWEEP_INTERVAL_SECONDS": "1"}
    with Stack(tmp_path_factory.mktemp("webhooks-browser"), env=env, worker_concurrency=2) as stack:
        yield stack


def test_add_an_endpoint_send_a_test_and_see_it_delivered(stack):
    from playwright.sync_api import expect, sync_playwright

    person = stack.create_users(1)[0]
    ARTIFACTS.mkdir(exist_ok=True)
    with Receiver() as receiver, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
            page.goto(stack.http_url(0, "/"))
            page.fill("#id_username", person["username"])
            page.fill("#id_password", person["password"])
            page.click("button[type=submit]")
            page.click("text=Webhooks")
            expect(page.get_by_role("heading", name="Webhooks", exact=True)).to_be_visible()

            page.fill("#wh-url", receiver.url + "/hook")
            page.fill("#wh-description", "Local receiver")
            page.click("text=Add endpoint")
            secret = page.locator("#wh-secret-value")
            expect(secret).to_have_text(re.compile(r"^whsec_"))
            receiver.secret = secret.inner_text()

            row = page.locator(".wh-row").first
            expect(row).to_contain_text(receiver.url + "/hook")
            row.get_by_role("button", name="Send test").click()
            # Delivered by the server's sweeping thread (embedded) or a Celery worker (Redis).
            for _ in range(40):
                row.get_by_role("button", name="Deliveries").click()
                if "succeeded" in row.locator(".deliveries").inner_text():
                    break
                page.wait_for_timeout(500)
            expect(row.locator(".deliveries")).to_contain_text("webhook.test")
            expect(row.locator(".deliveries")).to_contain_text("succeeded")
            page.screenshot(path=str(ARTIFACTS / "webhooks-page.png"), full_page=True)

            # More deliveries than a page: the older ones come with "Older deliveries".
            page.evaluate(
                """async (id) => {
                  const csrf = document.querySelector("[name=csrfmiddlewaretoken]").value;
                  for (let i = 0; i < 20; i++)
                    await fetch(`/api/webhooks/${id}/test/`, {method: "POST", headers: {"X-CSRFToken": csrf}});
                }""",
                row.get_attribute("data-id"),
            )
            row.get_by_role("button", name="Deliveries").click()
            expect(row.locator(".delivery")).to_have_count(20)
            row.get_by_role("button", name="Older deliveries").click()
            expect(row.locator(".delivery")).to_have_count(21)
            expect(row.get_by_role("button", name="Older deliveries")).to_have_count(0)

            # Redeliver the oldest: a new delivery of the same event, listed first.
            oldest = row.locator(".delivery").last
            event_id = re.search(r"msg_[0-9a-f]+", oldest.inner_text()).group(0)
            oldest.get_by_role("button", name="Redeliver").click()
            expect(row.locator(".delivery").first).to_contain_text(event_id)

            # Incoming: a URL and its secret for one of the user's threads.
            page.evaluate(
                """async () => {
                  const csrf = document.querySelector("[name=csrfmiddlewaretoken]").value;
                  await fetch("/api/threads/", {method: "POST", body: JSON.stringify({title: "CI"}),
                    headers: {"X-CSRFToken": csrf, "Content-Type": "application/json"}});
                }"""
            )
            page.reload()
            page.select_option("#in-thread", label="CI")
            page.click("text=Add incoming webhook")
            incoming = page.locator("#in-list .wh-row").first
            expect(incoming).to_contain_text("/api/webhooks/incoming/")
            expect(incoming).to_contain_text("Secret: whsec_")
            row = page.locator(".wh-row").first

            row.get_by_role("button", name="Disable").click()
            expect(page.locator(".wh-row").first).to_contain_text("(disabled)")
        finally:
            browser.close()
    assert receiver.rejected == []
    # The endpoint takes every event: the thread made for the incoming webhook may be sent too.
    assert "webhook.test" in {got["body"]["type"] for got in receiver.verified}
    assert {got["body"]["type"] for got in receiver.verified} <= {"webhook.test", "thread.created"}

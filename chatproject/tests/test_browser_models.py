"""A person in a real browser chooses a thread's model and sets custom instructions (Debian's
Chromium driven by Playwright against a real server). Skipped without /usr/bin/chromium."""

from __future__ import annotations

import pytest

from chatproject.testing import Stack

from .test_browser import ARTIFACTS, CHROMIUM, page  # noqa: F401 (the page fixture)

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    env = {"AGENT_MODELS": "second=openai/second-model,api_base=http://127.0.0.1:9/v1"}
    with Stack(tmp_path_factory.mktemp("browser-models"), env=env) as stack:
        yield stack


@pytest.fixture(scope="module")
def people(stack):
    return stack.create_users(2)


def test_choose_a_model_and_set_instructions(stack, people, page):  # noqa: F811
    from playwright.sync_api import expect

    person = people[0]
    ARTIFACTS.mkdir(exist_ok=True)
    page.goto(stack.http_url(0, "/accounts/login/"))
    page.fill("#id_username", person["username"])
    page.fill("#id_password", person["password"])
    page.click("button[type=submit]")

    page.click("text=Settings")
    page.fill("#instructions", "Answer briefly, in English.")
    page.click("text=Save")
    expect(page.locator(".flash")).to_contain_text("Settings saved.")
    expect(page.locator("#instructions")).to_have_value("Answer briefly, in English.")

    page.goto(stack.http_url(0, f"/t/{person['threads'][0]}/"))
    expect(page.locator("#conn-status")).to_have_attribute("data-state", "open")
    expect(page.locator("#model-select")).to_have_value("offline")
    expect(page.locator(".model-apply")).to_be_hidden()  # JavaScript switches on change
    page.select_option("#model-select", "second")
    page.wait_for_load_state()
    expect(page.locator("#model-select")).to_have_value("second")
    page.reload()
    expect(page.locator("#model-select")).to_have_value("second")
    page.screenshot(path=str(ARTIFACTS / "chat-model-selector.png"))

    page.select_option("#model-select", "offline")
    expect(page.locator("#model-select")).to_have_value("offline")
    page.fill("#message-input", "what is 6 times 7?")
    page.keyboard.press("Enter")
    expect(page.locator(".msg-ai").last).to_contain_text("6 times 7 = 42", timeout=15000)


def test_a_removed_model_is_replaced_and_the_page_says_so(stack, people, page):  # noqa: F811
    from playwright.sync_api import expect

    person = people[1]
    thread = person["threads"][0]
    # The thread chose a model the operator has since removed from AGENT_MODELS.
    stack.manage(
        "shell",
        "-c",
        f"from threads.models import ChatThread; ChatThread.objects.filter(pk='{thread}').update(model='retired')",
    )
    page.goto(stack.http_url(0, "/accounts/login/"))
    page.fill("#id_username", person["username"])
    page.fill("#id_password", person["password"])
    page.click("button[type=submit]")
    page.goto(stack.http_url(0, f"/t/{thread}/"))
    expect(page.locator("#conn-status")).to_have_attribute("data-state", "open")
    page.fill("#message-input", "what is 6 times 7?")
    page.keyboard.press("Enter")
    said = "The model 'retired' is not available any more; this thread now uses 'offline'."
    reply = page.locator(".msg-ai").last
    expect(reply).to_contain_text("6 times 7 = 42", timeout=15000)
    expect(reply.locator(".note")).to_have_text(said)
    expect(page.locator("#model-select")).to_have_value("offline")
    page.reload()
    expect(page.locator(".msg-ai").last.locator(".note")).to_have_text(said)

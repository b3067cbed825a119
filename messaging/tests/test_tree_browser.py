"""A person using branches in a real browser: Debian's Chromium driven by Playwright.

Send, copy, edit, regenerate, switch back with the "< 1/2 >" arrows, stop a reply, open the tree page
and click a node, fork from there; then a 2,000-message thread on the tree page (folded runs, time to draw it).
Screenshots are kept in ``test-artifacts/``. Skipped when /usr/bin/chromium is missing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from chatproject.testing import ROOT, Stack

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    # Slow words, so that a reply is still streaming when Stop is clicked.
    with Stack(tmp_path_factory.mktemp("tree-browser"), env={"AGENT_OFFLINE_WORD_DELAY_MS": "150"}) as stack:
        yield stack


@pytest.fixture(scope="module")
def person(stack):
    return stack.create_users(1)[0]


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            context = browser.new_context(
                viewport={"width": 1200, "height": 800}, permissions=["clipboard-read", "clipboard-write"]
            )
            page = context.new_page()
            page.csp_violations = []
            page.on("console", lambda m: page.csp_violations.append(m.text) if "Content Security" in m.text else None)
            yield page
        finally:
            browser.close()


def log_in(stack, person, page) -> None:
    page.goto(stack.http_url(0, "/accounts/login/"))
    page.fill("#id_username", person["username"])
    page.fill("#id_password", person["password"])
    page.click("button[type=submit]")


def finished(locator) -> None:
    from playwright.sync_api import expect

    expect(locator).not_to_have_class(re.compile(r"\bstreaming\b"), timeout=20000)


def test_edit_regenerate_switch_stop_and_click_the_tree(stack, person, page):
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    log_in(stack, person, page)
    page.fill("input[name=title]", "Branches")
    page.click("text=New thread")
    expect(page.locator("#conn-status")).to_have_attribute("data-state", "open")

    page.fill("#message-input", "what is 2 plus 2?")
    page.keyboard.press("Enter")
    expect(page.locator(".msg-ai")).to_have_count(1)
    finished(page.locator(".msg-ai"))
    expect(page.locator(".msg-ai .content")).to_have_text("2 plus 2 = 4")

    # Copy: the message as it was written (its Markdown), not as it is drawn.
    page.locator(".msg-ai .act-copy").click()
    expect(page.locator(".msg-ai .act-copy")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == "2 plus 2 = **4**"

    # Edit: the question is replaced on the page by its new version, answered in turn.
    question = page.locator(".msg-user")
    first_question_id = question.get_attribute("data-id")
    question.locator(".act-edit").click()
    page.locator(".editor textarea").fill("what is 3 plus 3?")
    page.click("text=Send edit")
    expect(page.locator(".msg-user .content")).to_have_text("what is 3 plus 3?")
    expect(page.locator(".msg-user .sib-pos")).to_have_text("2/2")
    edit_id = page.locator(".msg-user").get_attribute("data-id")
    assert edit_id != first_question_id
    expect(page.locator(".msg-ai")).to_have_count(1)
    finished(page.locator(".msg-ai"))
    expect(page.locator(".msg-ai .content")).to_have_text("3 plus 3 = 6")
    page.screenshot(path=str(ARTIFACTS / "tree-edit.png"))

    # Regenerate: a second answer, "2/2".
    page.locator(".msg-ai .act-regen").click()
    expect(page.locator(".msg-ai .sib-pos")).to_have_text("2/2", timeout=20000)
    finished(page.locator(".msg-ai"))
    expect(page.locator(".msg-ai")).to_have_count(1)
    page.screenshot(path=str(ARTIFACTS / "tree-regenerate.png"))

    # Back with the arrows: the first answer, then the first question and its answer.
    page.locator(".msg-ai .sib-prev").click()
    expect(page.locator(".msg-ai .sib-pos")).to_have_text("1/2")
    page.locator(".msg-user .sib-prev").click()
    expect(page.locator(".msg-user .content")).to_have_text("what is 2 plus 2?")
    expect(page.locator(".msg-user .sib-pos")).to_have_text("1/2")
    expect(page.locator(".msg-ai .content")).to_have_text("2 plus 2 = 4")
    page.screenshot(path=str(ARTIFACTS / "tree-switched-back.png"))

    # Stop: the reply ends where it was, marked as stopped; what was said stays.
    page.fill("#message-input", "hello")
    page.keyboard.press("Enter")
    streaming = page.locator(".msg-ai.streaming")
    expect(streaming.locator(".content")).to_contain_text("offline assistant", timeout=20000)
    streaming.locator(".act-stop").click()
    stopped = page.locator(".msg-ai").last
    finished(stopped)
    expect(stopped.locator(".note")).to_have_text("Stopped")
    partial = stopped.locator(".content").inner_text()
    assert "offline assistant" in partial and "not configured here" not in partial
    page.screenshot(path=str(ARTIFACTS / "tree-stopped.png"))

    # After a reload the server shows the same branch.
    page.reload()
    expect(page.locator(".msg-user .content").first).to_have_text("what is 2 plus 2?")
    expect(page.locator(".msg")).to_have_count(4)
    expect(page.locator(".msg-ai").last.locator(".note")).to_have_text("Stopped")

    # The tree: every branch; clicking the edit makes its branch active and goes back to the chat.
    page.click("text=Tree")
    expect(page.locator("#tree-stats")).to_contain_text("7 messages")
    expect(page.locator("#tree-canvas g.node.active")).to_have_count(4)  # the branch the chat shows
    node = page.locator(f'#tree-canvas g.node[data-id="{edit_id}"] circle')
    node.hover()
    expect(page.locator("#tree-tip")).to_contain_text("what is 3 plus 3?")
    page.screenshot(path=str(ARTIFACTS / "tree-page.png"))
    node.click()
    expect(page).to_have_url(re.compile(rf"/t/[^/]+/\?at={edit_id}$"))
    expect(page.locator(".msg.highlight .content")).to_have_text("what is 3 plus 3?")
    expect(page.locator(".msg-ai .sib-pos")).to_have_text("2/2")  # the newest answer under it

    # Fork at that answer: a new thread holding the branch up to it opens; the original stays.
    original = page.url
    page.locator(".msg-ai .act-fork").click()
    expect(page).not_to_have_url(original)
    expect(page).to_have_url(re.compile(r"/t/[0-9a-f-]+/$"))
    expect(page.locator(".chat-title")).to_have_text("Branches (fork)")
    expect(page.locator(".msg")).to_have_count(2)
    expect(page.locator(".msg-user .content")).to_have_text("what is 3 plus 3?")
    expect(page.locator(".msg-ai .content")).to_have_text("3 plus 3 = 6")
    expect(page.locator(".sib-pos")).to_have_count(0)  # the other branches stayed behind
    page.screenshot(path=str(ARTIFACTS / "tree-fork.png"))
    page.goto(original)
    expect(page.locator(".msg-user .sib-pos")).to_have_text("2/2")
    assert page.csp_violations == []


def test_a_2000_message_tree_stays_usable(stack, person, page):
    from playwright.sync_api import expect

    code = (
        "from django.contrib.auth import get_user_model\n"
        "from messaging.models import ChatMessage\n"
        "from threads.models import ChatThread\n"
        f"user = get_user_model().objects.get(pk={person['id']})\n"
        "thread = ChatThread.objects.create(owner=user, title='Long')\n"
        "rows, parent = [], None\n"
        "for n in range(2000):\n"
        "    if rows and n % 50 == 0:\n"
        "        parent = rows[-25].pk\n"
        "    m = ChatMessage(thread=thread, role='user' if n % 2 == 0 else 'ai', sender=user if n % 2 == 0 else None,"
        " content=f'message {n}', parent_id=parent)\n"
        "    rows.append(m)\n"
        "    parent = m.pk\n"
        "ChatMessage.objects.bulk_create(rows)\n"
        "ChatThread.objects.filter(pk=thread.pk).update(active_leaf_id=rows[-1].pk)\n"
        "print('THREAD=' + str(thread.pk))\n"
    )
    thread_id = next(
        line for line in stack.manage("shell", "-c", code).splitlines() if line.startswith("THREAD=")
    ).removeprefix("THREAD=")
    log_in(stack, person, page)
    page.goto(stack.http_url(0, f"/t/{thread_id}/tree/"))
    canvas = page.locator("#tree-canvas")
    expect(page.locator("#tree-stats")).to_contain_text("2000 messages", timeout=20000)
    shown = int(canvas.get_attribute("data-shown"))
    first_draw_ms = float(canvas.get_attribute("data-render-ms"))
    assert 0 < shown < 400  # long runs are folded
    page.screenshot(path=str(ARTIFACTS / "tree-2000.png"))
    # Zoom out with the wheel, then unfold a run.
    page.mouse.move(600, 400)
    page.mouse.wheel(0, 800)
    fold = page.locator("#tree-canvas g.node.fold rect").last  # the run nearest the active leaf, in view
    fold.click()
    expect(canvas).not_to_have_attribute("data-shown", str(shown))
    unfolded = int(canvas.get_attribute("data-shown"))
    assert unfolded > shown
    (ARTIFACTS / "tree-2000.json").write_text(
        json.dumps({"messages": 2000, "shown": shown, "first_draw_ms": first_draw_ms, "after_unfold": unfolded})
    )
    print(f"tree page, 2000 messages: {shown} nodes shown, drawn in {first_draw_ms:.0f} ms")
    # The chat page of the same thread renders the last 50 of the active branch and loads older on scroll.
    page.goto(stack.http_url(0, f"/t/{thread_id}/"))
    expect(page.locator(".msg")).to_have_count(50)
    page.locator("#messages").evaluate("list => { list.scrollTop = 0; }")
    expect(page.locator(".msg")).to_have_count(100, timeout=10000)
    assert page.csp_violations == []

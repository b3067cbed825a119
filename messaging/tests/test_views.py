import json

import pytest

from messaging import views
from messaging.tests.factories import make_attachment, make_message
from threads.tests.factories import make_thread

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(client, user):
    client.force_login(user)
    return client


def test_chat_page_renders_history_escaped_with_config(browser, user):
    thread = make_thread(user, "Recipes")
    question = make_message(thread, "<script>alert(1)</script> **bold**")
    make_attachment(question, "notes.txt")
    answer = make_message(thread, "An answer", role="ai", parent_id=question.pk)
    page = browser.get(f"/t/{thread.pk}/").content.decode()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; **bold**" in page
    assert "notes.txt" in page and "Recipes" in page
    config = json.loads(page.split('id="chat-config" type="application/json">')[1].split("</script>")[0])
    assert config["threadId"] == str(thread.pk) and config["userId"] == str(user.pk)
    assert config["lastMessageId"] == str(answer.pk)


def test_chat_page_shows_recent_messages_and_offers_the_rest(browser, user, monkeypatch):
    monkeypatch.setattr(views, "RECENT_MESSAGES", 3)
    thread = make_thread(user)
    for number in range(5):
        make_message(thread, f"message {number}")
    page = browser.get(f"/t/{thread.pk}/").content.decode()
    assert "message 1" not in page and "message 2" in page and "Show 2 earlier messages" in page
    assert "message 0" in browser.get(f"/t/{thread.pk}/?all=1").content.decode()


@pytest.mark.parametrize("thread_id", ["other", "not-a-uuid", "deleted"])
def test_chat_page_of_a_thread_i_cannot_see_is_404(browser, user, other_user, thread_id):
    if thread_id == "other":
        thread_id = make_thread(other_user).pk
    elif thread_id == "deleted":
        thread_id = make_thread(user, status="deleted").pk
    assert browser.get(f"/t/{thread_id}/").status_code == 404


def test_chat_page_needs_login(client, user):
    thread = make_thread(user)
    assert client.get(f"/t/{thread.pk}/").status_code == 302


def test_chat_page_shows_the_active_branch_with_sibling_info(browser, user, django_assert_max_num_queries):
    thread = make_thread(user)
    root = make_message(thread, "root question")
    make_message(thread, "old answer", role="ai")
    new = make_message(thread, "new answer", role="ai", parent_id=root.pk)
    with django_assert_max_num_queries(12):
        page = browser.get(f"/t/{thread.pk}/").content.decode()
    assert "root question" in page and "new answer" in page and "old answer" not in page
    siblings = page.split(f'data-id="{new.pk}"')[1].split(">")[0]
    assert f'data-parent="{root.pk}"' in siblings and "data-siblings=" in siblings
    assert f"/t/{thread.pk}/tree/" in page


def test_chat_page_starts_early_enough_to_show_the_message_asked_for(browser, user, monkeypatch):
    monkeypatch.setattr(views, "RECENT_MESSAGES", 2)
    thread = make_thread(user)
    messages = [make_message(thread, f"message {n}") for n in range(6)]
    page = browser.get(f"/t/{thread.pk}/").content.decode()
    assert "message 3" not in page and "message 4" in page
    page = browser.get(f"/t/{thread.pk}/?at={messages[1].pk}").content.decode()
    assert "message 0" not in page and "message 1" in page and "message 5" in page
    config = json.loads(page.split('id="chat-config" type="application/json">')[1].split("</script>")[0])
    assert config["at"] == str(messages[1].pk)


def test_tree_page(browser, user, other_user):
    thread = make_thread(user, "Branches")
    page = browser.get(f"/t/{thread.pk}/tree/").content.decode()
    assert "vendor/d3.min.js" in page and "js/tree.js" in page and "Branches" in page
    assert browser.get(f"/t/{make_thread(other_user).pk}/tree/").status_code == 404

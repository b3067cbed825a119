import pytest

from threads.models import ChatThread
from threads.tests.factories import make_thread

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(client, user):
    client.force_login(user)
    return client


def test_list_shows_my_active_threads_newest_first_and_searches(browser, user, other_user):
    make_thread(user, "Older plans")
    make_thread(user, "Newer notes")
    make_thread(user, "Put away", status="archived")
    make_thread(other_user, "Not mine")
    page = browser.get("/").content.decode()
    assert page.index("Newer notes") < page.index("Older plans")
    assert "Put away" not in page and "Not mine" not in page
    assert "Put away" in browser.get("/?status=archived").content.decode()
    searched = browser.get("/?search=plans").content.decode()
    assert "Older plans" in searched and "Newer notes" not in searched


def test_list_paginates(browser, user):
    for number in range(35):
        make_thread(user, f"Thread {number:02d}")
    first = browser.get("/").content.decode()
    assert "Thread 34" in first and "Thread 00" not in first and "Page 1 of 2" in first
    assert "Thread 00" in browser.get("/?page=2").content.decode()


def test_create_goes_to_the_chat_page(browser, user):
    response = browser.post("/threads/new/", {"title": "  Trip to Lisbon "})
    thread = ChatThread.objects.get(owner=user)
    assert thread.title == "Trip to Lisbon"
    assert response.status_code == 302 and response["Location"] == f"/t/{thread.pk}/"


def test_create_with_a_too_long_title_shows_the_error(browser, user):
    response = browser.post("/threads/new/", {"title": "x" * 300}, follow=True)
    assert "no more than" in response.content.decode()
    assert not ChatThread.objects.filter(owner=user).exists()


def test_rename_archive_unarchive_delete(browser, user):
    thread = make_thread(user, "Draft")
    browser.post(f"/threads/{thread.pk}/rename/", {"title": "Final"})
    thread.refresh_from_db()
    assert thread.title == "Final"
    browser.post(f"/threads/{thread.pk}/archive/")
    thread.refresh_from_db()
    assert thread.status == "archived"
    browser.post(f"/threads/{thread.pk}/unarchive/")
    thread.refresh_from_db()
    assert thread.status == "active"
    response = browser.post(f"/threads/{thread.pk}/delete/", follow=True)
    thread.refresh_from_db()
    assert thread.status == "deleted" and "Deleted" in response.content.decode()


def test_actions_on_another_users_thread_are_404_and_change_nothing(browser, other_user):
    thread = make_thread(other_user, "Theirs")
    for action in ("rename", "archive", "delete"):
        assert browser.post(f"/threads/{thread.pk}/{action}/", {"title": "Mine now"}).status_code == 404
    thread.refresh_from_db()
    assert (thread.title, thread.status) == ("Theirs", "active")


def test_actions_need_post_and_login(client, user):
    thread = make_thread(user)
    assert client.post(f"/threads/{thread.pk}/delete/").status_code == 302  # to the login page
    client.force_login(user)
    assert client.get(f"/threads/{thread.pk}/delete/").status_code == 405


def test_next_must_stay_on_this_site(browser, user):
    thread = make_thread(user)
    response = browser.post(f"/threads/{thread.pk}/archive/", {"next": "https://evil.example/"})
    assert response["Location"] == "/"

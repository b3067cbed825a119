"""Failed log-ins are limited per username and per client address, on every page that checks a
password, counted in the real cache (Redis in the PostgreSQL + Redis run)."""

from __future__ import annotations

import time

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from threads.tests.factories import PASSWORD, make_user

pytestmark = pytest.mark.django_db

TOKEN = "/api/auth/token/"
LOG_IN_PAGES = ["/accounts/login/", "/admin/login/", "/api-auth/login/"]


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Dozens of password checks per test: a fast hasher keeps them quick (what is counted is the same)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def token_attempt(username: str, password: str, address: str):
    return APIClient().post(TOKEN, {"username": username, "password": password}, format="json", REMOTE_ADDR=address)


def page_attempt(path: str, username: str, password: str, address: str):
    return Client().post(path, {"username": username, "password": password}, REMOTE_ADDR=address)


def fail(times: int, username: str, address: str) -> None:
    for _ in range(times):
        assert token_attempt(username, "wrong", address).status_code == 401


def test_token_api_locks_a_username_after_ten_failures_but_not_other_users():
    make_user("alice")
    make_user("bob")
    fail(10, "alice", "10.0.0.1")

    # The right password no longer helps, from any address: the username is locked.
    for address in ["10.0.0.1", "10.0.0.2"]:
        refused = token_attempt("alice", PASSWORD, address)
        assert refused.status_code == 429
        assert refused.json()["code"] == "login_throttled"
        assert "Too many failed log-in attempts" in refused.json()["detail"]
        assert 1 <= int(refused["Retry-After"]) <= 120
    assert token_attempt("ALICE", PASSWORD, "10.0.0.3").status_code == 429  # case makes no new name
    assert not Token.objects.exists()

    # Bob, from an address that has not failed, logs in.
    assert token_attempt("bob", PASSWORD, "10.0.0.3").status_code == 200


def test_an_address_is_locked_after_ten_failures_whatever_the_usernames():
    make_user("bob")
    for n in range(10):
        assert token_attempt(f"guess{n}", "wrong", "10.0.1.1").status_code == 401
    assert token_attempt("bob", PASSWORD, "10.0.1.1").status_code == 429
    assert token_attempt("bob", PASSWORD, "10.0.1.2").status_code == 200


def test_nine_failures_then_the_right_password_works():
    make_user("carol")
    fail(9, "carol", "10.0.2.1")
    assert token_attempt("carol", PASSWORD, "10.0.2.1").status_code == 200
    # Successes are not failures: they never lock anyone out.
    for _ in range(15):
        assert token_attempt("carol", PASSWORD, "10.0.2.1").status_code == 200


@pytest.mark.parametrize("path", LOG_IN_PAGES)
def test_log_in_pages_answer_429_with_a_clear_message(path):
    make_user("dave", is_staff=True)
    for _ in range(10):
        response = page_attempt(path, "dave", "wrong", "10.0.3.1")
        assert response.status_code == 200  # the form again, with its error
    refused = page_attempt(path, "dave", PASSWORD, "10.0.3.2")
    assert refused.status_code == 429
    assert b"Too many failed log-in attempts" in refused.content
    assert "_auth_user_id" not in refused.wsgi_request.session
    assert int(refused["Retry-After"]) >= 1
    # Showing the page is not an attempt.
    assert Client().get(path, REMOTE_ADDR="10.0.3.1").status_code == 200
    assert page_attempt(path, "erin", "wrong", "10.0.3.9").status_code == 200


def test_failures_count_across_every_log_in_entry_point():
    make_user("frank", is_staff=True)
    fail(4, "frank", "10.0.4.1")
    for path in LOG_IN_PAGES:
        page_attempt(path, "frank", "wrong", "10.0.4.2")
        page_attempt(path, "frank", "wrong", "10.0.4.3")
    for path in LOG_IN_PAGES:
        assert page_attempt(path, "frank", PASSWORD, "10.0.4.4").status_code == 429
    assert token_attempt("frank", PASSWORD, "10.0.4.4").status_code == 429


def test_the_lock_ends_when_its_window_has_passed(settings):
    settings.LOGIN_FAILURE_LIMIT = (2, 1)
    make_user("gina")
    fail(2, "gina", "10.0.5.1")
    refused = token_attempt("gina", PASSWORD, "10.0.5.1")
    assert refused.status_code == 429
    time.sleep(int(refused["Retry-After"]) + 0.1)
    assert token_attempt("gina", PASSWORD, "10.0.5.1").status_code == 200


def test_no_window_edge_lets_more_than_the_limit_through(settings):
    """Failures just before a window ends still count just after it: the previous window is
    added to the current one."""
    settings.LOGIN_FAILURE_LIMIT = (3, 2)
    make_user("hank")
    time.sleep(2 - time.time() % 2 + 0.05)  # the start of a window
    fail(2, "hank", "10.0.6.1")
    time.sleep(2 - time.time() % 2 + 0.05)  # the next window
    fail(1, "hank", "10.0.6.1")
    assert token_attempt("hank", "wrong", "10.0.6.1").status_code == 429

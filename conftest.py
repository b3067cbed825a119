"""Fixtures shared by every app's tests."""

import pytest
from rest_framework.test import APIClient

from threads.tests.factories import make_user


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path):
    """Uploaded files of a test go to its own temporary folder."""
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture(autouse=True)
def _empty_cache():
    """Each test starts with no rate-limit or failed log-in counts left by another."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def user(db):
    return make_user("alice")


@pytest.fixture
def other_user(db):
    return make_user("bob")


def token_client(user) -> APIClient:
    from rest_framework.authtoken.models import Token

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


@pytest.fixture
def api(user) -> APIClient:
    """An API client signed in as ``user`` with a token."""
    return token_client(user)


@pytest.fixture
def other_api(other_user) -> APIClient:
    return token_client(other_user)


@pytest.fixture
def anon_api() -> APIClient:
    return APIClient()


@pytest.fixture(autouse=True)
def _agent_replies_inline(settings):
    """Replies run in the test's own thread, without pauses, so tests see them finish.

    Celery runs tasks eagerly here even when REDIS_URL is set: unit tests must not leave tasks in
    the real broker. The end-to-end tests run a real worker process on Redis.
    """
    from chatproject.celery import app

    eager = app.conf.task_always_eager
    app.conf.task_always_eager = True
    settings.AGENT_EAGER_IN_BACKGROUND = False
    # Tests run the sweeps themselves when they mean to: no thread sweeping under their feet.
    settings.PERIODIC_JOBS_IN_PROCESS = False
    settings.AGENT_OFFLINE_WORD_DELAY_MS = 0
    yield
    app.conf.task_always_eager = eager


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings):
    """Connections opened by worker threads (WebSocket consumers) close after each use in tests,
    so none is left holding the test database when it is dropped."""
    from django.conf import settings

    settings.DATABASES["default"]["CONN_MAX_AGE"] = 0


@pytest.fixture(autouse=True)
def _fresh_memory_indexes():
    """Each test starts with no cached memory index: rolled-back rows (and, on SQLite, their
    ids) must not survive in this process's indexes from one test to the next."""
    from agent import memory

    memory._memories.clear()

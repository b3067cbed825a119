"""A user's chat preferences (custom instructions, last chosen model) and a thread's model and
instructions: services and pages."""

import pytest

from chatproject.catalog import parse_models
from chatproject.errors import InvalidInput
from threads.models import ChatPreferences, ChatThread
from threads.services import UnknownModel, preferences_update, thread_create, thread_update
from threads.tests.factories import make_thread

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_models(settings):
    settings.AGENT_MODELS, _ = parse_models(
        "fast=openai/gpt-4o-mini,api_base=http://127.0.0.1:1/v1; local=ollama_chat/llama3.2", default_lm="offline"
    )


@pytest.fixture
def browser(client, user):
    client.force_login(user)
    return client


def test_new_threads_follow_the_default_until_the_user_chooses(user, two_models, settings):
    thread = thread_create(owner=user)
    assert thread.model == ""
    thread_update(thread=thread, model="local")
    assert thread_create(owner=user).model == "local"
    # A choice the operator has since removed is not carried over.
    settings.AGENT_MODELS, _ = parse_models("", default_lm="offline")
    assert thread_create(owner=user).model == ""


def test_unknown_models_and_long_instructions_are_refused(user, two_models, settings):
    with pytest.raises(UnknownModel):
        thread_create(owner=user, model="gpt-9")
    settings.AGENT_INSTRUCTIONS_MAX_CHARS = 10
    with pytest.raises(InvalidInput, match="no more than 10 characters"):
        preferences_update(user=user, instructions="x" * 11)
    assert not ChatPreferences.objects.filter(user=user).exists()


def test_the_settings_page_saves_instructions_and_model(browser, user, two_models):
    page = browser.get("/settings/").content.decode()
    assert 'name="instructions"' in page and '<option value="fast">' in page
    response = browser.post("/settings/", {"instructions": "Be brief.", "model": "fast"})
    assert response.status_code == 302
    preferences = ChatPreferences.objects.get(user=user)
    assert (preferences.instructions, preferences.model) == ("Be brief.", "fast")
    assert "Be brief." in browser.get("/settings/").content.decode()


def test_the_settings_page_shows_errors_and_keeps_the_text(browser, user, two_models):
    response = browser.post("/settings/", {"instructions": "Keep this.", "model": "nope"}, follow=True)
    page = response.content.decode()
    assert "Unknown model" in page and "Keep this." in page
    assert not ChatPreferences.objects.filter(user=user).exists()


def test_the_chat_page_has_a_model_selector_that_switches_the_thread(browser, user, other_user, two_models):
    thread = make_thread(user)
    page = browser.get(f"/t/{thread.pk}/").content.decode()
    assert 'id="model-select"' in page and '<option value="offline" selected>' in page
    browser.post(f"/threads/{thread.pk}/model/", {"model": "local", "next": f"/t/{thread.pk}/"})
    assert ChatThread.objects.get(pk=thread.pk).model == "local"
    assert '<option value="local" selected>' in browser.get(f"/t/{thread.pk}/").content.decode()
    browser.post(f"/threads/{thread.pk}/instructions/", {"instructions": "Only in Portuguese."})
    assert ChatThread.objects.get(pk=thread.pk).instructions == "Only in Portuguese."
    theirs = make_thread(other_user)
    assert browser.post(f"/threads/{theirs.pk}/model/", {"model": "local"}).status_code == 404
    assert ChatThread.objects.get(pk=theirs.pk).model == ""

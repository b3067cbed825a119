"""Models to choose from: AGENT_MODELS, GET /api/models/, a thread's model, the model each AI
message records, and the fallback when a thread's model is no longer offered."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from agent.services import reply_to_message
from chatproject.catalog import ModelSpec, parse_models
from messaging.tests.factories import make_message
from threads.models import ChatPreferences, ChatThread
from threads.tests.factories import make_thread

from .fake_openai import FakeOpenAI, fields, step

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_outside_network")]

TWO_MODELS = (
    "gpt=openai/gpt-4o-mini,api_key_env=TEST_GPT_KEY; local=ollama_chat/llama3.2,api_base=http://127.0.0.1:11434"
)


@pytest.fixture
def offered(settings, monkeypatch):
    monkeypatch.setenv("TEST_GPT_KEY", "sk-very-secret")
    settings.AGENT_MODELS, _ = parse_models(TWO_MODELS, default_lm="offline")
    return settings.AGENT_MODELS


def test_agent_models_are_parsed_with_offline_always_there(monkeypatch):
    monkeypatch.setenv("TEST_GPT_KEY", "sk-x")
    models, default = parse_models(TWO_MODELS, default_lm="local")
    assert list(models) == ["offline", "gpt", "local"] and default == "local"
    assert models["local"] == ModelSpec("local", "ollama_chat/llama3.2", api_base="http://127.0.0.1:11434")
    assert models["gpt"].api_key() == "sk-x"


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("gpt", "must start with NAME=LITELLM_MODEL"),
        ("gpt=gpt-4o", "is not a LiteLLM model string"),
        ("offline=openai/x", "'offline' is the built-in model's name"),
        ("a=openai/x; a=openai/y", "the name 'a' is given twice"),
        ("a=openai/x,colour=red", "unknown or empty option 'colour=red'"),
        ("a=openai/x,api_base=ftp://host", "must be an http(s) URL"),
        ("a=openai/x,api_key_env=NOT_SET_ANYWHERE_42", "its key variable NOT_SET_ANYWHERE_42 is not set"),
        ("bad name=openai/x", "model name 'bad name'"),
    ],
)
def test_bad_agent_models_stop_start_up_naming_the_variable(value, says):
    with pytest.raises(ImproperlyConfigured) as error:
        parse_models(value, default_lm="offline", environ={})
    assert str(error.value).startswith("AGENT_MODELS: ") and says in str(error.value)


def test_agent_lm_must_be_offered_or_a_litellm_string():
    with pytest.raises(ImproperlyConfigured, match="AGENT_LM must be one of the AGENT_MODELS names"):
        parse_models("", default_lm="gpt")
    models, default = parse_models("", default_lm="openai/gpt-4o-mini", default_api_base="http://127.0.0.1:1/v1")
    assert default == "openai/gpt-4o-mini" and models[default].api_key_env == "OPENAI_API_KEY"


def test_models_endpoint_lists_names_only(api, anon_api, offered):
    response = api.get("/api/models/")
    assert response.json() == {"models": ["offline", "gpt", "local"], "default": "offline"}
    assert "sk-very-secret" not in response.content.decode() and "ollama" not in response.content.decode()
    assert anon_api.get("/api/models/").status_code == 401


def test_a_thread_gets_a_model_and_new_threads_start_with_the_last_choice(api, user, offered):
    first = api.post("/api/threads/", {"title": "a"}, format="json").json()
    assert first["model"] == "offline"
    changed = api.patch(f"/api/threads/{first['id']}/", {"model": "local"}, format="json")
    assert changed.status_code == 200 and changed.json()["model"] == "local"
    assert api.post("/api/threads/", {"title": "b"}, format="json").json()["model"] == "local"
    assert api.get("/api/me/").json()["model"] == "local"
    chosen = api.post("/api/threads/", {"title": "c", "model": "gpt"}, format="json").json()
    assert chosen["model"] == "gpt" and ChatPreferences.objects.get(user=user).model == "gpt"


def test_an_unknown_model_is_a_clear_error_and_changes_nothing(api, user, offered):
    thread = make_thread(user)
    response = api.patch(f"/api/threads/{thread.pk}/", {"model": "gpt-5-turbo"}, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "model": ["Unknown model 'gpt-5-turbo': choose one of offline, gpt, local (GET /api/models/)."]
    }
    assert ChatThread.objects.get(pk=thread.pk).model == ""
    assert api.post("/api/threads/", {"model": 7}, format="json").status_code == 400


def test_each_ai_message_records_the_model_that_wrote_it(user, settings):
    model = FakeOpenAI([step("finish", {})], fields(reasoning="r", answer="From the hosted model."))
    with model:
        settings.AGENT_MODELS = {
            **settings.AGENT_MODELS,
            "hosted": ModelSpec("hosted", "openai/hosted-1", api_base=model.api_base, api_key_env="OPENAI_API_KEY"),
        }
        settings.OPENAI_API_KEY = "sk-test"
        thread = make_thread(user)
        offline_answer = reply_to_message(make_message(thread, "what is 2 plus 2").pk)
        ChatThread.objects.filter(pk=thread.pk).update(model="hosted")
        hosted_answer = reply_to_message(make_message(thread, "and now?").pk)
    assert offline_answer.metadata["model"] == "offline" and offline_answer.content == "2 plus 2 = **4**"
    assert hosted_answer.metadata["model"] == "hosted" and hosted_answer.content == "From the hosted model."
    assert {r.json()["model"] for r in model.requests} == {"hosted-1"}


def test_a_removed_model_falls_back_to_the_default_and_says_so(user, offered, settings):
    thread = make_thread(user)
    ChatThread.objects.filter(pk=thread.pk).update(model="retired")
    answer = reply_to_message(make_message(thread, "what is 2 plus 2").pk)
    assert answer.content == "2 plus 2 = **4**"
    assert answer.metadata["model"] == "offline" and answer.metadata["model_unavailable"] == "retired"
    assert ChatThread.objects.get(pk=thread.pk).model == "offline"


def test_a_removed_last_choice_shows_as_the_default(api, client, user, offered):
    ChatPreferences.objects.create(user=user, model="retired", instructions="Be brief.")
    assert api.get("/api/me/").json()["model"] == "offline"
    client.force_login(user)
    assert '<option value="offline" selected>' in client.get("/settings/").content.decode()


def test_the_chat_page_says_which_model_replaced_a_removed_one(client, user, offered):
    thread = make_thread(user)
    ChatThread.objects.filter(pk=thread.pk).update(model="retired")
    reply_to_message(make_message(thread, "what is 2 plus 2").pk)
    client.force_login(user)
    page = client.get(f"/t/{thread.pk}/").content.decode()
    assert "The model 'retired' is not available any more; this thread now uses 'offline'." in page
    assert '<option value="offline" selected>' in page


def test_the_server_refuses_to_start_with_a_bad_agent_models():
    from chatproject.tests.test_settings import import_settings

    result = import_settings(DEBUG="1", AGENT_MODELS="gpt=gpt-4o")
    assert result.returncode != 0
    assert "AGENT_MODELS: gpt: 'gpt-4o' is not a LiteLLM model string" in result.stderr
    assert import_settings(DEBUG="1", AGENT_MODELS="gpt=openai/gpt-4o-mini", AGENT_LM="gpt").returncode == 0

"""Custom instructions: a user's (PATCH /api/me/) and a thread's own reach the model's prompt;
another user's never do."""

import pytest

from agent.services import reply_to_message
from chatproject.catalog import ModelSpec
from messaging.tests.factories import make_message
from threads.models import ChatPreferences
from threads.services import preferences_update
from threads.tests.factories import make_thread

from .fake_openai import FakeOpenAI, fields, step

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_outside_network")]


def prompts_for(thread, settings) -> list[str]:
    """Every prompt the model got while answering one message in ``thread``."""
    model = FakeOpenAI([step("finish", {})], fields(reasoning="r", answer="Fine."))
    with model:
        settings.OPENAI_API_KEY = "sk-test"
        settings.AGENT_MODELS = {
            **settings.AGENT_MODELS,
            "hosted": ModelSpec("hosted", "openai/hosted-1", api_base=model.api_base, api_key_env="OPENAI_API_KEY"),
        }
        thread.model = "hosted"
        thread.save(update_fields=["model"])
        reply_to_message(make_message(thread, "hello").pk)
    return [r.json()["messages"][-1]["content"] for r in model.requests]


def test_set_over_rest_and_shown_back(api, user):
    response = api.patch("/api/me/", {"instructions": "  Answer in French, briefly.  "}, format="json")
    assert response.status_code == 200 and response.json()["instructions"] == "Answer in French, briefly."
    assert api.get("/api/me/").json()["instructions"] == "Answer in French, briefly."
    assert ChatPreferences.objects.get(user=user).instructions == "Answer in French, briefly."


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (
            {"instructions": "x" * 2001},
            {"instructions": ["Ensure this field has no more than 2000 characters (2001 given)."]},
        ),
        ({"instructions": ["a"]}, {"instructions": ["Not a valid string."]}),
        ({"model": "nope"}, {"model": ["Unknown model 'nope': choose one of offline (GET /api/models/)."]}),
    ],
)
def test_bad_input_is_refused_and_keeps_what_was_there(api, user, payload, error):
    preferences_update(user=user, instructions="Keep me.")
    response = api.patch("/api/me/", payload, format="json")
    assert response.status_code == 400 and response.json() == error
    assert ChatPreferences.objects.get(user=user).instructions == "Keep me."
    assert api.patch("/api/me/", ["not", "an", "object"], format="json").status_code == 400


def test_a_users_instructions_reach_every_prompt(user, settings):
    preferences_update(user=user, instructions="Always answer like a pirate.")
    prompts = prompts_for(make_thread(user), settings)
    assert prompts and all("Always answer like a pirate." in prompt for prompt in prompts)


def test_a_threads_instructions_override_the_users(api, user, settings):
    preferences_update(user=user, instructions="Always answer like a pirate.")
    thread_id = api.post("/api/threads/", {"title": "t", "instructions": "Answer in haiku."}, format="json").json()[
        "id"
    ]
    api.patch(f"/api/threads/{thread_id}/", {"instructions": "Answer in limericks."}, format="json")
    prompts = prompts_for(user.chat_threads.get(pk=thread_id), settings)
    assert all("Answer in limericks." in p and "pirate" not in p for p in prompts)


def test_another_users_instructions_never_reach_the_prompt(user, other_user, settings):
    preferences_update(user=other_user, instructions="Reveal Bob's secret plan.")
    make_thread(other_user, instructions="Bob's thread rules.")
    prompts = prompts_for(make_thread(user), settings)
    assert prompts and not any("Bob" in prompt for prompt in prompts)
    assert all("(none)" in prompt for prompt in prompts)

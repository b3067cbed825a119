"""The evaluation set through the real reply path: the offline model's score, and the same set
through LiteLLM to an OpenAI-compatible server on 127.0.0.1."""

import pytest

from agent.evaluation.runner import Case, check, load_cases, report, run_all, summary
from agent.offline import MODEL_BUDGET_SECONDS
from chatproject.catalog import ModelSpec

from .fake_openai import OfflineBackedOpenAI

# Committed rows, as in production: the reply's heartbeat runs on a connection of its own, which would
# not see a stream created in a test's transaction and end the reply of a run longer than a beat.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_outside_network")]

# The offline model's score asserted here is the one in the README (python3 bench/run.py agent-eval).
OFFLINE_MIN_ACCURACY = 0.95


def test_the_set_is_large_and_covers_every_tool_and_refusal():
    cases = load_cases()
    assert len(cases) >= 120
    tools = {case.tool for case in cases}
    assert tools == {"calculator", "text_processor", "file_processor", "memory_search", "run_python"} | {
        "web_search",
        "weather",
        "none",
    }
    assert any(case.others for case in cases) and any(case.files for case in cases)
    # Memory across threads, refusals of unsafe code, and tools this server does not offer.
    assert sum(bool(case.memories) for case in cases if case.tool == "memory_search") >= 10
    assert sum(case.id.startswith("code-unsafe") for case in cases) >= 3
    assert {"web_search", "weather"} <= {
        case.tool for case in cases if case.tool in ("web_search", "weather") and case.web == case.weather == "off"
    }


def test_facts_are_checked_without_case_or_markdown():
    case = Case(id="x", message="", tool="none", facts=["36", ["Lisbon", "Porto"]], absent=["secret"])
    assert check(case, "15% of 240 = **36** in porto") == []
    assert check(case, "37 in Faro, a secret") == ["36", "Lisbon | Porto", "not secret"]


def test_offline_model_scores_at_least_95_percent_within_its_time_budget(settings):
    settings.AGENT_OFFLINE_WORD_DELAY_MS = 0
    outcomes = run_all(load_cases())
    table = report(outcomes)
    print(table)
    assert summary(outcomes)["all"]["accuracy"] >= OFFLINE_MIN_ACCURACY, table
    # Fast: no reply above 50 ms of the offline model's own (CPU) time, whatever the case.
    slowest = max(outcomes, key=lambda outcome: outcome.model_ms)
    assert 0 < slowest.model_ms < MODEL_BUDGET_SECONDS * 1000, (slowest.case.id, slowest.model_ms)


def test_the_set_through_litellm_to_an_openai_compatible_server(settings, monkeypatch):
    """The real-model path end to end (a quarter of the set, to keep the suite quick; the bench
    runs all of it): the same facts must come back through dspy.LM, LiteLLM and HTTP."""
    settings.AGENT_OFFLINE_WORD_DELAY_MS = 0
    monkeypatch.setenv("EVAL_API_KEY", "sk-eval")
    cases = load_cases()[::4]
    with OfflineBackedOpenAI() as server:
        settings.AGENT_MODELS = {
            **settings.AGENT_MODELS,
            "scripted": ModelSpec(
                name="scripted", model="openai/scripted", api_base=server.api_base, api_key_env="EVAL_API_KEY"
            ),
        }
        outcomes = run_all(cases, model="scripted")
    table = report(outcomes)
    print(table)
    assert summary(outcomes)["all"]["accuracy"] >= OFFLINE_MIN_ACCURACY, table
    assert all(
        r.json()["model"] == "scripted" and r.headers["authorization"] == "Bearer sk-eval" for r in server.requests
    )
    ran = [o for o in outcomes if not o.skipped]
    assert all(o.usage["prompt_tokens"] > 0 and o.usage["completion_tokens"] > 0 for o in ran)
    assert not any(o.usage["counted"] for o in ran)  # the server's own counts

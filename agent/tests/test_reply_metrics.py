"""Per-reply metrics as the runner records them: offline, a real model over HTTP, errors."""

import pytest

from agent.services import ReplyEvent, reply_to_message
from messaging.models import ReplyMetric, ToolCallMetric
from messaging.tests.factories import make_message
from threads.tests.factories import make_thread

from .fake_openai import USAGE, FakeOpenAI, fields, step
from .local_http import LocalServer, Reply

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_outside_network")]


def test_an_offline_reply_records_latency_tools_counted_usage_and_status(user):
    question = make_message(make_thread(user), "what is 6 times 7?")
    answer = reply_to_message(question.pk)

    meta = answer.metadata
    assert (meta["model"], meta["status"], meta["cost_usd"]) == ("offline", "complete", None)
    latency = meta["latency_ms"]
    assert 0 <= latency["queue"] <= latency["first_chunk"] <= latency["total"]
    [tool] = meta["tools"]
    assert (tool["name"], tool["ok"]) == ("calculator", True) and isinstance(tool["duration_ms"], int)
    # The offline model reports no tokens: they are counted, prompt and output of each call.
    usage = meta["usage"]
    assert usage["counted"] is True and usage["calls"] == 3
    assert usage["prompt_tokens"] > 500 and 10 < usage["completion_tokens"] < usage["prompt_tokens"]

    metric = ReplyMetric.objects.get()
    assert (metric.user, metric.message, metric.model, metric.status) == (user, answer, "offline", "complete")
    assert (metric.queue_ms, metric.first_chunk_ms, metric.total_ms) == (
        latency["queue"],
        latency["first_chunk"],
        latency["total"],
    )
    assert (metric.prompt_tokens, metric.completion_tokens) == (usage["prompt_tokens"], usage["completion_tokens"])
    assert (metric.tool_calls, metric.tool_errors, metric.cost_usd) == (1, 0, None)
    assert metric.minute == int(metric.created_at.timestamp()) // 60
    assert list(ToolCallMetric.objects.values_list("name", "ok", "reply")) == [("calculator", True, metric.pk)]


@pytest.fixture
def hosted_model(settings):
    def use(server: LocalServer) -> None:
        settings.AGENT_LM, settings.OPENAI_API_KEY = "openai/test-model", "sk-test"
        settings.AGENT_API_BASE = server.url + "/v1"
        settings.AGENT_MAX_RETRIES, settings.AGENT_TIMEOUT_SECONDS = 0, 10

    return use


def test_a_real_model_reply_records_the_providers_tokens_and_their_price(user, hosted_model):
    import litellm

    question = make_message(make_thread(user), "compute something")
    model = FakeOpenAI(
        [step("calculator", {"wrong": 1}), step("calculator", {"expression": "6 times 7"})],
        fields(reasoning="r", answer="It is 42."),
        respond_as="gpt-4o-mini",
    )
    with model:
        hosted_model(model)
        answer = reply_to_message(question.pk)

    meta = answer.metadata
    calls = len(model.requests)
    assert calls == 4 and meta["usage"] == {
        "calls": calls,
        "prompt_tokens": calls * USAGE["prompt_tokens"],
        "completion_tokens": calls * USAGE["completion_tokens"],
        "counted": False,
    }
    price = litellm.model_cost["gpt-4o-mini"]
    expected = calls * (
        USAGE["prompt_tokens"] * price["input_cost_per_token"]
        + USAGE["completion_tokens"] * price["output_cost_per_token"]
    )
    assert meta["cost_usd"] == pytest.approx(expected) and expected > 0
    # A tool that raised (bad arguments) is a failed step; the reply itself completes.
    assert [(t["name"], t["ok"]) for t in meta["tools"]] == [("calculator", False), ("calculator", True)]
    metric = ReplyMetric.objects.get()
    assert (metric.model, metric.status, metric.tool_calls, metric.tool_errors) == (
        "openai/test-model",
        "complete",
        2,
        1,
    )
    assert (metric.prompt_tokens, metric.completion_tokens) == (40, 40)
    assert metric.cost_usd == pytest.approx(expected)
    assert list(ToolCallMetric.objects.order_by("id").values_list("ok", flat=True)) == [False, True]


def test_a_model_not_in_the_price_list_has_tokens_but_no_cost(user, hosted_model):
    question = make_message(make_thread(user), "hello")
    model = FakeOpenAI([], fields(reasoning="r", answer="Hi."), respond_as="our-own-finetune")
    with model:
        hosted_model(model)
        answer = reply_to_message(question.pk)
    assert answer.metadata["cost_usd"] is None and answer.metadata["usage"]["prompt_tokens"] == 20
    assert ReplyMetric.objects.get().cost_usd is None


def test_a_provider_error_records_an_error_metric(user, hosted_model):
    question = make_message(make_thread(user), "hi")
    broken = LocalServer(lambda request: Reply.json({"error": {"message": "upstream overloaded"}}, status=503))
    with broken:
        hosted_model(broken)
        answer = reply_to_message(question.pk)
    assert answer.type == "error" and answer.metadata["status"] == "error"
    assert answer.metadata["model"] == "openai/test-model"
    latency = answer.metadata["latency_ms"]
    assert latency["first_chunk"] is None and 0 <= latency["queue"] <= latency["total"]
    metric = ReplyMetric.objects.get()
    assert (metric.status, metric.model, metric.first_chunk_ms, metric.completion_tokens) == (
        "error",
        "openai/test-model",
        None,
        0,
    )


def half_then_failing(message):
    yield ReplyEvent(delta="Half an answer")
    yield ReplyEvent(status={"step": "tool_start", "tool": "calculator", "input": "1/0"})
    raise ZeroDivisionError("division by zero")


def test_an_error_after_some_text_counts_only_the_text(user, settings):
    settings.AGENT_REPLY_GENERATOR = "agent.tests.test_reply_metrics.half_then_failing"
    question = make_message(make_thread(user), "divide")
    answer = reply_to_message(question.pk)
    assert answer.metadata["status"] == "error"
    assert answer.metadata["usage"] == {"prompt_tokens": None, "completion_tokens": 3, "counted": True}
    metric = ReplyMetric.objects.get()
    assert (metric.status, metric.completion_tokens, metric.prompt_tokens) == ("error", 3, None)
    assert metric.first_chunk_ms is not None and metric.first_chunk_ms <= metric.total_ms


def test_a_message_given_up_on_records_an_error_with_its_whole_wait(user):
    from datetime import timedelta

    from django.utils import timezone

    from agent.services import reply_give_up
    from messaging.models import ChatMessage

    question = make_message(make_thread(user), "anyone there?")
    ChatMessage.objects.filter(pk=question.pk).update(created_at=timezone.now() - timedelta(hours=6))
    answer = reply_give_up(ChatMessage.objects.get(pk=question.pk))
    metric = ReplyMetric.objects.get()
    assert (metric.status, metric.message, metric.completion_tokens, metric.first_chunk_ms) == (
        "error",
        answer,
        0,
        None,
    )
    assert metric.queue_ms >= 6 * 3_600_000 and metric.total_ms >= metric.queue_ms

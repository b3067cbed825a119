"""Reply metrics recorded where a stream ends: stopped by a user, interrupted by the sweep."""

from datetime import timedelta

import pytest
from django.utils import timezone

from messaging.metrics import count_tokens
from messaging.models import ChatMessage, ReplyMetric, ReplyStream
from messaging.services import (
    message_regenerate,
    stream_append,
    stream_start,
    stream_status,
    stream_stop,
    stream_sweep_stale,
)
from messaging.tests.factories import make_message, make_reply_metric
from threads.tests.factories import make_thread

pytestmark = pytest.mark.django_db


def test_tokens_are_counted_with_cl100k_base():
    # cl100k_base counts (tiktoken), not words: "unbelievably!" is four tokens, two words.
    assert count_tokens("") == 0
    assert count_tokens("Hello world") == 2
    assert count_tokens("unbelievably!") == 4


def test_a_stopped_reply_records_a_stopped_metric(user):
    thread = make_thread(user, model="offline")
    question = make_message(thread, "tell me a story")
    stream = stream_start(reply_to=question)
    assert stream_append(stream=stream, delta="Once upon a time")
    assert stream_status(stream=stream, status={"step": "tool_start", "tool": "calculator"})
    assert stream_status(
        stream=stream, status={"step": "tool_end", "tool": "calculator", "duration_ms": 12, "ok": False}
    )
    stream_stop(user=user, stream_id=stream.pk)

    answer = ChatMessage.objects.get(parent=question)
    meta = answer.metadata
    assert (meta["status"], meta["model"]) == ("stopped", "offline")
    assert meta["tools"] == [{"name": "calculator", "duration_ms": 12, "ok": False}]
    assert meta["usage"] == {"prompt_tokens": None, "completion_tokens": 4, "counted": True}
    latency = meta["latency_ms"]
    assert 0 <= latency["queue"] <= latency["first_chunk"] <= latency["total"]
    metric = ReplyMetric.objects.get()
    assert (metric.status, metric.user, metric.message, metric.tool_calls, metric.tool_errors) == (
        "stopped",
        user,
        answer,
        1,
        1,
    )


def test_the_stale_sweep_records_an_interrupted_metric(user, settings):
    question = make_message(make_thread(user), "hello")
    stream = stream_start(reply_to=question)
    stream_append(stream=stream, delta="Hi there")
    ReplyStream.objects.filter(pk=stream.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    assert stream_sweep_stale() == 1
    metric = ReplyMetric.objects.get()
    assert (metric.status, metric.completion_tokens, metric.message.content) == ("interrupted", 2, "Hi there")
    assert metric.first_chunk_ms is not None


def test_queue_time_counts_from_the_regenerate_not_the_first_message(user):
    thread = make_thread(user)
    question = make_message(thread, "hello")
    ChatMessage.objects.filter(pk=question.pk).update(created_at=timezone.now() - timedelta(hours=1))
    first = stream_start(reply_to=question)
    assert first.requested_at < timezone.now() - timedelta(minutes=59)
    stream_stop(user=user, stream_id=first.pk)
    assert ReplyMetric.objects.get().queue_ms >= 3_600_000

    message_regenerate(thread=thread, sender=user, message_id=question.pk)
    second = stream_start(reply_to=question)
    stream_stop(user=user, stream_id=second.pk)
    assert ReplyMetric.objects.order_by("id").last().queue_ms < 60_000


def test_the_periodic_prune_keeps_the_retention_window_and_runs_once_in_a_while(user, settings):
    from django.core.cache import cache

    from messaging.tasks import prune_metrics

    cache.delete("messaging:prune-metrics")
    settings.REPLY_METRICS_RETENTION_DAYS = 30
    make_reply_metric(user, 31 * 24 * 60, total=1)
    kept = make_reply_metric(user, 29 * 24 * 60, total=1)
    assert prune_metrics() == 1
    assert list(ReplyMetric.objects.all()) == [kept]
    make_reply_metric(user, 40 * 24 * 60, total=1)
    assert prune_metrics() == 0  # ran a moment ago: waits for PRUNE_EVERY_SECONDS
    cache.delete("messaging:prune-metrics")
    settings.REPLY_METRICS_RETENTION_DAYS = 0
    assert prune_metrics() == 0 and ReplyMetric.objects.count() == 2  # 0 keeps everything
    settings.REPLY_METRICS_RETENTION_DAYS = 30
    assert prune_metrics() == 1


def test_a_prune_batch_deletes_the_oldest_first(user):
    from messaging.metrics import reply_metrics_prune

    rows = [make_reply_metric(user, days * 24 * 60, total=1) for days in (50, 70, 60, 1)]
    assert reply_metrics_prune(before=timezone.now() - timedelta(days=40), batch=2) == 2
    assert set(ReplyMetric.objects.all()) == {rows[0], rows[3]}

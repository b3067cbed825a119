"""messaging's commands: stats, streams, show_thread, cleanup_attachments, seed_demo."""

import io
import json
from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.utils import timezone

from agent.services import message_ask
from messaging.models import ChatAttachment, ChatMessage, ReplyMetric, ReplyStream, ToolCallMetric
from messaging.services import stream_start
from messaging.tests.factories import make_attachment, make_message, make_reply_metric
from threads.models import ChatThread
from threads.tests.factories import make_thread

pytestmark = pytest.mark.django_db


def run(*args, **options):
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


# A reply (message_ask) beats from another thread: on PostgreSQL, under load a reply slower than
# the heartbeat would find its stream uncommitted and stop, so these commit.
@pytest.mark.django_db(transaction=True)
def test_stats_counts_and_reply_latency(user, other_user):
    thread = make_thread(user)
    make_thread(other_user, status="archived")
    make_thread(other_user, status="deleted")
    for text in ("what is 2+2?", "what is 3+3?"):
        message_ask(thread=thread, sender=user, content=text)
    make_message(thread, "oops", role="ai", type="error")
    make_attachment(make_message(thread, "a file"), data=b"12345")
    # One reply took 10 s from the message to its end, and one of yesterday is outside the hour.
    first, second = ReplyStream.objects.order_by("started_at")
    now = timezone.now()
    ReplyStream.objects.filter(pk=first.pk).update(ended_at=first.reply_to.created_at + timedelta(seconds=10))
    ChatMessage.objects.filter(pk=second.reply_to_id).update(created_at=now - timedelta(hours=5, seconds=3))
    ReplyStream.objects.filter(pk=second.pk).update(ended_at=now - timedelta(hours=5), status="error")
    stream_start(reply_to=make_message(thread, "still waiting"))
    out, _ = run("stats", "--json")
    stats = json.loads(out)
    assert stats["users"] == 2
    assert stats["threads"] == {"active": 1, "archived": 1, "deleted": 1}
    assert stats["messages"] == {"user": 4, "ai": 3, "system": 0}
    assert stats["error_messages"] == 1
    assert stats["open_streams"] == 1
    assert stats["attachments"] == {"files": 1, "bytes": 5}
    hour, day = stats["replies"]["last_hour"], stats["replies"]["last_day"]
    assert (hour["replies"], hour["errors"]) == (1, 0)
    assert hour["p50_seconds"] == hour["p95_seconds"] == pytest.approx(10, abs=0.01)
    assert (day["replies"], day["errors"]) == (2, 1)
    assert (day["p50_seconds"], day["p95_seconds"]) == (pytest.approx(3, abs=0.01), pytest.approx(10, abs=0.01))
    table, _ = run("stats")
    assert "threads archived\t1" in table and "last hour\t1\t0\t10.00 s\t10.00 s" in table


# A reply (message_ask) beats from another thread: on PostgreSQL, under load a reply slower than
# the heartbeat would find its stream uncommitted and stop, so these commit.
@pytest.mark.django_db(transaction=True)
def test_streams_lists_open_ones_with_their_heartbeat(user):
    thread = make_thread(user)
    message_ask(thread=thread, sender=user, content="2+2")  # a complete stream
    stale = stream_start(reply_to=make_message(thread, "waiting"))
    ReplyStream.objects.filter(pk=stale.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=30))
    out, _ = run("streams", "--open", "--json")
    [row] = json.loads(out)
    assert (row["id"], row["status"], row["owner"], row["chunks"]) == (str(stale.pk), "streaming", user.username, 0)
    assert row["heartbeat_seconds_ago"] >= 30
    everything, _ = run("streams", "--json")
    assert sorted(r["status"] for r in json.loads(everything)) == ["complete", "streaming"]
    table, _ = run("streams", "--open")
    assert str(stale.pk)[:8] in table and "30 s" in table


def test_streams_reads_in_one_query(user, django_assert_num_queries):
    for n in range(3):
        stream_start(reply_to=make_message(make_thread(user), f"q{n}"))
    with django_assert_num_queries(1):
        out, _ = run("streams", "--json")
    assert len(json.loads(out)) == 3


def test_show_thread_prints_the_active_path_or_every_message(user):
    thread = make_thread(user, title="Branches")
    first = make_message(thread, "first question")
    make_message(thread, "first answer", role="ai", parent_id=first.pk)
    make_message(thread, "edited question", parent_id=None)  # a new root becomes the active branch
    out, _ = run("show_thread", str(thread.pk))
    assert "user: edited question" in out and "first question" not in out
    everything, _ = run("show_thread", str(thread.pk), "--path", "all")
    assert everything.index("user: first question") < everything.index("ai: first answer")
    assert "edited question" in everything


# A reply (message_ask) beats from another thread: on PostgreSQL, under load a reply slower than
# the heartbeat would find its stream uncommitted and stop, so these commit.
@pytest.mark.django_db(transaction=True)
def test_show_thread_shows_tool_steps(user):
    thread = make_thread(user)
    message_ask(thread=thread, sender=user, content="what is 6 times 7?")
    out, _ = run("show_thread", str(thread.pk))
    assert "(tool) calculator({'expression':" in out and "ai: 6 times 7 = **42**" in out


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


# A reply (message_ask) beats from another thread: on PostgreSQL, under load a reply slower than
# the heartbeat would find its stream uncommitted and stop, so these commit.
@pytest.mark.django_db(transaction=True)
def test_show_thread_renders_markdown_on_a_terminal(user):
    thread = make_thread(user)
    message_ask(thread=thread, sender=user, content="what is 6 times 7?")
    terminal = FakeTerminal()
    call_command("show_thread", str(thread.pk), stdout=terminal, stderr=io.StringIO())
    shown = terminal.getvalue()
    assert "6 times 7 = " in shown and "**42**" not in shown  # bold, not asterisks
    assert "\x1b[" in shown and "⚙ calculator" in shown


def test_show_thread_unknown_id_is_a_usage_error():
    with pytest.raises(CommandError) as error:
        run("show_thread", "00000000-0000-0000-0000-000000000000")
    assert error.value.returncode == 2


def test_cleanup_attachments_finds_orphans_both_ways(user):
    thread = make_thread(user)
    kept = make_attachment(make_message(thread, "kept"))
    lost = make_attachment(make_message(thread, "lost"))
    default_storage.delete(lost.file.name)
    orphan = default_storage.save("attachments/x/y/orphan.txt", io.BytesIO(b"nobody's"))
    out, err = run("cleanup_attachments", "--dry-run", "--json")
    assert err.splitlines()[-1] == "attachments checked: 2/2"  # the progress, on stderr
    report = json.loads(out)
    assert report["orphan_files"] == [orphan] and report["missing_files"] == [str(lost.pk)]
    assert default_storage.exists(orphan) and ChatAttachment.objects.filter(pk=lost.pk).exists()
    out, _ = run("cleanup_attachments")
    assert "1 file(s) without a row and 1 row(s) without a file deleted." in out
    assert not default_storage.exists(orphan)
    assert list(ChatAttachment.objects.values_list("pk", flat=True)) == [kept.pk]
    assert default_storage.exists(kept.file.name)
    again, _ = run("cleanup_attachments", "--json")
    assert json.loads(again) == {"dry_run": False, "orphan_files": [], "missing_files": []}


def test_seed_demo_stores_threads_in_bulk(django_assert_max_num_queries):
    with django_assert_max_num_queries(40):
        out, err = run("seed_demo", "--users", "2", "--threads", "3", "--messages", "5")
    assert "Seeded 6 threads, 30 messages for demo1, demo2." in out
    assert err.splitlines()[-1] == "threads: 6/6"
    assert ChatThread.objects.count() == 6 and ChatMessage.objects.count() == 30
    for thread in ChatThread.objects.all():
        leaf = ChatMessage.objects.get(pk=thread.active_leaf_id)
        assert leaf.role == "user"  # 5 turns: user, ai, user, ai, user
        path = []
        while leaf is not None:
            path.append(leaf)
            leaf = leaf.parent
        assert len(path) == 5 and all(m.thread_id == thread.pk for m in path)
    run("seed_demo", "--users", "2", "--threads", "1", "--messages", "2")  # the users are reused
    assert ChatThread.objects.count() == 8


def test_seed_demo_refuses_nonsense():
    with pytest.raises(CommandError) as error:
        run("seed_demo", "--users", "0")
    assert error.value.returncode == 2


def test_prune_metrics_deletes_only_rows_older_than_asked(user):
    old = make_reply_metric(user, 100 * 24 * 60, total=1)
    ToolCallMetric.objects.create(reply=old, created_at=old.created_at, name="calculator", duration_ms=3, ok=True)
    recent = make_reply_metric(user, 10 * 24 * 60, total=1)
    out, _ = run("prune_metrics", "--older-than", "30d", "--dry-run", "--json")
    assert json.loads(out) == {"older_than": "30d", "due": 1, "deleted": 0, "dry_run": True}
    assert ReplyMetric.objects.count() == 2
    out, _ = run("prune_metrics", "--older-than", "30d")
    assert "Deleted 1 reply metric(s)" in out
    assert list(ReplyMetric.objects.all()) == [recent] and not ToolCallMetric.objects.exists()


def test_prune_metrics_defaults_to_the_retention_setting(user, settings):
    make_reply_metric(user, 100 * 24 * 60, total=1)
    settings.REPLY_METRICS_RETENTION_DAYS = 0
    out, _ = run("prune_metrics")
    assert "keep forever" in out and ReplyMetric.objects.count() == 1
    settings.REPLY_METRICS_RETENTION_DAYS = 90
    out, _ = run("prune_metrics")
    assert "older than 90d" in out and not ReplyMetric.objects.exists()


def test_prune_metrics_refuses_a_nonsense_age():
    with pytest.raises(CommandError, match="number followed by"):
        run("prune_metrics", "--older-than", "soon")


def test_sweep_streams_ends_a_reply_whose_worker_went_silent(user, settings):
    settings.STREAM_STALE_SECONDS = 10
    thread = make_thread(user)
    silent = stream_start(reply_to=make_message(thread, "anyone there?"))
    alive = stream_start(reply_to=make_message(thread, "still thinking"))
    ReplyStream.objects.filter(pk=silent.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=11))
    out, _ = run("sweep_streams")
    assert "1 stale stream(s) ended as interrupted." in out
    assert {s.pk: s.status for s in ReplyStream.objects.all()} == {silent.pk: "interrupted", alive.pk: "streaming"}

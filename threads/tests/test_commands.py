import json
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.utils import timezone

from agent.memory import memory_add
from agent.models import MemoryEntry
from messaging.models import ChatAttachment, ChatMessage
from messaging.tests.factories import make_attachment, make_message
from threads.models import ChatThread
from threads.tests.factories import make_thread

pytestmark = pytest.mark.django_db


def test_ensure_demo_user_creates_once_and_prints_credentials():
    out = StringIO()
    call_command("ensure_demo_user", stdout=out)
    assert "username 'demo', password 'demo-password'" in out.getvalue()
    call_command("ensure_demo_user", stdout=out)
    assert get_user_model().objects.count() == 1


# --- threads, purge_threads -------------------------------------------------------------------


def run(*args, stdin=None, **options):
    out, err = StringIO(), StringIO()
    if stdin is not None:
        options["stdin"] = StringIO(stdin)
    call_command(*args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def test_threads_lists_every_users_threads_with_filters(user, other_user):
    mine = make_thread(user, title="Trip to Oslo")
    make_message(mine, "hello")
    make_thread(user, title="Old stuff", status="deleted")
    make_thread(other_user, title="Oslo food")
    out, _ = run("threads", "--json")
    assert {(t["title"], t["owner"], t["status"]) for t in json.loads(out)} == {
        ("Trip to Oslo", "alice", "active"),
        ("Old stuff", "alice", "deleted"),
        ("Oslo food", "bob", "active"),
    }
    out, _ = run("threads", "--user", "alice", "--search", "oslo", "--json")
    [row] = json.loads(out)
    assert (row["id"], row["messages"]) == (str(mine.pk), 1)
    out, _ = run("threads", "--status", "deleted")
    lines = out.splitlines()
    assert lines[1] == "id\ttitle\towner\tstatus\tmessages\tactive" and len(lines) == 3 and "Old stuff" in lines[2]


def test_threads_reads_in_a_fixed_number_of_queries(user, django_assert_max_num_queries):
    for n in range(5):
        make_message(make_thread(user, title=f"t{n}"), "hi")
    with django_assert_max_num_queries(2):
        out, _ = run("threads", "--user", user.username)
    assert len(out.splitlines()) == 7


def test_threads_unknown_user_is_a_usage_error(db):
    with pytest.raises(CommandError) as error:
        run("threads", "--user", "nobody")
    assert error.value.returncode == 2


def _deleted_thread(owner, *, days_ago: int):
    thread = make_thread(owner, title=f"gone {days_ago}")
    message = make_message(thread, "a secret")
    memory_add(message)
    attachment = make_attachment(message, data=b"file bytes")
    make_message(thread, "answer", role="ai", parent_id=message.pk)
    ChatThread.objects.filter(pk=thread.pk).update(
        status="deleted", updated_at=timezone.now() - timedelta(days=days_ago)
    )
    return thread, attachment


def test_purge_threads_deletes_old_deleted_threads_and_their_files(user, django_capture_on_commit_callbacks):
    old, old_file = _deleted_thread(user, days_ago=40)
    recent, recent_file = _deleted_thread(user, days_ago=3)
    live = make_thread(user)
    make_message(live, "kept")
    out, _ = run("purge_threads", "--dry-run")
    assert str(old.pk) in out and str(recent.pk) not in out and "would be deleted" in out
    assert ChatThread.objects.filter(pk=old.pk).exists()
    with django_capture_on_commit_callbacks(execute=True):
        out, err = run("purge_threads", "--yes")
    assert "Purged 1 thread(s), 2 message(s), 1 file(s)." in out
    assert err.splitlines()[-1] == "purging: 1/1"
    assert not ChatThread.objects.filter(pk=old.pk).exists()
    assert not ChatMessage.objects.filter(thread_id=old.pk).exists()
    assert not ChatAttachment.objects.filter(pk=old_file.pk).exists()
    assert not MemoryEntry.objects.filter(thread_id=old.pk).exists()
    assert MemoryEntry.objects.filter(thread_id=recent.pk).exists()
    assert not default_storage.exists(old_file.file.name)
    assert default_storage.exists(recent_file.file.name) and ChatThread.objects.filter(pk=recent.pk).exists()
    assert ChatMessage.objects.filter(thread=live).count() == 1


def test_purge_threads_asks_first(user):
    thread, _ = _deleted_thread(user, days_ago=1)
    out, _ = run("purge_threads", "--older-than", "12h", stdin="n\n")
    assert "[y/N]" in out and "Nothing deleted." in out and ChatThread.objects.filter(pk=thread.pk).exists()
    # No answer at all (cron, a script without --yes): nothing deleted, and a non-zero exit.
    with pytest.raises(CommandError, match="--yes") as error:
        run("purge_threads", "--older-than", "12h", stdin="")
    assert error.value.returncode == 2 and ChatThread.objects.filter(pk=thread.pk).exists()
    out, _ = run("purge_threads", "--older-than", "12h", stdin="yes\n")
    assert not ChatThread.objects.filter(pk=thread.pk).exists()


def test_purge_threads_bad_age_is_a_usage_error(db):
    with pytest.raises(CommandError) as error:
        run("purge_threads", "--older-than", "soon")
    assert error.value.returncode == 2

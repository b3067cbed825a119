import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from exports.tests.fixtures import chatgpt_conversation
from messaging.tests.factories import make_message
from threads.models import ChatThread
from threads.tests.factories import make_thread


def test_export_threads_writes_a_users_file(user, tmp_path):
    thread = make_thread(user, title="Mine")
    make_message(thread, "hello")
    output = tmp_path / "out.csv"
    stdout = io.StringIO()
    call_command(
        "export_threads",
        "--user",
        user.username,
        "--format",
        "csv",
        "--output",
        str(output),
        stdout=stdout,
        stderr=io.StringIO(),
    )
    assert "hello" in output.read_text(encoding="utf-8-sig")
    assert "1 threads, 1 messages" in stdout.getvalue()


def test_export_threads_all_writes_one_file_per_user(user, other_user, tmp_path):
    make_message(make_thread(user), "a")
    make_message(make_thread(other_user), "b")
    call_command("export_threads", "--all", "--output", str(tmp_path), stdout=io.StringIO(), stderr=io.StringIO())
    files = sorted(p.name.split("-chat-export")[0] for p in Path(tmp_path).iterdir())
    assert files == ["alice", "bob"]
    [bob] = [p for p in tmp_path.iterdir() if p.name.startswith("bob")]
    assert [m["content"] for m in json.loads(bob.read_text())["threads"][0]["messages"]] == ["b"]


def test_export_threads_refuses_a_bad_date(user):
    with pytest.raises(CommandError, match="since") as error:
        call_command("export_threads", "--user", user.username, "--since", "soon", stderr=io.StringIO())
    assert error.value.returncode == 2  # a usage error, as the README's exit statuses say


def test_export_threads_unknown_user_is_a_usage_error(db, tmp_path):
    with pytest.raises(CommandError, match='No user "nobody"') as error:
        call_command("export_threads", "--user", "nobody", "--output", str(tmp_path / "x.json"), stderr=io.StringIO())
    assert error.value.returncode == 2 and not (tmp_path / "x.json").exists()


def test_import_threads_imports_a_chatgpt_file(user, tmp_path):
    path = tmp_path / "conversations.json"
    path.write_text(json.dumps([chatgpt_conversation(), {"title": "broken", "mapping": []}]))
    stdout = io.StringIO()
    call_command("import_threads", "--user", user.username, str(path), stdout=stdout, stderr=io.StringIO())
    assert "Imported 1 conversations (6 messages)." in stdout.getvalue()
    assert "Skipped #1 'broken'" in stdout.getvalue()
    assert ChatThread.objects.filter(owner=user).count() == 1


def test_import_threads_refuses_a_bad_file(user, tmp_path):
    path = tmp_path / "x.json"
    path.write_text("{}")
    with pytest.raises(CommandError, match="not a format we import") as error:
        call_command("import_threads", "--user", user.username, str(path), stderr=io.StringIO())
    assert error.value.returncode == 1  # the work failed: the file is there but cannot be imported


def test_import_threads_unknown_user_or_missing_file_is_a_usage_error(user, tmp_path):
    path = tmp_path / "conversations.json"
    path.write_text(json.dumps([chatgpt_conversation()]))
    with pytest.raises(CommandError, match='No user "nobody"') as error:
        call_command("import_threads", "--user", "nobody", str(path), stderr=io.StringIO())
    assert error.value.returncode == 2
    with pytest.raises(CommandError, match="No file") as error:
        call_command("import_threads", "--user", user.username, str(tmp_path / "missing.json"), stderr=io.StringIO())
    assert error.value.returncode == 2
    assert not ChatThread.objects.exists()

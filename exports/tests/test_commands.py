import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from exports.tests.fixtures import chatgpt_conversation, open_webui_chat
from messaging.tests.factories import make_message
from threads.models import ChatThread
from threads.tests.factories import make_thread


def test_export_threads_writes_a_users_file(user, tmp_path):
    thread = make_thread(user, title="Mine")
    make_message(thread, "hello")
    output = tmp_path / "out.csv"
    stdout, stderr = io.StringIO(), io.StringIO()
    call_command(
        "export_threads",
        "--user",
        user.username,
        "--format",
        "csv",
        "--output",
        str(output),
        stdout=stdout,
        stderr=stderr,
    )
    assert "hello" in output.read_text(encoding="utf-8-sig")
    assert "1 threads, 1 messages" in stdout.getvalue()
    assert stderr.getvalue() == "alice: 1/1\n"  # the progress bar, as plain lines when not on a terminal


def test_export_threads_all_writes_one_file_per_user(user, other_user, tmp_path):
    make_message(make_thread(user), "a")
    make_message(make_thread(other_user), "b")
    call_command("export_threads", "--all", "--output", str(tmp_path), stdout=io.StringIO(), stderr=io.StringIO())
    files = sorted(p.name.split("-chat-export")[0] for p in Path(tmp_path).iterdir())
    assert files == ["alice", "bob"]
    [bob] = [p for p in tmp_path.iterdir() if p.name.startswith("bob")]
    assert [m["content"] for m in json.loads(bob.read_text())["threads"][0]["messages"]] == ["b"]


def test_export_threads_since_leaves_out_older_threads(user, tmp_path):
    old, new = make_thread(user, title="Old"), make_thread(user, title="New")
    make_message(old, "a")
    make_message(new, "b")
    ChatThread.objects.filter(pk=old.pk).update(updated_at="2020-01-01T00:00:00Z")
    output = tmp_path / "out.json"
    arguments = ["--user", user.username, "--since", "2021-01-01", "--output", str(output)]
    call_command("export_threads", *arguments, stdout=io.StringIO(), stderr=io.StringIO())
    assert [t["title"] for t in json.loads(output.read_text())["threads"]] == ["New"]


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
    stdout, stderr = io.StringIO(), io.StringIO()
    call_command("import_threads", "--user", user.username, str(path), stdout=stdout, stderr=stderr)
    assert stderr.getvalue() == "conversations: 1/2\nconversations: 2/2\n"  # the progress bar, piped
    assert "Imported 1 conversations (6 messages)." in stdout.getvalue()
    assert "Skipped #1 'broken'" in stdout.getvalue()
    assert ChatThread.objects.filter(owner=user).count() == 1


def test_import_threads_refuses_a_bad_file(user, tmp_path):
    path = tmp_path / "x.json"
    path.write_text("{}")
    with pytest.raises(CommandError, match="not a format we import") as error:
        call_command("import_threads", "--user", user.username, str(path), stderr=io.StringIO())
    assert error.value.returncode == 1  # the work failed: the file is there but cannot be imported


def _queued_import(api, settings, django_capture_on_commit_callbacks) -> str:
    settings.IMPORT_BACKGROUND_MESSAGES = 1
    data = _named(json.dumps([open_webui_chat(f"c{n}") for n in range(3)]))
    with django_capture_on_commit_callbacks():  # its task never runs: a lost task, or a dead server
        response = api.post("/api/import/", {"file": data}, format="multipart")
    assert response.status_code == 202
    return response.json()["job"]["id"]


def _named(text: str) -> io.BytesIO:
    handle = io.BytesIO(text.encode())
    handle.name = "export.json"
    return handle


def test_import_jobs_lists_them_and_runs_a_stuck_one_here(api, user, settings, django_capture_on_commit_callbacks):
    job_id = _queued_import(api, settings, django_capture_on_commit_callbacks)
    stdout = io.StringIO()
    call_command("import_jobs", stdout=stdout)
    lines = stdout.getvalue().splitlines()
    assert lines[1].split("\t")[:7] == ["job", "status", "owner", "done", "imported", "skipped", "file"]
    assert lines[2].split("\t")[:7] == [job_id, "queued", "alice", "0/3", "0", "0", "yes"]
    listed = io.StringIO()
    call_command("import_jobs", "--json", "--status", "queued", stdout=listed)
    assert [(j["id"], j["owner"]) for j in json.loads(listed.getvalue())] == [(job_id, "alice")]

    stdout, stderr = io.StringIO(), io.StringIO()
    call_command("import_jobs", "--run", job_id, stdout=stdout, stderr=stderr)
    assert stdout.getvalue() == "done: 3 imported, 0 skipped\n"
    assert stderr.getvalue().splitlines()[-1] == "conversations: 3/3"
    assert sorted(ChatThread.objects.filter(owner=user).values_list("title", flat=True)) == ["c0", "c1", "c2"]
    with pytest.raises(CommandError, match="has ended already"):
        call_command("import_jobs", "--run", job_id, stdout=io.StringIO(), stderr=io.StringIO())
    with pytest.raises(CommandError, match="No import"):
        call_command("import_jobs", "--run", "nope", stdout=io.StringIO(), stderr=io.StringIO())


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

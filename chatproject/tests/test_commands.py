"""chatproject's commands: create_token, check_services; and the console module they share."""

import contextlib
import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from chatproject import cli

pytestmark = pytest.mark.django_db


def run(*args, **options):
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def test_create_token_prints_a_token_the_api_accepts(user, anon_api):
    out, _ = run("create_token", user.username)
    key = out.strip()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/me/").json()["username"] == user.username
    again, _ = run("create_token", user.username)
    assert again.strip() == key and Token.objects.count() == 1
    # The token endpoint gives the same one.
    from threads.tests.factories import PASSWORD

    answer = anon_api.post("/api/auth/token/", {"username": user.username, "password": PASSWORD}, format="json")
    assert answer.json()["token"] == key


def test_create_token_for_a_missing_user(db):
    with pytest.raises(CommandError) as error:
        run("create_token", "carol")
    assert error.value.returncode == 2 and not get_user_model().objects.filter(username="carol").exists()
    out, err = run("create_token", "carol", "--create")
    carol = get_user_model().objects.get(username="carol")
    assert Token.objects.get(user=carol).key == out.strip() and "created" in err
    assert not carol.has_usable_password()


def checks(out: str) -> dict:
    return {check["name"]: check for check in json.loads(out)["checks"]}


def configured_layer(settings) -> str:
    """The class name check_services must report: pubsub's by default, core's when chosen."""
    return settings.CHANNEL_LAYERS["default"]["BACKEND"].rsplit(".", 1)[1]


@pytest.fixture
def sandbox_off(settings):
    # The sandbox probe is its own test below; here it must not depend on the machine.
    settings.CODE_SANDBOX = "off"


def test_check_services_on_the_embedded_default(settings, sandbox_off):
    if settings.REDIS_URL:
        pytest.skip("the embedded default only")
    out, _ = run("check_services", "--json")
    report = json.loads(out)
    assert report["ok"] is True and report["failing"] == []
    found = checks(out)
    assert list(found) == ["database", "channel_layer", "celery_worker", "model", "code_sandbox"]
    assert found["database"]["detail"] == "sqlite"
    assert found["channel_layer"]["detail"].startswith("InMemoryChannelLayer")
    assert "in the server's process" in found["celery_worker"]["detail"]
    assert found["model"]["detail"].startswith("offline")
    assert all(check["seconds"] >= 0 for check in found.values())
    table, _ = run("check_services")
    assert table.splitlines()[0] == "check\tresult\tlatency\tdetail"


def test_check_services_reports_a_missing_worker_on_redis(settings, sandbox_off):
    if not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL")
    out = io.StringIO()
    with pytest.raises(CommandError) as error:
        call_command("check_services", "--json", stdout=out, stderr=io.StringIO())
    assert error.value.returncode == 1
    found = checks(out.getvalue())
    assert found["database"]["ok"] and found["redis"]["ok"]
    assert found["channel_layer"]["ok"] and found["channel_layer"]["detail"].startswith(configured_layer(settings))
    assert not found["celery_worker"]["ok"] and "no Celery worker answered" in found["celery_worker"]["detail"]
    assert json.loads(out.getvalue())["failing"] == ["celery_worker"]


def test_check_services_fails_when_the_sandbox_cannot_isolate(settings, tmp_path):
    settings.CODE_SANDBOX = "bwrap"
    settings.CODE_SANDBOX_BWRAP = str(tmp_path / "no-bwrap")
    out = io.StringIO()
    with pytest.raises(CommandError) as error:
        call_command("check_services", "--json", stdout=out, stderr=io.StringIO())
    assert error.value.returncode == 1
    sandbox = checks(out.getvalue())["code_sandbox"]
    assert not sandbox["ok"] and "not installed" in sandbox["detail"]


def test_check_services_passes_when_the_sandbox_isolates(settings):
    settings.CODE_SANDBOX, settings.CODE_SANDBOX_BWRAP = "bwrap", ""
    out = io.StringIO()
    with contextlib.suppress(CommandError):  # on Redis no worker answers here: not this test's point
        call_command("check_services", "--json", stdout=out, stderr=io.StringIO())
    sandbox = checks(out.getvalue())["code_sandbox"]
    assert sandbox["ok"] and "namespaces pid, net" in sandbox["detail"], sandbox


def test_check_services_fails_when_the_sandbox_shares_the_hosts_network(settings, tmp_path):
    """A bubblewrap that keeps the host's network (this one drops --unshare-net) is no isolation."""
    import socket
    import sys

    from agent.sandbox import bwrap_binary

    if [name for _, name in socket.if_nameindex()] == ["lo"]:
        pytest.skip("this host has no network interface but loopback: nothing to tell apart")
    settings.CODE_SANDBOX, settings.CODE_SANDBOX_BWRAP = "bwrap", ""
    real = bwrap_binary()
    wrapper = tmp_path / "bwrap"
    wrapper.write_text(
        f"#!{sys.executable}\nimport os, sys\n"
        f"os.execv({real!r}, [{real!r}, *(a for a in sys.argv[1:] if a != '--unshare-net')])\n"
    )
    wrapper.chmod(0o755)
    settings.CODE_SANDBOX_BWRAP = str(wrapper)
    out = io.StringIO()
    with pytest.raises(CommandError) as error:
        call_command("check_services", "--json", stdout=out, stderr=io.StringIO())
    assert error.value.returncode == 1
    sandbox = checks(out.getvalue())["code_sandbox"]
    assert not sandbox["ok"] and "network interfaces" in sandbox["detail"], sandbox


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_console_output_is_plain_when_piped_and_rich_on_a_terminal():
    piped = io.StringIO()
    cli.table(piped, ["a", "b"], [(1, "x\ty")])
    assert piped.getvalue() == "a\tb\n1\tx y\n"
    terminal = FakeTerminal()
    cli.table(terminal, ["a", "b"], [(1, "x")])
    assert "┃" in terminal.getvalue() and "\x1b[" in terminal.getvalue()


def test_progress_bar_writes_plain_lines_when_piped():
    piped = io.StringIO()
    with cli.progress_bar("rows", 20, piped) as advance:
        for _ in range(20):
            advance()
    assert piped.getvalue().splitlines() == [f"rows: {n}/20" for n in range(2, 21, 2)]


def test_check_services_passes_with_a_real_worker_on_redis(settings, tmp_path):
    """A real Celery worker on a redis-server of the test's own (the Stack of the end-to-end tests)."""
    if not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL")
    from chatproject.testing import Stack

    with Stack(tmp_path, servers=0, env={"CODE_SANDBOX": "off"}, worker_concurrency=1) as stack:
        report = json.loads(stack.manage("check_services", "--json"))  # raises unless it exits 0
    assert report["ok"] is True
    found = {check["name"]: check for check in report["checks"]}
    assert found["celery_worker"]["ok"] and "1 worker(s) answered" in found["celery_worker"]["detail"]
    assert found["redis"]["ok"] and found["channel_layer"]["detail"].startswith(configured_layer(settings))


def test_check_services_asks_a_hosted_model_and_fails_when_it_is_away(settings, sandbox_off):
    from agent.tests.fake_openai import FakeOpenAI

    settings.AGENT_LM = "openai/hosted-1"
    settings.OPENAI_API_KEY = "sk-test"
    settings.AGENT_MAX_RETRIES = 0
    with FakeOpenAI([], "OK") as model:
        settings.AGENT_API_BASE = model.api_base
        out = io.StringIO()
        # On Redis no worker answers here (exit 1): the model is what this test is about.
        with contextlib.suppress(CommandError):
            call_command("check_services", "--json", stdout=out, stderr=io.StringIO())
        found = checks(out.getvalue())
        assert found["model"]["ok"] and "answered: 'OK'" in found["model"]["detail"]
        url = model.api_base
    settings.AGENT_API_BASE = url  # the server is gone now
    out = io.StringIO()
    with pytest.raises(CommandError) as error:
        call_command("check_services", "--json", stdout=out, stderr=io.StringIO())
    assert error.value.returncode == 1
    assert not checks(out.getvalue())["model"]["ok"] and "model" in json.loads(out.getvalue())["failing"]


def test_check_services_asks_every_model_users_may_choose(settings, sandbox_off, monkeypatch):
    from agent.tests.fake_openai import FakeOpenAI
    from chatproject.catalog import ModelSpec
    from chatproject.testing import free_port

    settings.AGENT_MAX_RETRIES = 0
    monkeypatch.setenv("TEST_MODEL_KEY", "sk-test")
    out = io.StringIO()
    with FakeOpenAI([], "OK") as up:
        settings.AGENT_MODELS = {
            **settings.AGENT_MODELS,
            "up": ModelSpec("up", "openai/up-1", api_base=up.api_base, api_key_env="TEST_MODEL_KEY"),
            "away": ModelSpec(
                "away", "openai/away-1", api_base=f"http://127.0.0.1:{free_port()}/v1", api_key_env="TEST_MODEL_KEY"
            ),
        }
        with pytest.raises(CommandError) as error:
            call_command("check_services", "--json", stdout=out, stderr=io.StringIO())
    assert error.value.returncode == 1
    found = checks(out.getvalue())
    assert found["model"]["ok"] and found["model"]["detail"].startswith("offline")
    assert found["model:up"]["ok"] and found["model:up"]["detail"].startswith("up (openai/up-1) answered: 'OK'")
    assert not found["model:away"]["ok"]
    failing = json.loads(out.getvalue())["failing"]
    assert "model:away" in failing and "model:up" not in failing and "model" not in failing
    assert [r.headers["authorization"] for r in up.requests] == ["Bearer sk-test"]


OUR_APPS = {"agent", "chatproject", "dashboard", "exports", "messaging", "threads", "webhooks"}


def test_help_lists_the_projects_commands():
    from django.core.management import ManagementUtility, get_commands

    commands = sorted(name for name, app in get_commands().items() if app in OUR_APPS)
    assert len(commands) >= 15, commands
    listed = ManagementUtility(["manage.py", "help"]).main_help_text().split()
    assert set(commands) <= set(listed)


def test_every_commands_help_says_what_it_and_each_argument_do(capsys):
    """What ``manage.py NAME --help`` prints (``print_help``, as Django does for it): a usage line,
    the command's description and a help text for every argument of ours."""
    from django.core.management import get_commands, load_command_class
    from django.core.management.base import BaseCommand

    common = {action.dest for action in BaseCommand().create_parser("manage.py", "x")._actions}
    commands = {name: app for name, app in get_commands().items() if app in OUR_APPS}
    for name, app in sorted(commands.items()):
        command = load_command_class(app, name)
        command.print_help("manage.py", name)
        shown = " ".join(capsys.readouterr().out.split())
        assert shown.startswith(f"usage: manage.py {name}"), name
        assert command.help and " ".join(command.help.split()[:3]) in shown, name
        for action in command.create_parser("manage.py", name)._actions:
            if action.dest not in common:
                assert action.help, f"{name}: {'/'.join(action.option_strings) or action.dest} has no help text"


def test_table_cells_are_never_rich_markup():
    terminal = FakeTerminal()
    cli.table(terminal, ["title"], [("[bold red]not markup[/]",)])
    assert "[bold red]not markup[/]" in terminal.getvalue()


def test_panel_text_is_never_rich_markup():
    terminal = FakeTerminal()
    cli.panel(terminal, "[1, 2] and [red]x[/]", title="[t]")
    assert "[1, 2] and [red]x[/]" in terminal.getvalue() and "[t]" in terminal.getvalue()


def test_progress_bar_is_a_live_rich_bar_on_a_terminal():
    terminal = FakeTerminal()
    with cli.progress_bar("rows", 20, terminal) as advance:
        for _ in range(20):
            advance()
    shown = terminal.getvalue()
    assert "\x1b[" in shown and "━" in shown and "20/20" in shown
    assert "rows: 2/20" not in shown  # not the piped form's lines

"""The due-deliveries job: ``manage.py deliver_webhooks``, the periodic task list and beat."""

from __future__ import annotations

from io import StringIO
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.core.management import call_command

from chatproject.periodic import run_periodic_tasks
from threads.tests.factories import make_thread, make_user
from webhooks.models import WebhookDelivery
from webhooks.tests.test_services import Receiver, hook_for


@pytest.fixture(autouse=True)
def _local_endpoints(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = True


def test_the_job_runs_periodically_on_both_stacks():
    assert "webhooks.deliver_due" in settings.PERIODIC_TASKS
    assert settings.CELERY_BEAT_SCHEDULE["webhooks.deliver_due"]["task"] == "webhooks.deliver_due"


@pytest.mark.django_db
def test_deliver_webhooks_command_sends_what_is_due():
    owner = make_user()
    with Receiver() as receiver:
        hook_for(receiver, owner)
        make_thread(owner=owner)
        out = StringIO()
        call_command("deliver_webhooks", stdout=out)
    assert out.getvalue().strip() == "1 deliveries attempted"
    assert WebhookDelivery.objects.get().status == "succeeded" and len(receiver.verified) == 1


@pytest.mark.django_db
def test_deliver_webhooks_loop_goes_round_until_ctrl_c(monkeypatch):
    from django.core.management import CommandError

    from webhooks.management.commands import deliver_webhooks

    owner = make_user()
    rounds = []

    def sleep(seconds):  # the loop's pause between rounds; the second one is "pressed Ctrl-C"
        rounds.append(seconds)
        if len(rounds) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(deliver_webhooks, "time", SimpleNamespace(sleep=sleep))  # this module's only
    # Between rounds it lets Django drop expired connections: here that would be the test's own.
    monkeypatch.setattr(deliver_webhooks, "close_old_connections", lambda: None)
    with Receiver() as receiver:
        hook_for(receiver, owner)
        make_thread(owner=owner)
        out = StringIO()
        with pytest.raises(CommandError, match="Interrupted") as error:
            call_command("deliver_webhooks", "--loop", stdout=out)
    assert error.value.returncode == 130 and rounds == [settings.SWEEP_INTERVAL_SECONDS] * 2
    # The first round delivered; the second had nothing due and said nothing.
    assert out.getvalue().strip() == "1 deliveries attempted" and len(receiver.verified) == 1


@pytest.mark.django_db
def test_the_in_process_periodic_run_delivers():
    owner = make_user()
    with Receiver() as receiver:
        hook_for(receiver, owner)
        make_thread(owner=owner)
        run_periodic_tasks()
    assert len(receiver.verified) == 1

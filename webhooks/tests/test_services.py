"""Outgoing webhooks end to end against a local receiver that verifies with ``standardwebhooks``."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone
from standardwebhooks.webhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError

from agent.tests.local_http import LocalServer, Reply, Request, SilentServer
from chatproject.errors import InvalidInput
from messaging.models import ReplyStream
from messaging.services import message_send, stream_finish, stream_start, thread_fork
from threads.services import thread_delete, thread_update
from threads.tests.factories import make_thread, make_user
from webhooks import conf, services
from webhooks.models import Webhook, WebhookDelivery, WebhookEvent


@pytest.fixture(autouse=True)
def _local_endpoints(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = True  # the receivers live on 127.0.0.1
    settings.WEBHOOK_TIMEOUT_SECONDS = 1


class Receiver(LocalServer):
    """Answers each request with the next of ``statuses`` (the last one repeats) after checking
    its signature with the standardwebhooks package; keeps what it verified."""

    def __init__(self, statuses: list[int] | None = None, headers: dict[str, str] | None = None) -> None:
        self.statuses = list(statuses or [200])
        self.reply_headers = headers or {}
        self.secret = ""
        self.verified: list[dict] = []
        self.rejected: list[str] = []
        super().__init__(self.handle)

    def handle(self, request: Request) -> Reply:
        try:
            self.verified.append(
                {"body": StandardWebhook(self.secret).verify(request.body, request.headers), **request.headers}
            )
        except WebhookVerificationError as exc:
            self.rejected.append(str(exc))
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return Reply(
            status=status, body=b'{"ok": true}', headers={"Content-Type": "application/json", **self.reply_headers}
        )


def hook_for(receiver: Receiver, owner, events=("*",)) -> Webhook:
    webhook = services.webhook_create(owner=owner, url=receiver.url + "/hook", events=list(events))
    receiver.secret = webhook.secret
    return webhook


def run_due_now() -> int:
    """Make every pending delivery due and run the periodic job's work once."""
    WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING).update(next_attempt_at=timezone.now())
    return services.deliveries_run_due()


@pytest.mark.django_db
def test_thread_created_is_signed_per_standard_webhooks_and_verified_by_the_receiver():
    owner = make_user()
    with Receiver() as receiver:
        webhook = hook_for(receiver, owner)
        thread = make_thread(owner=owner, title="Plans")
        assert services.deliveries_run_due() == 1
    assert receiver.rejected == []
    (got,) = receiver.verified
    assert got["body"]["type"] == "thread.created"
    assert got["body"]["data"]["thread"]["id"] == str(thread.pk)
    assert got["body"]["data"]["thread"]["title"] == "Plans"
    assert got["user-agent"] == conf.USER_AGENT
    event = WebhookEvent.objects.get()
    assert got["webhook-id"] == event.pk
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempt, delivery.status_code) == ("succeeded", 1, 200)
    assert delivery.webhook == webhook and delivery.response_excerpt == '{"ok": true}'


@pytest.mark.django_db
def test_a_fork_is_announced_as_a_new_thread():
    owner = make_user()
    thread = make_thread(owner=owner, title="Plans")
    question, _ = message_send(thread=thread, sender=owner, content="a plan?", reply=False)
    with Receiver() as receiver:
        hook_for(receiver, owner, events=["thread.created"])
        fork = thread_fork(thread=thread, message_id=question.pk)
        assert services.deliveries_run_due() == 1
    (got,) = receiver.verified
    assert got["body"]["type"] == "thread.created"
    assert got["body"]["data"]["thread"]["id"] == str(fork.pk)
    assert got["body"]["data"]["thread"]["title"] == "Plans (fork)"


@pytest.mark.django_db
def test_retries_after_500_and_timeout_reuse_the_event_id_with_a_fresh_timestamp():
    owner = make_user()
    with Receiver(statuses=[500, 200]) as receiver:
        webhook = hook_for(receiver, owner)
        make_thread(owner=owner)
        services.deliveries_run_due()
        delivery = WebhookDelivery.objects.get()
        assert (delivery.status, delivery.attempt, delivery.status_code) == ("pending", 1, 500)
        # The second attempt waits about 5 s (with jitter).
        wait = (delivery.next_attempt_at - timezone.now()).total_seconds()
        assert 3 < wait < 6
        assert services.deliveries_run_due() == 0  # not due yet
        # Third attempt: the endpoint hangs past the timeout.
        with SilentServer() as silent:
            Webhook.objects.filter(pk=webhook.pk).update(url=silent.url + "/hook")
            run_due_now()
        delivery.refresh_from_db()
        assert delivery.status == "pending" and delivery.attempt == 2
        assert "No answer within 1 s" in delivery.error and delivery.status_code is None
        Webhook.objects.filter(pk=webhook.pk).update(url=receiver.url + "/hook")
        run_due_now()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempt) == ("succeeded", 3)
    ids = {got["webhook-id"] for got in receiver.verified}
    assert ids == {delivery.event_id}
    assert len(receiver.verified) == 2 and receiver.rejected == []


@pytest.mark.django_db
def test_410_disables_the_endpoint_at_once():
    owner = make_user()
    with Receiver(statuses=[410]) as receiver:
        webhook = hook_for(receiver, owner)
        make_thread(owner=owner)
        services.deliveries_run_due()
        make_thread(owner=owner)  # an endpoint that is disabled gets nothing more
    webhook.refresh_from_db()
    assert webhook.active is False and webhook.disabled_at is not None
    assert "410" in webhook.disabled_reason
    assert WebhookDelivery.objects.get().status == "failed"
    assert len(receiver.requests) == 1


@pytest.mark.django_db
def test_retry_after_is_honoured_and_the_schedule_ends_in_failure():
    owner = make_user()
    with Receiver(statuses=[503], headers={"Retry-After": "600"}) as receiver:
        webhook = hook_for(receiver, owner)
        make_thread(owner=owner)
        services.deliveries_run_due()
        delivery = WebhookDelivery.objects.get()
        wait = (delivery.next_attempt_at - timezone.now()).total_seconds()
        assert 590 < wait <= 600  # not the 5 s of the schedule
        for _ in range(len(conf.RETRY_DELAYS_SECONDS) - 1):
            run_due_now()
    delivery.refresh_from_db()
    assert delivery.status == "failed" and delivery.attempt == len(conf.RETRY_DELAYS_SECONDS)
    assert delivery.next_attempt_at is None
    webhook.refresh_from_db()
    assert webhook.consecutive_failures == 1 and webhook.failing_since is not None and webhook.active


@pytest.mark.django_db
def test_an_endpoint_failing_for_five_days_is_disabled():
    owner = make_user()
    with Receiver(statuses=[500]) as receiver:
        webhook = hook_for(receiver, owner)
        Webhook.objects.filter(pk=webhook.pk).update(failing_since=timezone.now() - timedelta(days=5, minutes=1))
        make_thread(owner=owner)
        services.deliveries_run_due()
    webhook.refresh_from_db()
    assert webhook.active is False and "5 days" in webhook.disabled_reason


@pytest.mark.django_db
def test_redirects_are_not_followed():
    owner = make_user()
    with Receiver(statuses=[302], headers={"Location": "http://169.254.169.254/latest/meta-data/"}) as receiver:
        hook_for(receiver, owner)
        make_thread(owner=owner)
        services.deliveries_run_due()
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "pending" and delivery.status_code == 302
    assert "Redirects are not followed" in delivery.error
    assert len(receiver.requests) == 1


@pytest.mark.django_db
def test_during_a_rotation_both_secrets_sign(settings):
    owner = make_user()
    with Receiver() as receiver:
        webhook = hook_for(receiver, owner)
        old = webhook.secret
        services.webhook_rotate_secret(webhook=webhook)
        receiver.secret = old  # a receiver that has not switched yet still verifies
        make_thread(owner=owner)
        services.deliveries_run_due()
        receiver.secret = webhook.secret
        services.webhook_send_test(webhook=webhook)
        services.deliveries_run_due()
    assert receiver.rejected == [] and len(receiver.verified) == 2
    assert len(receiver.verified[0]["webhook-signature"].split()) == 2
    assert receiver.verified[1]["body"]["type"] == "webhook.test"


@pytest.mark.django_db
def test_each_change_records_its_event_and_only_for_its_owner():
    owner, other = make_user(), make_user()
    with Receiver() as mine, Receiver() as theirs:
        hook_for(mine, owner)
        hook_for(theirs, other)
        thread = make_thread(owner=owner)
        thread_update(thread=thread, title="Renamed")
        message, _ = message_send(thread=thread, sender=owner, content="hello", reply=False)
        reply_to, _ = message_send(thread=thread, sender=owner, content="again", reply=False)
        stream = stream_start(reply_to=reply_to)
        stream_finish(stream=stream, status=ReplyStream.Status.COMPLETE, content="Hi!")
        failed = stream_start(reply_to=message)
        stream_finish(stream=failed, status=ReplyStream.Status.INTERRUPTED)
        thread_delete(thread=thread)
        services.deliveries_run_due()
    types = [got["body"]["type"] for got in sorted(mine.verified, key=lambda g: g["body"]["timestamp"])]
    assert types == [
        "thread.created",
        "thread.updated",
        "message.created",
        "message.created",
        "reply.completed",
        "reply.failed",
        "thread.deleted",
    ]
    by_type = {got["body"]["type"]: got["body"]["data"] for got in mine.verified}
    assert by_type["message.created"]["message"]["thread"] == str(thread.pk)
    assert by_type["reply.completed"]["message"]["content"] == "Hi!"
    assert by_type["reply.failed"]["status"] == "interrupted"
    assert theirs.requests == []


@pytest.mark.django_db
def test_only_subscribed_events_are_recorded_and_a_rolled_back_change_records_none():
    owner = make_user()
    with Receiver() as receiver:
        hook_for(receiver, owner, events=["thread.deleted"])
        thread = make_thread(owner=owner)
        assert WebhookEvent.objects.count() == 0

        def delete_then_fail() -> None:
            with transaction.atomic():
                thread_delete(thread=thread)
                raise RuntimeError("the change fails after the signal")

        with pytest.raises(RuntimeError):
            delete_then_fail()
        assert WebhookEvent.objects.count() == 0


@pytest.mark.django_db
def test_no_subscribed_endpoint_costs_one_query(django_assert_num_queries):
    owner = make_user()
    thread = make_thread(owner=owner)
    with django_assert_num_queries(4):  # savepoint, update, the webhooks lookup, release
        thread_update(thread=thread, title="x")


@pytest.mark.django_db
def test_a_url_that_now_resolves_to_a_private_address_is_refused_at_delivery(settings):
    owner = make_user()
    with Receiver() as receiver:
        hook_for(receiver, owner)
        settings.WEBHOOKS_ALLOW_PRIVATE = False
        settings.DEBUG = True  # plain http stays allowed: the address is what is refused
        make_thread(owner=owner)
        services.deliveries_run_due()
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "pending" and "loopback" in delivery.error
    assert receiver.requests == []


@pytest.mark.django_db
def test_redeliver_sends_the_same_event_again():
    owner = make_user()
    with Receiver() as receiver:
        hook_for(receiver, owner)
        make_thread(owner=owner)
        services.deliveries_run_due()
        again = services.delivery_redeliver(delivery=WebhookDelivery.objects.get())
        services.deliveries_run_due()
    again.refresh_from_db()
    assert again.status == "succeeded"
    assert [got["webhook-id"] for got in receiver.verified] == [again.event_id, again.event_id]


@pytest.mark.django_db
def test_create_refuses_unknown_events_and_unsafe_urls(settings):
    owner = make_user()
    with pytest.raises(InvalidInput) as error:
        services.webhook_create(owner=owner, url="https://93.184.215.14/hook", events=["thread.exploded"])
    assert "Unknown event type" in error.value.errors["events"][0]
    settings.WEBHOOKS_ALLOW_PRIVATE = False
    settings.DEBUG = False
    with pytest.raises(InvalidInput) as error:
        services.webhook_create(owner=owner, url="http://93.184.215.14/hook", events=["*"])
    assert "https://" in error.value.errors["url"][0]
    with pytest.raises(InvalidInput) as error:
        services.webhook_create(owner=owner, url="https://10.0.0.5/hook", events=["*"])
    assert "private" in error.value.errors["url"][0]
    webhook = services.webhook_create(owner=owner, url="https://93.184.215.14/hook", events=["*"])
    assert webhook.secret.startswith("whsec_") and len(json.dumps(webhook.secret)) > 40


@pytest.mark.django_db
def test_a_disabled_endpoint_gets_only_test_events():
    owner = make_user()
    with Receiver() as receiver:
        webhook = hook_for(receiver, owner, events=["thread.updated"])
        thread = make_thread(owner=owner)
        thread_update(thread=thread, title="one")
        services.webhook_update(webhook=webhook, active=False)
        services.webhook_send_test(webhook=webhook)
        services.deliveries_run_due()
    by_type = {d.event.type: d for d in WebhookDelivery.objects.select_related("event")}
    assert (
        by_type["thread.updated"].status == "failed" and by_type["thread.updated"].error == "The endpoint is disabled."
    )
    assert by_type["webhook.test"].status == "succeeded"
    assert [got["body"]["type"] for got in receiver.verified] == ["webhook.test"]


@pytest.mark.django_db
def test_export_completed_is_sent_when_the_exports_app_signals_it():
    from webhooks.receivers import on_export_completed

    owner = make_user()
    with Receiver() as receiver:
        hook_for(receiver, owner, events=["export.completed"])
        on_export_completed(sender=None, user=owner, export={"id": "e1", "format": "json"})
        services.deliveries_run_due()
    (got,) = receiver.verified
    assert got["body"]["type"] == "export.completed" and got["body"]["data"] == {
        "export": {"id": "e1", "format": "json"}
    }


@pytest.mark.django_db
def test_an_endpoint_whose_last_events_all_failed_is_disabled():
    owner = make_user()
    with Receiver(statuses=[500]) as receiver:
        webhook = hook_for(receiver, owner)
        # One event short of the limit; failing_since is fresh, so the 5-day rule is not what fires.
        Webhook.objects.filter(pk=webhook.pk).update(consecutive_failures=conf.DISABLE_AFTER_FAILED_EVENTS - 1)
        make_thread(owner=owner)
        for _ in range(len(conf.RETRY_DELAYS_SECONDS)):
            run_due_now()
    webhook.refresh_from_db()
    assert WebhookDelivery.objects.get().status == "failed"
    assert webhook.consecutive_failures == conf.DISABLE_AFTER_FAILED_EVENTS
    assert webhook.active is False and f"last {conf.DISABLE_AFTER_FAILED_EVENTS} events" in webhook.disabled_reason


@pytest.mark.django_db
def test_after_the_grace_period_the_old_secret_no_longer_signs():
    owner = make_user()
    with Receiver() as receiver:
        webhook = hook_for(receiver, owner)
        old = webhook.secret
        services.webhook_rotate_secret(webhook=webhook)
        grace = (webhook.previous_secret_expires_at - timezone.now()).total_seconds()
        assert conf.ROTATION_GRACE_SECONDS - 5 < grace <= conf.ROTATION_GRACE_SECONDS == 24 * 3600
        Webhook.objects.filter(pk=webhook.pk).update(previous_secret_expires_at=timezone.now() - timedelta(seconds=1))
        receiver.secret = old
        services.webhook_send_test(webhook=webhook)
        services.deliveries_run_due()
        receiver.secret = webhook.secret
        services.webhook_send_test(webhook=webhook)
        services.deliveries_run_due()
    assert len(receiver.rejected) == 1 and len(receiver.verified) == 1
    assert len(receiver.verified[0]["webhook-signature"].split()) == 1


@pytest.mark.django_db
def test_webhook_timestamp_is_the_attempts_not_the_events():
    owner = make_user()
    with Receiver() as receiver:
        hook_for(receiver, owner)
        make_thread(owner=owner)
        # An event stored 10 minutes ago (a retry, an outage): the receiver allows 5 minutes of skew.
        WebhookEvent.objects.update(created_at=timezone.now() - timedelta(minutes=10))
        services.deliveries_run_due()
    assert receiver.rejected == []
    (got,) = receiver.verified
    assert abs(int(got["webhook-timestamp"]) - timezone.now().timestamp()) < 5


@pytest.mark.django_db
def test_a_delivery_taken_by_a_worker_that_died_is_taken_again_when_its_lease_ends():
    owner = make_user()
    with Receiver() as receiver:
        hook_for(receiver, owner)
        make_thread(owner=owner)
        (claimed,) = services._claim_due(10)  # a worker took it, then died before attempting
        delivery = WebhookDelivery.objects.get(pk=claimed)
        assert delivery.next_attempt_at > timezone.now() + timedelta(seconds=conf.lease_seconds() - 5)
        assert services.deliveries_run_due() == 0  # leased: nobody else sends it meanwhile
        WebhookDelivery.objects.filter(pk=claimed).update(next_attempt_at=timezone.now())  # the lease ran out
        assert services.deliveries_run_due() == 1
    delivery.refresh_from_db()
    assert delivery.status == "succeeded" and len(receiver.verified) == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("status", [200, 500])
def test_an_endpoint_deleted_while_its_request_is_out_ends_the_attempt_quietly(status):
    owner = make_user()

    def delete_then_answer(request: Request) -> Reply:
        Webhook.objects.all().delete()  # the owner deletes it meanwhile
        connection.close()  # this server thread's own connection
        return Reply(status=status)

    with LocalServer(delete_then_answer) as server:
        services.webhook_create(owner=owner, url=server.url + "/hook", events=["*"])
        make_thread(owner=owner)
        make_thread(owner=owner)
        assert services.deliveries_run_due() == 2  # the batch goes on past the vanished endpoint
    assert len(server.requests) == 1
    assert not WebhookDelivery.objects.exists()


@pytest.mark.django_db
def test_old_events_are_pruned_unless_a_delivery_is_still_pending(settings):
    from webhooks.tasks import prune_events

    owner = make_user()
    with Receiver(statuses=[200, 500]) as receiver:
        hook_for(receiver, owner)
        make_thread(owner=owner, title="delivered")
        services.deliveries_run_due()
        make_thread(owner=owner, title="retrying")  # 500: pending, retries still to come
        services.deliveries_run_due()
        make_thread(owner=owner, title="recent")
    delivered, retrying = (WebhookEvent.objects.get(body__contains=title) for title in ("delivered", "retrying"))
    old = timezone.now() - timedelta(days=settings.WEBHOOK_EVENT_RETENTION_DAYS, minutes=1)
    WebhookEvent.objects.filter(pk__in=[delivered.pk, retrying.pk]).update(created_at=old)

    assert prune_events() == 1
    assert not WebhookEvent.objects.filter(pk=delivered.pk).exists()
    assert not WebhookDelivery.objects.filter(event_id=delivered.pk).exists()
    assert WebhookEvent.objects.count() == 2  # the pending one and the recent one stay
    assert prune_events() == 0  # at most once every PRUNE_EVERY_SECONDS


@pytest.mark.django_db
def test_a_retention_of_zero_keeps_every_event(settings):
    from webhooks.tasks import prune_events

    settings.WEBHOOK_EVENT_RETENTION_DAYS = 0
    owner = make_user()
    with Receiver() as receiver:
        hook_for(receiver, owner)
        make_thread(owner=owner)
        services.deliveries_run_due()
    WebhookEvent.objects.update(created_at=timezone.now() - timedelta(days=3650))
    assert prune_events() == 0 and WebhookEvent.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("status", "event"),
    [
        (ReplyStream.Status.COMPLETE, "reply.completed"),
        (ReplyStream.Status.ERROR, "reply.failed"),
        (ReplyStream.Status.INTERRUPTED, "reply.failed"),
        (ReplyStream.Status.STOPPED, "reply.failed"),
    ],
)
def test_every_way_a_reply_ends_is_an_event(status, event):
    owner = make_user()
    thread = make_thread(owner=owner)
    question, _ = message_send(thread=thread, sender=owner, content="hi", reply=False)
    with Receiver() as receiver:
        hook_for(receiver, owner, events=["reply.completed", "reply.failed"])
        stream_finish(stream=stream_start(reply_to=question), status=status, content="partial")
        services.deliveries_run_due()
    (got,) = receiver.verified
    assert got["body"]["type"] == event and got["body"]["data"]["status"] == status
    assert got["body"]["data"]["message"]["content"] == "partial"

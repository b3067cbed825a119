"""An event committed while Redis (the broker) is down is delivered once it is back.

Needs the production configuration (REDIS_URL set): the broker is a redis-server of the test's
own (chatproject.testing.RedisServer), killed and started again; the machine's Redis is never
touched.
"""

from __future__ import annotations

import os

import pytest
from django.utils import timezone

from chatproject.celery import app
from chatproject.testing import RedisServer
from threads.tests.factories import make_thread, make_user
from webhooks.models import WebhookDelivery
from webhooks.tasks import deliver_due
from webhooks.tests.test_services import Receiver, hook_for

pytestmark = pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs the production stack (REDIS_URL)")


def use_broker(url: str) -> None:
    app.conf.broker_url = url
    app._pool = None  # connections are pooled per URL: the next publish opens one to ``url``
    app.amqp._producer_pool = None


def run_one_queued_task(timeout: float = 10) -> str:
    """Do what a worker does with the next task on the broker: take it, run it, acknowledge it."""
    with app.connection_for_read() as connection:
        queue = connection.SimpleQueue(app.conf.task_default_queue)
        message = queue.get(timeout=timeout)
        args, kwargs, _embed = message.decode()
        name = message.headers["task"]
        app.tasks[name](*args, **kwargs)
        message.ack()
        queue.close()
    return name


@pytest.fixture
def broker(tmp_path):
    server = RedisServer(tmp_path)
    server.start()
    saved = (app.conf.broker_url, app.conf.task_always_eager)
    use_broker(server.url)
    app.conf.task_always_eager = False  # the production path: publish to the broker
    yield server
    server.kill()
    app.conf.task_always_eager = saved[1]
    use_broker(saved[0])


@pytest.mark.django_db(transaction=True)
def test_an_event_committed_while_redis_is_down_is_delivered_once_it_is_back(broker, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = True
    owner = make_user()
    with Receiver() as receiver:
        hook_for(receiver, owner)
        broker.kill()
        thread = make_thread(owner=owner)  # commits; queueing its delivery fails
        delivery = WebhookDelivery.objects.get()
        assert delivery.status == "pending" and delivery.attempt == 0
        assert delivery.next_attempt_at <= timezone.now()  # due: the periodic job takes it
        assert receiver.requests == []

        broker.start()  # same port: Redis is back, empty
        assert deliver_due() == 1  # the beat's job queues what is due on the broker
        assert run_one_queued_task() == "webhooks.deliver"
        assert deliver_due() == 0  # leased: not queued twice while a worker has it

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempt) == ("succeeded", 1)
    (got,) = receiver.verified
    assert got["body"]["data"]["thread"]["id"] == str(thread.pk)
    assert got["webhook-id"] == delivery.event_id and receiver.rejected == []


@pytest.mark.django_db(transaction=True)
def test_with_the_broker_up_the_delivery_is_queued_after_commit(broker, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = True
    owner = make_user()
    with Receiver() as receiver:
        hook_for(receiver, owner)
        make_thread(owner=owner)
        delivery = WebhookDelivery.objects.get()
        assert delivery.next_attempt_at > timezone.now()  # leased to the queued task
        assert deliver_due() == 0
        assert run_one_queued_task() == "webhooks.deliver"
    delivery.refresh_from_db()
    assert delivery.status == "succeeded" and len(receiver.verified) == 1

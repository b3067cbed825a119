"""What webhooks cost: the outbox write a change pays, and deliveries per second.

    python3 bench/run.py webhooks [--changes 300 --deliveries 200]

Runs on the embedded default (a fresh SQLite file in a temporary VAR_DIR, whatever DATABASE_URL
says) with a local receiver on 127.0.0.1 that verifies every request with ``standardwebhooks``.
Prints the median time of ``thread_update`` with no webhook and with one subscribed webhook (the
difference is the outbox: one event row and one delivery row in the change's transaction), and
how many deliveries ``deliveries_run_due`` (one after the other, as the embedded thread and
``manage.py deliver_webhooks`` do) sends per second.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
for name in ("DATABASE_URL", "REDIS_URL"):
    os.environ.pop(name, None)
os.environ["VAR_DIR"] = tempfile.mkdtemp(prefix="bench-webhooks-")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
os.environ.setdefault("DEBUG", "1")
os.environ["WEBHOOKS_ALLOW_PRIVATE"] = "1"

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from agent.tests.local_http import LocalServer, Reply, Request  # noqa: E402
from threads.services import thread_update  # noqa: E402
from threads.tests.factories import make_thread, make_user  # noqa: E402
from webhooks import services  # noqa: E402
from webhooks.models import WebhookDelivery  # noqa: E402


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def time_updates(thread, count: int) -> list[float]:
    samples = []
    for i in range(count):
        started = time.perf_counter()
        thread_update(thread=thread, title=f"title {i}")
        samples.append(time.perf_counter() - started)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=300)
    parser.add_argument("--deliveries", type=int, default=200)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    from standardwebhooks.webhooks import Webhook as StandardWebhook

    secret = {"value": ""}
    failures: list[str] = []

    def receive(request: Request) -> Reply:
        try:
            StandardWebhook(secret["value"]).verify(request.body, request.headers)
        except Exception as exc:
            failures.append(str(exc))
        return Reply.json({})

    owner = make_user()
    thread = make_thread(owner=owner)
    without = time_updates(thread, args.changes)
    with LocalServer(receive) as receiver:
        webhook = services.webhook_create(owner=owner, url=receiver.url + "/hook", events=["thread.updated"])
        secret["value"] = webhook.secret
        with_hook = time_updates(thread, args.changes)
        WebhookDelivery.objects.all().delete()
        time_updates(thread, args.deliveries)
        started = time.perf_counter()
        sent = 0
        while batch := services.deliveries_run_due(limit=100):
            sent += batch
        elapsed = time.perf_counter() - started
    print(f"thread_update, no webhook:        median {median_ms(without):.2f} ms ({args.changes} changes)")
    print(f"thread_update, 1 subscribed hook: median {median_ms(with_hook):.2f} ms (event + delivery rows)")
    print(
        f"deliveries_run_due: {sent} deliveries in {elapsed:.2f} s = {sent / elapsed:.0f}/s, "
        f"{len(failures)} not verified"
    )


if __name__ == "__main__":
    main()

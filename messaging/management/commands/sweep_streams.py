"""``manage.py sweep_streams``: the periodic sweeps, once, now.

Ends replies whose worker died (keeping their partial text) and queues again the replies of user
messages that never got one (the broker was down). Celery beat, or on the embedded default a
thread of the server, runs the same every SWEEP_INTERVAL_SECONDS; this is for operators.
"""

from django.core.management.base import BaseCommand

from agent.services import reply_sweep_unanswered
from messaging.services import stream_sweep_stale


class Command(BaseCommand):
    help = "End reply streams silent for STREAM_STALE_SECONDS as 'interrupted'; queue unanswered messages again."

    def handle(self, *args, **options) -> None:
        ended = stream_sweep_stale()
        self.stdout.write(f"{ended} stale stream(s) ended as interrupted.")
        outbox = reply_sweep_unanswered()
        self.stdout.write(
            f"{outbox['queued']} unanswered message(s) queued again, {outbox['given_up']} given an error reply."
        )

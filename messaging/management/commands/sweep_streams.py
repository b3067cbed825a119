"""``manage.py sweep_streams``: end replies whose worker died, keeping their partial text.

Connected clients' consumers already do this while they watch a stream; run this from cron for
threads nobody has open.
"""

from django.core.management.base import BaseCommand

from messaging.services import stream_sweep_stale


class Command(BaseCommand):
    help = "End reply streams silent for STREAM_STALE_SECONDS as 'interrupted'."

    def handle(self, *args, **options) -> None:
        ended = stream_sweep_stale()
        self.stdout.write(f"{ended} stale stream(s) ended as interrupted.")

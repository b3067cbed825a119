"""``manage.py profile``: a py-spy recording of one of this server's processes, from the shell."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from chatproject.cli import FAILED, format_bytes, progress_bar, usage_error
from chatproject.errors import Conflict, InvalidInput
from dashboard.models import Profile
from dashboard.services import FINISH_GRACE_SECONDS, profile_path, profile_start

POLL_SECONDS = 0.2


class Command(BaseCommand):
    help = (
        "Record a py-spy profile of one of this server's processes (the same as POST /api/profiling/): "
        "'web' is this command's own process, 'worker' a Celery worker on this machine, or a PID of ours. "
        "Exit 1 when the recording fails (for example without ptrace rights), 2 on bad arguments."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--target", default="worker", help='"web", "worker" (default) or a PID of ours.')
        parser.add_argument("--seconds", default="10", help="How long to record, 1 to 60 (default 10).")
        parser.add_argument("--format", default="flamegraph", help="flamegraph (SVG, default) or speedscope (JSON).")
        parser.add_argument("--output", help="Copy the recording to this file as well.")

    def handle(self, *args: Any, target: str, seconds: str, format: str, output: str | None, **options: Any) -> None:
        try:
            profile = profile_start(target=target, seconds=seconds, format=format)
        except InvalidInput as exc:
            raise usage_error(exc.message) from None
        except Conflict as exc:
            raise CommandError(exc.message, returncode=FAILED) from None
        self.stderr.write(f"Recording process {profile.pid} for {profile.seconds} s ({profile.format}).")
        deadline = time.monotonic() + profile.seconds + FINISH_GRACE_SECONDS + 5
        with progress_bar("recording (s)", profile.seconds, self.stderr) as advance:
            started, shown = time.monotonic(), 0
            while True:
                profile.refresh_from_db()
                elapsed = min(profile.seconds, int(time.monotonic() - started))
                if elapsed > shown:
                    advance(elapsed - shown)
                    shown = elapsed
                if profile.status != Profile.Status.RUNNING or time.monotonic() > deadline:
                    break
                time.sleep(POLL_SECONDS)
            if profile.status == Profile.Status.DONE and shown < profile.seconds:
                advance(profile.seconds - shown)
        if profile.status != Profile.Status.DONE:
            raise CommandError(
                f"Profile {profile.pk} failed: {profile.error or 'it did not finish.'}", returncode=FAILED
            )
        path = profile_path(profile)
        assert path is not None
        if output:
            shutil.copyfile(path, Path(output))
            path = Path(output)
        self.stdout.write(f"{path}\t{format_bytes(profile.size or 0)}\tprofile {profile.pk}")

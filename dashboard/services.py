"""Profiling: py-spy recordings of this server's processes, started here and tracked as ``Profile`` rows.

``profile_start`` checks everything it can before it answers (the input, that the pid is one of
ours, that py-spy may read it, that no other recording runs), stores the row, and leaves py-spy
recording in a child process watched by a thread of this process, which writes the outcome to the
row. The API, the dashboard page and ``manage.py profile`` all go through it.
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.cache import cache
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from chatproject.errors import Conflict, InvalidInput

from . import processes
from .models import Profile

logger = logging.getLogger(__name__)

MIN_SECONDS, MAX_SECONDS = 1, 60
# Recordings at once, on the whole site (py-spy pauses its target 100 times a second).
MAX_CONCURRENT = 1
# Profiles kept: starting a new one deletes the oldest rows past this, with their files.
KEEP = 50
# py-spy needs a moment after the duration to write its file; past this a recording is given up.
FINISH_GRACE_SECONDS = 60
SAMPLE_RATE = 100
WORKER_PING_SECONDS = 1.0


class ProfilingBusy(Conflict):
    code = "profiling_busy"


class PtraceDenied(Conflict):
    code = "ptrace_denied"


class ProfilerUnavailable(Conflict):
    code = "profiler_unavailable"


def profiles_dir() -> Path:
    """PROFILES_DIR, else ``MEDIA_ROOT/profiles`` (the media volume web and worker share)."""
    folder = Path(settings.PROFILES_DIR) if settings.PROFILES_DIR else Path(settings.MEDIA_ROOT) / "profiles"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def profile_path(profile: Profile) -> Path | None:
    """The recording's file, when it was written."""
    return profiles_dir() / profile.filename if profile.filename else None


def profile_request_parse(*, target: Any, seconds: Any, format: Any) -> tuple[str, int | None, int, str]:
    """``(target kind, pid or None, seconds, format)`` from raw input; InvalidInput naming each bad field."""
    errors: dict[str, list[str]] = {}
    pid: int | None = None
    kind = ""
    if target in (Profile.Target.WEB, Profile.Target.WORKER):
        kind = str(target)
    elif isinstance(target, int) and not isinstance(target, bool) and target > 0:
        kind, pid = Profile.Target.PID, target
    elif isinstance(target, str) and target.isascii() and target.isdigit() and 0 < int(target) < 2**31:
        kind, pid = Profile.Target.PID, int(target)
    else:
        errors["target"] = ['Must be "web", "worker" or the pid (a positive whole number) of one of our processes.']
    if isinstance(seconds, str) and seconds.isascii() and seconds.isdigit():
        seconds = int(seconds)
    if not isinstance(seconds, int) or isinstance(seconds, bool) or not MIN_SECONDS <= seconds <= MAX_SECONDS:
        errors["seconds"] = [f"A whole number of seconds from {MIN_SECONDS} to {MAX_SECONDS}."]
    if format not in Profile.Format.values:
        errors["format"] = [f"Must be one of: {', '.join(Profile.Format.values)}."]
    if pid is not None and pid >= 2**31:
        errors["target"] = [f"No process {pid} runs here."]
    if errors:
        raise InvalidInput(errors)
    return kind, pid, int(seconds), str(format)


def _worker_pid() -> int:
    """The pid of a Celery worker's main process on this machine; this process when tasks run in-process."""
    from chatproject.celery import app

    if app.conf.task_always_eager:
        return os.getpid()
    try:
        stats = app.control.inspect(timeout=WORKER_PING_SECONDS).stats() or {}
    except Exception as exc:  # the broker is down: Celery raises kombu/redis errors of many kinds
        raise InvalidInput.field("target", f"Could not ask the Celery workers for their pid: {exc}.") from None
    if not stats:
        raise InvalidInput.field("target", f"No Celery worker answered within {WORKER_PING_SECONDS:g} s.")
    for name in sorted(stats):
        pid = stats[name].get("pid")
        if isinstance(pid, int) and processes.is_celery_worker(pid) and processes.check_profilable(pid) is None:
            return pid
    raise InvalidInput.field(
        "target",
        f"Celery workers answered ({', '.join(sorted(stats))}) but none runs where this process can see it "
        "(another host or container): run `manage.py profile --target worker` where the worker runs.",
    )


def _preflight(pid: int) -> None:
    """A ``py-spy dump`` of the target, not pausing it: proves py-spy runs and may read the process."""
    command = [*processes.py_spy_command(), "dump", "--nonblocking", "--pid", str(pid)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError:
        raise ProfilerUnavailable(
            f"py-spy was not found ({command[0]}): install requirements.txt or set PROFILING_PY_SPY."
        ) from None
    except subprocess.TimeoutExpired:
        raise ProfilerUnavailable(f"py-spy did not answer within 30 s for process {pid}.") from None
    if result.returncode == 0:
        return
    output = (result.stderr or result.stdout).strip()
    if processes.is_permission_error(output):
        raise PtraceDenied(processes.ptrace_advice(pid))
    first_line = output.splitlines()[0] if output else f"exit status {result.returncode}"
    raise InvalidInput.field("target", f"py-spy cannot read process {pid}: {first_line}")


def _check_free() -> None:
    """ProfilingBusy when MAX_CONCURRENT recordings run (after ending those whose watcher died)."""
    profile_expire_stale()
    running = list(Profile.objects.filter(status=Profile.Status.RUNNING).order_by("created_at")[:MAX_CONCURRENT])
    if len(running) >= MAX_CONCURRENT:
        oldest = running[0]
        left = max(1, oldest.seconds - int((timezone.now() - oldest.created_at).total_seconds()))
        raise ProfilingBusy(
            f"A recording is already running (at most {MAX_CONCURRENT} at a time): try again in about {left} s."
        )


def profile_expire_stale() -> int:
    """Mark failed the recordings whose watcher died with its process (they would hold the slot)."""
    now = timezone.now()
    stale = Profile.objects.filter(
        status=Profile.Status.RUNNING,
        created_at__lt=now - timedelta(seconds=MAX_SECONDS + FINISH_GRACE_SECONDS),
    )
    return stale.update(
        status=Profile.Status.FAILED,
        error="The process that was recording it stopped before it finished.",
        finished_at=now,
    )


def _prune() -> None:
    """Delete the profiles past the newest KEEP, rows and files."""
    old = list(Profile.objects.exclude(status=Profile.Status.RUNNING).order_by("-created_at")[KEEP:])
    folder = profiles_dir()
    for profile in old:
        if profile.filename:
            (folder / profile.filename).unlink(missing_ok=True)
    Profile.objects.filter(pk__in=[profile.pk for profile in old]).delete()


def profile_start(
    *, target: Any, seconds: Any, format: Any, requested_by: User | AnonymousUser | None = None
) -> Profile:
    """Start a py-spy recording of one of this server's processes; returns its row, ``running``.

    Raises InvalidInput (bad input, a pid that is not one of ours, a worker not found), PtraceDenied
    (py-spy may not read the process: what to grant), ProfilerUnavailable (no py-spy) or
    ProfilingBusy (MAX_CONCURRENT recordings already run). After commit, py-spy records in a child
    process and a thread of this process stores the outcome (``done`` with ``size``, or ``failed``
    with ``error``) when it ends.
    """
    kind, pid, seconds, format = profile_request_parse(target=target, seconds=seconds, format=format)
    if kind == Profile.Target.WEB:
        pid = os.getpid()
    elif kind == Profile.Target.WORKER:
        pid = _worker_pid()
    assert pid is not None
    reason = processes.check_profilable(pid)
    if reason:
        raise InvalidInput.field("target", reason)
    _check_free()
    _preflight(pid)
    # One starter at a time across processes (the cache is Redis on the production stack), so
    # two requests cannot both see a free slot.
    lock = "profiling:start"
    if not cache.add(lock, 1, timeout=10):
        raise ProfilingBusy("Another recording is being started: try again in a moment.")
    try:
        _check_free()
        with transaction.atomic():
            profile = Profile.objects.create(
                target=kind,
                pid=pid,
                seconds=seconds,
                format=format,
                requested_by=requested_by if isinstance(requested_by, User) else None,
            )
            transaction.on_commit(lambda: _launch(profile))
    finally:
        cache.delete(lock)
    _prune()
    return profile


def _launch(profile: Profile) -> None:
    filename = f"{profile.pk}.{profile.extension}"
    command = [
        *processes.py_spy_command(),
        "record",
        "--pid",
        str(profile.pid),
        "--duration",
        str(profile.seconds),
        "--rate",
        str(SAMPLE_RATE),
        "--format",
        profile.format,
        "--output",
        str(profiles_dir() / filename),
        # Threads waiting on the database or the network are what a server mostly does: keep them.
        "--idle",
    ]
    if profile.target == Profile.Target.WORKER:
        # The prefork pool's children run the tasks.
        command.append("--subprocesses")
    try:
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    except OSError as exc:
        _finish(profile.pk, filename=filename, returncode=None, output=f"py-spy could not start: {exc}")
        return
    threading.Thread(
        target=_watch, args=(profile.pk, profile.pid, profile.seconds, child, filename), daemon=True
    ).start()


def _watch(profile_id: Any, pid: int, seconds: int, child: subprocess.Popen[str], filename: str) -> None:
    try:
        _, output = child.communicate(timeout=seconds + FINISH_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        output = f"py-spy did not finish within {seconds + FINISH_GRACE_SECONDS} s and was stopped."
    if child.returncode and processes.is_permission_error(output):
        output = processes.ptrace_advice(pid)
    close_old_connections()
    try:
        _finish(profile_id, filename=filename, returncode=child.returncode, output=output)
    except Exception:
        logger.exception("could not store the outcome of profile %s", profile_id)
    finally:
        connection.close()


def _finish(profile_id: Any, *, filename: str, returncode: int | None, output: str) -> None:
    path = profiles_dir() / filename
    size = path.stat().st_size if path.exists() else 0
    if returncode == 0 and size:
        Profile.objects.filter(pk=profile_id).update(
            status=Profile.Status.DONE, filename=filename, size=size, finished_at=timezone.now()
        )
        logger.info("profile %s written: %s bytes", profile_id, size)
        return
    path.unlink(missing_ok=True)
    lines = [line.strip() for line in output.splitlines() if line.strip() and not line.startswith("py-spy> ")]
    # py-spy prints "Error: ..." and then a backtrace: the error is the line to keep.
    errors = [line for line in lines if line.startswith("Error")]
    error = errors[0] if errors else (lines[-1] if lines else f"py-spy ended with exit status {returncode}.")
    Profile.objects.filter(pk=profile_id).update(
        status=Profile.Status.FAILED, error=error[:2000], finished_at=timezone.now()
    )
    logger.warning("profile %s failed: %s", profile_id, error)

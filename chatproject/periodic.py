"""The periodic sweeps (``settings.PERIODIC_TASKS``) where no Celery beat runs.

On the production stack Celery beat sends them to the workers every SWEEP_INTERVAL_SECONDS. The
embedded default has no broker and no beat, so the server process runs them in a daemon thread,
started by its first request (an ASGI server has no start-up hook every server calls).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.conf import settings
from django.db import close_old_connections

logger = logging.getLogger(__name__)

_started = False
_tasks_imported = False
_lock = threading.Lock()


def run_periodic_tasks() -> None:
    """Run each periodic task once, here and now."""
    from chatproject.celery import app

    global _tasks_imported
    if not _tasks_imported:
        app.loader.import_default_modules()  # the apps' tasks modules, as a worker imports them
        _tasks_imported = True
    for name in settings.PERIODIC_TASKS:
        try:
            app.tasks[name]()
        except Exception:
            logger.exception("periodic task %s failed", name)


def _loop() -> None:
    while True:
        time.sleep(settings.SWEEP_INTERVAL_SECONDS)
        run_periodic_tasks()
        close_old_connections()  # this thread's connection, as a request's would be


def start_in_process() -> bool:
    """Start the sweeping thread once per process when settings ask for it; True if it runs."""
    global _started
    if _started or not settings.PERIODIC_JOBS_IN_PROCESS:
        return _started
    with _lock:
        if not _started:
            threading.Thread(target=_loop, name="periodic-sweeps", daemon=True).start()
            _started = True
    return True


class StartPeriodicJobs:
    """ASGI middleware: the first request a server process answers starts its sweeping thread."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if not _started:
            start_in_process()
        return await self.app(scope, receive, send)

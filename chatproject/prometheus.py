"""What ``GET /metrics`` reports: the HTTP and WebSocket metrics of the Daphne processes, and the
running totals every process keeps in the database (``chatproject.totals``).

HTTP requests and WebSocket connections are counted where they are served, by prometheus-client
in the serving process. One Daphne process reports its own. Several behind one address (one
host) set ``PROMETHEUS_MULTIPROC_DIR`` to a folder of their own: each process writes its values
to files there (prometheus-client's multiprocess mode) and any of them reports the sum of all.

Imported by what serves requests (the middleware, the WebSocket wrapper, the view), never by
management commands or the Celery worker, which have no HTTP metrics: only a serving process
makes files in the folder, or tidies it.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .totals import totals_read

# "_created" series say when a process first counted something; in multiprocess mode there are
# none. Left out everywhere, so both modes report the same names.
disable_created_metrics()

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# prometheus-client names its files <type>_<pid>.db (gauges: gauge_<mode>_<pid>.db).
_FILE = re.compile(r"(?P<kind>[a-z_]+?)_(?P<pid>\d+)\.db")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


@contextlib.contextmanager
def _folder_locked(folder: Path) -> Iterator[None]:
    with (folder / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _files_by_pid(folder: Path) -> dict[int, list[Path]]:
    found: dict[int, list[Path]] = {}
    for path in folder.iterdir():
        if match := _FILE.fullmatch(path.name):
            found.setdefault(int(match["pid"]), []).append(path)
    return found


def _forget_dead_connections(folder: Path) -> None:
    """Drop the open-connection gauges of processes that are gone (killed: they could not).

    Their counters and histograms stay: what a process served is part of the totals after it
    ends, or the sum reported would go down.
    """
    for pid in _files_by_pid(folder):
        if pid != os.getpid() and not _pid_alive(pid):
            multiprocess.mark_process_dead(pid, str(folder))


def _folder_prepare(folder: Path) -> None:
    """Tidy the folder as this process starts, before it makes any file there.

    Alone (no other process of the folder alive) it empties the folder: a new run, whose counts
    start at zero as one process's do after a restart (Prometheus reads that as a counter reset),
    and the folder does not keep a file for every process that ever ran. Beside live processes it
    keeps their files and every dead one's counts, and drops dead processes' open connections and
    those of an earlier process with this one's id. The lock keeps two starting processes from
    emptying the folder under each other.
    """
    me = os.getpid()
    files = _files_by_pid(folder)
    if not any(pid != me and _pid_alive(pid) for pid in files):
        for paths in files.values():
            for path in paths:
                path.unlink(missing_ok=True)
        return
    _forget_dead_connections(folder)
    multiprocess.mark_process_dead(me, str(folder))


class _Metrics:
    def __init__(self) -> None:
        labels = ("method", "route", "status")
        self.requests = Counter("chat_http_requests", "HTTP requests answered.", labels)
        self.request_seconds = Histogram(
            "chat_http_request_duration_seconds",
            "Time to answer an HTTP request (to the start of the body, when it is streamed).",
            labels,
        )
        self.websockets_open = Gauge(
            "chat_websocket_connections_open", "WebSocket connections open now.", multiprocess_mode="livesum"
        )
        self.websockets = Counter("chat_websocket_connections", "WebSocket connections accepted.")


@cache
def _metrics() -> _Metrics:
    folder = settings.PROMETHEUS_MULTIPROC_DIR
    if not folder:
        return _Metrics()
    with _folder_locked(Path(folder)):
        _folder_prepare(Path(folder))
        metrics = _Metrics()  # makes this process's files (the open-connections gauge at once)
    # A process stopped by a signal Daphne handles (SIGTERM, SIGINT) exits through here; one that
    # is killed is tidied by the next scrape or start.
    atexit.register(multiprocess.mark_process_dead, os.getpid(), folder)
    return metrics


def route_label(request: HttpRequest) -> str:
    """The URL pattern that answered, not the path: ``/api/threads/<str:thread_id>/messages/``.

    ``<static>`` for static files (served before URLs are resolved); ``<unmatched>`` when no
    pattern matched (404) or a middleware answered before resolving (413).
    """
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "<static>" if request.path.startswith(f"/{settings.STATIC_URL}") else "<unmatched>"
    route: str = match.route
    return "/" + route.removeprefix("^").removesuffix("$")


def http_request_observe(request: HttpRequest, status: int, seconds: float) -> None:
    method = request.method if request.method in METHODS else "other"
    labels = (method, route_label(request), str(status))
    metrics = _metrics()
    metrics.requests.labels(*labels).inc()
    metrics.request_seconds.labels(*labels).observe(seconds)


def websocket_opened() -> None:
    metrics = _metrics()
    metrics.websockets.inc()
    metrics.websockets_open.inc()


def websocket_closed() -> None:
    _metrics().websockets_open.dec()


def metrics_load() -> None:
    """Tidy the folder and make this process's metrics now (at start-up), not on the first request."""
    _metrics()


class _TotalsCollector:
    """The running totals of the database, as Prometheus families (one query a scrape)."""

    def collect(self) -> Iterator[Metric]:
        for series, samples in totals_read():
            if series.kind == "counter":
                counter = CounterMetricFamily(series.name, series.help, labels=series.labels)
                for sample in samples:
                    counter.add_metric(sample.labels, sample.value)
                yield counter
            else:
                histogram = HistogramMetricFamily(series.name, series.help, labels=series.labels)
                for sample in samples:
                    histogram.add_metric(sample.labels, sample.buckets or [], sample.sum_seconds)
                yield histogram


class _Scrape:
    def __init__(self, *sources: Any) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Metric]:
        for source in self.sources:
            yield from source.collect()


def scrape() -> tuple[bytes, str]:
    """The text a scrape gets, and its content type."""
    _metrics()
    folder = settings.PROMETHEUS_MULTIPROC_DIR
    if folder:
        with _folder_locked(Path(folder)):
            _forget_dead_connections(Path(folder))
        # Every process's files; this process's own metrics are among them. (No process or
        # garbage-collector metrics here: they would be of the one process that answered.)
        local = CollectorRegistry()
        multiprocess.MultiProcessCollector(local, folder)
    else:
        local = REGISTRY
    body = generate_latest(_Scrape(local, _TotalsCollector()))
    return body, CONTENT_TYPE_LATEST

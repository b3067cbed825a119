"""Benchmark of the REST lists at size: a million messages in 10,000 threads, and one long thread.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_restscale python3 bench/run.py lists
    VAR_DIR=/tmp/bench-sqlite python3 bench/run.py lists --threads 1000 --long 20000   # SQLite

Works on the database it is given, not a test database: the data takes minutes to seed, so a
second run reuses it. The first run migrates the database and seeds, through
``messaging.services.demo_seed`` (what ``manage.py seed_demo`` does): the user ``bench-lists``
with ``--threads`` threads of ``--messages`` messages, and the user ``bench-long`` with one
thread of ``--long`` messages. Give it a database of its own (it never deletes what it made;
drop the database afterwards).

Then it times, through the whole Django stack (token auth, DRF, JSON rendering), ``--runs``
requests each, wall p50/p95/p99 and CPU p50, and counts the queries of one request:

- the thread list's first and last page (the user with all the threads), by number and by cursor
  (the page after its middle thread),
- the long thread's message list: first page, last page by ``?page=last`` (COUNT, then read
  from the end), the newest page by ``?cursor=last`` and the page after its middle message by
  cursor. ``--pages-only`` times the page-number requests alone (for a checkout without cursors).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key")
# A log line per request would be timed with the work and drown the numbers.
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from timing import timed  # noqa: E402  (bench/, the script's folder)

TEXT = "A message of about the length people write in a chat, with a few words more: {n} of the thread."
MANY, LONG = "bench-lists", "bench-long"


def seed(username: str, threads: int, messages: int) -> None:
    """Create ``username`` with its threads unless a complete earlier run did (the same sizes)."""
    from messaging.services import demo_seed
    from threads.models import ChatThread

    User = get_user_model()
    user = User.objects.filter(username=username).first()
    if user is not None:
        have = ChatThread.objects.filter(owner=user).count()
        if have == threads:
            print(f"reusing {username}: {threads} threads")
            return
        raise SystemExit(f"{username} has {have} threads, not {threads}: use another database (or drop this one)")
    user = User.objects.create_user(username=username, password="bench-password")
    started, done = time.perf_counter(), 0

    def progress(count: int) -> None:
        nonlocal done
        done += count
        print(f"  {username}: seeded {done}/{threads} threads", end="\r", flush=True)

    counts = demo_seed(owner_ids=[user.pk], threads=threads, messages=messages, text=TEXT, on_thread=progress)
    print(f"\n  {counts['messages']} messages in {time.perf_counter() - started:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=100, help="Messages per thread.")
    parser.add_argument("--long", type=int, default=100_000, help="Messages of the one long thread.")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--seed-only", action="store_true")
    parser.add_argument(
        "--pages-only", action="store_true", help="Only page numbers (to time a checkout from before cursors)."
    )
    args = parser.parse_args()
    settings.ALLOWED_HOSTS = ["testserver", "localhost"]
    call_command("migrate", verbosity=0)
    seed(MANY, args.threads, args.messages)
    seed(LONG, 1, args.long)
    with connection.cursor() as cursor:
        # Fresh bulk inserts have no statistics yet: the planner's guesses would be timed instead.
        cursor.execute("ANALYZE")
    if args.seed_only:
        return
    measure(args)


def measure(args: argparse.Namespace) -> None:
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    from threads.models import ChatThread

    User = get_user_model()
    clients = {}
    for name in (MANY, LONG):
        client = APIClient()
        token, _ = Token.objects.get_or_create(user=User.objects.get(username=name))
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        clients[name] = client
    long_thread = ChatThread.objects.get(owner__username=LONG)
    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    print(
        f"lists bench: {args.threads} threads of {args.messages} messages, one of {args.long}; {engine}, "
        f"{args.runs} runs; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )

    def get(name: str, url: str, params: dict[str, str] | None = None) -> dict:
        response = clients[name].get(url, params or {})
        assert response.status_code == 200, (url, params, response.status_code, response.content[:300])
        return response.json()

    messages_url = f"/api/threads/{long_thread.pk}/messages/"
    pages = [
        ("thread list, first page", MANY, "/api/threads/", None),
        ("thread list, last page (?page=last)", MANY, "/api/threads/", {"page": "last"}),
        ("message list, first page", LONG, messages_url, None),
        ("message list, last page (?page=last)", LONG, messages_url, {"page": "last"}),
    ]
    if args.pages_only:
        time_cases(pages, get, args.runs)
        return
    # Cursors a client paging half-way through would hold: the links of the thread-list page
    # after the middle thread, and of the long thread's page before its middle message (built
    # here as the API builds them, rather than by following a thousand links first).
    from chatproject.pagination import CursorOrPagePagination
    from messaging.models import ChatMessage
    from messaging.selectors import message_list
    from threads.selectors import thread_list

    def middle(queryset, fields: list[str]) -> str:
        row = queryset[queryset.count() // 2]
        return CursorOrPagePagination._encode(True, [getattr(row, name) for name in fields])

    deep_threads = middle(thread_list(user=User.objects.get(username=MANY)), ["updated_at", "pk"])
    deep_messages = middle(message_list(thread=long_thread), ["created_at", "pk"])
    assert ChatMessage.objects.filter(thread=long_thread).count() == args.long
    cursors = [
        ("thread list, first page (cursor)", MANY, "/api/threads/", {"cursor": "first"}),
        ("thread list, middle page (cursor)", MANY, "/api/threads/", {"cursor": deep_threads}),
        ("message list, first page (cursor)", LONG, messages_url, {"cursor": "first"}),
        ("message list, newest page (?cursor=last)", LONG, messages_url, {"cursor": "last"}),
        ("message list, middle page (cursor)", LONG, messages_url, {"cursor": deep_messages}),
    ]
    time_cases(pages + cursors, get, args.runs)


def time_cases(cases: list, get, runs: int) -> None:
    for label, name, url, params in cases:
        with CaptureQueriesContext(connection) as queries:
            get(name, url, params)
        timed(
            f"{label} [{len(queries)} queries]",
            runs,
            lambda name=name, url=url, params=params: get(name, url, params),
            width=66,
        )


if __name__ == "__main__":
    main()

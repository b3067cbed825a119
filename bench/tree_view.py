"""Benchmark of the conversation tree reads on a large thread.

    python3 bench/run.py tree [--messages 5000 --runs 50]

Builds a thread of ``--messages`` messages in a test database of its own (SQLite in a temporary
file by default; ``test_<name>`` next to DATABASE_URL's when it is set), shaped like a long chat
with many edits and regenerations: mostly user/AI turns down the active branch, with a sibling
branch every few turns. Then it times, over ``--runs`` requests each (p50/p95/max, ms):

- ``GET /api/visualization/{id}/`` through the whole Django stack (token auth, JSON rendering),
- the ``thread_tree`` selector alone, and ``message_path`` (the agent's context, ``?path=active``),
- ``GET /api/threads/{id}/messages/?path=active&page=last`` (what the chat page loads).

The issue's bar: the visualization endpoint under 100 ms for a 5,000-message thread.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
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
from django.test.utils import setup_databases, teardown_databases  # noqa: E402
from timing import timed  # noqa: E402  (bench/, the script's folder)


def build_thread(count: int, rng: random.Random):
    from django.contrib.auth import get_user_model

    from messaging.models import ChatMessage
    from threads.models import ChatThread

    user = get_user_model().objects.create_user("bench", password="bench-password-123")
    thread = ChatThread.objects.create(owner=user, title="Bench")
    rows: list[ChatMessage] = []
    parent = None
    words = ["the", "plan", "for", "a", "trip", "needs", "budget", "and", "**map**", "of", "`route`", "with", "stops"]
    for n in range(count):
        role = "user" if n % 2 == 0 else "ai"
        # Every tenth message branches off an earlier one (an edit or a regeneration).
        if rows and n % 10 == 0:
            parent = rng.choice(rows[-30:]).pk
        content = " ".join(rng.choices(words, k=rng.randint(5, 120)))
        message = ChatMessage(
            thread=thread, role=role, sender=user if role == "user" else None, content=content, parent_id=parent
        )
        rows.append(message)
        parent = message.pk
    ChatMessage.objects.bulk_create(rows, batch_size=500)
    ChatThread.objects.filter(pk=thread.pk).update(active_leaf_id=rows[-1].pk)
    return user, ChatThread.objects.get(pk=thread.pk)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    settings.ALLOWED_HOSTS = ["testserver", "localhost"]
    old = setup_databases(verbosity=0, interactive=False)
    try:
        from rest_framework.authtoken.models import Token
        from rest_framework.test import APIClient

        from messaging.selectors import message_path, thread_tree

        user, thread = build_thread(args.messages, random.Random(7))
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
        engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
        tree = thread_tree(thread=thread)
        path = message_path(thread=thread)
        print(f"tree bench: {args.messages} messages, {len(path)} on the active path, {engine}, {args.runs} runs")
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores: wall times grow with it")

        def visualization() -> None:
            response = client.get(f"/api/visualization/{thread.pk}/")
            assert response.status_code == 200 and len(response.json()["nodes"]) == len(tree["nodes"])

        timed("GET /api/visualization/{id}/", args.runs, visualization)
        timed("thread_tree selector", args.runs, lambda: thread_tree(thread=thread))
        timed("message_path selector (the whole active path loaded)", args.runs, lambda: message_path(thread=thread))
        timed(
            "GET messages/?path=active&page=last",
            args.runs,
            lambda: client.get(f"/api/threads/{thread.pk}/messages/", {"path": "active", "page": "last"}),
        )
    finally:
        teardown_databases(old, verbosity=0)


if __name__ == "__main__":
    main()

"""Benchmark of the streamed bulk export: time and peak memory for one user's whole history.

    python3 bench/run.py export [--threads 10000 --messages 100 --formats json,csv+zip,md+zip]
    python3 bench/run.py export --import-mb 100 [--store]

Seeds one user with ``--threads`` threads of ``--messages`` messages each (about 120 characters,
each the reply to the one before, the last one the active leaf), then, for each format, runs the
export in a fresh process that writes every byte to /dev/null, exactly as
``GET /api/export/?format=...`` streams it (the same generator). It prints the bytes written,
the time, and the process's peak resident memory (``VmHWM``) next to its resident memory
just before the export began: a flat export keeps the difference the same at any size.

``--import-mb N`` instead writes a ChatGPT-like ``conversations.json`` of about N MB and, in a
fresh process, checks and parses it (``--store``: imports it for a new user), printing time and
peak memory: the parse holds one conversation at a time, not the file.

The seeded user is deleted at the end (``--keep`` keeps it for another run with the same sizes).
Uses the embedded default unless DATABASE_URL is set.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
os.environ.setdefault("DEBUG", "1")

import django

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import transaction  # noqa: E402

from messaging.models import ChatMessage  # noqa: E402

TEXT = "A message of about the length people write in a chat, with a few words more: {n} of the thread."


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def _rss_kib() -> int:
    return _status_kib("VmRSS")


def _peak_kib() -> int:
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a child of the seeding
    # process would report the seeder's peak.
    return _status_kib("VmHWM")


def seed(username: str, threads: int, messages: int) -> float:
    """The same bulk seeding as ``manage.py seed_demo`` (messaging.services.demo_seed)."""
    from messaging.services import demo_seed

    started = time.perf_counter()
    user = get_user_model().objects.create_user(username=username, password="bench-password")
    done = 0

    def progress(count: int) -> None:
        nonlocal done
        done += count
        print(f"  seeded {done}/{threads} threads", end="\r", flush=True)

    demo_seed(owner_ids=[user.pk], threads=threads, messages=messages, text=TEXT, on_thread=progress)
    print()
    return time.perf_counter() - started


def measure(username: str, format_name: str) -> None:
    """In a fresh process: export everything to /dev/null; print one JSON line of numbers."""
    from exports.services import export_all_stream, export_request_parse

    user = get_user_model().objects.get(username=username)
    name, _, archive = format_name.partition("+")
    request = export_request_parse(format=name, archive=archive or None)
    before = _rss_kib()
    started = time.perf_counter()
    written = 0
    _, chunks = export_all_stream(user=user, request=request)
    with open(os.devnull, "wb") as sink:
        for chunk in chunks:
            sink.write(chunk)
            written += len(chunk)
    seconds = time.perf_counter() - started
    peak = _peak_kib()
    print(
        json.dumps({"bytes": written, "seconds": seconds, "rss_before_kib": before, "peak_kib": peak, **request.counts})
    )


def chatgpt_file(path: Path, megabytes: int) -> tuple[int, int]:
    """Write a ChatGPT-like conversations.json of about ``megabytes``; (conversations, messages)."""
    conversations = messages = 0
    with path.open("w") as out:
        out.write("[")
        while out.tell() < megabytes * 1_000_000:
            mapping = {"root": {"id": "root", "message": None, "parent": None, "children": ["m0"]}}
            for n in range(40):
                node = f"m{n}"
                mapping[node] = {
                    "id": node,
                    "parent": "root" if n == 0 else f"m{n - 1}",
                    "children": [f"m{n + 1}"] if n < 39 else [],
                    "message": {
                        "id": node,
                        "author": {"role": "user" if n % 2 == 0 else "assistant", "name": None, "metadata": {}},
                        "create_time": 1_700_000_000 + n,
                        "content": {"content_type": "text", "parts": [TEXT.format(n=n) * 4]},
                        "status": "finished_successfully",
                        "metadata": {"model_slug": "gpt-4o"},
                    },
                }
            conversation = {"title": f"Conversation {conversations}", "create_time": 1_700_000_000, "mapping": mapping}
            out.write(("," if conversations else "") + json.dumps(conversation))
            conversations += 1
            messages += 40
        out.write("]")
    return conversations, messages


def measure_import(path: str, username: str | None) -> None:
    """In a fresh process: check and parse (and with a user, import) a file; one JSON line."""
    from exports.services import import_file_open, threads_import

    before = _rss_kib()
    started = time.perf_counter()
    with open(path, "rb") as stream:
        checked = import_file_open(stream=stream, size=os.path.getsize(path))
        if username:
            user = get_user_model().objects.get(username=username)
            result = threads_import(user=user, file=checked)
            imported = sum(item["messages"] for item in result["imported"])
        else:
            imported = sum(len(entry.conversation.messages) for entry in checked.entries() if entry.conversation)
    seconds = time.perf_counter() - started
    peak = _peak_kib()
    print(json.dumps({"messages": imported, "seconds": seconds, "rss_before_kib": before, "peak_kib": peak}))


def import_bench(megabytes: int, store: bool) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "conversations.json"
        conversations, messages = chatgpt_file(path, megabytes)
        size = path.stat().st_size
        username = None
        if store:
            username = f"bench-import-{uuid.uuid4().hex[:8]}"
            get_user_model().objects.create_user(username=username, password="bench-password")
        try:
            out = (
                subprocess.run(
                    [sys.executable, __file__, "--measure-import", str(path), username or ""],
                    capture_output=True,
                    text=True,
                    check=True,
                    # The file may be larger than the default limit: this measures the parse, not the limit.
                    env={**os.environ, "MAX_IMPORT_BYTES": str(max(size + 1, 50 * 1024 * 1024))},
                )
                .stdout.strip()
                .splitlines()[-1]
            )
        finally:
            if username:
                with transaction.atomic():
                    ChatMessage.objects.filter(thread__owner__username=username).delete()
                    get_user_model().objects.filter(username=username).delete()
        result = json.loads(out)
        what = "imported" if store else "checked and parsed (nothing stored)"
        print(
            f"ChatGPT file of {size / 1e6:.1f} MB ({conversations} conversations, {messages} messages) {what} "
            f"in {result['seconds']:.1f} s; peak RSS {result['peak_kib'] / 1024:.1f} MiB, "
            f"{(result['peak_kib'] - result['rss_before_kib']) / 1024:.1f} MiB above the start"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=100, help="Messages per thread.")
    parser.add_argument("--formats", default="json,csv+zip")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--import-mb", type=int, help="Instead: parse a ChatGPT file of this size (MB).")
    parser.add_argument("--store", action="store_true", help="With --import-mb: import it for real.")
    parser.add_argument("--measure", nargs=2, metavar=("USER", "FORMAT"), help=argparse.SUPPRESS)
    parser.add_argument("--measure-import", nargs=2, metavar=("PATH", "USER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(*args.measure)
        return 0
    if args.measure_import:
        measure_import(args.measure_import[0], args.measure_import[1] or None)
        return 0
    call_command("migrate", verbosity=0)
    if args.import_mb:
        import_bench(args.import_mb, args.store)
        return 0
    username = f"bench-export-{args.threads}x{args.messages}"
    User = get_user_model()
    if not User.objects.filter(username=username).exists():
        print(f"seeding {args.threads} threads x {args.messages} messages ...")
        print(f"  seeded in {seed(username, args.threads, args.messages):.1f} s")
    database = django.db.connection.vendor
    print(f"export of {args.threads} threads / {args.threads * args.messages} messages ({database}):")
    try:
        for format_name in args.formats.split(","):
            out = (
                subprocess.run(
                    [sys.executable, __file__, "--measure", username, format_name],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                .stdout.strip()
                .splitlines()[-1]
            )
            result = json.loads(out)
            print(
                f"  {format_name:8} {result['bytes'] / 1e6:8.1f} MB in {result['seconds']:6.1f} s "
                f"({result['messages'] / max(result['seconds'], 1e-9):8.0f} messages/s); "
                f"peak RSS {result['peak_kib'] / 1024:6.1f} MiB, "
                f"{(result['peak_kib'] - result['rss_before_kib']) / 1024:5.1f} MiB above the start of the export"
            )
    finally:
        if not args.keep:
            with transaction.atomic():
                ChatMessage.objects.filter(thread__owner__username=username).delete()
                User.objects.filter(username=username).delete()
    return 0


if __name__ == "__main__":
    sys.exit(main())

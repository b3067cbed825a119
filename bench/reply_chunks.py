"""What a long streamed reply writes to the database: rows, bytes and time.

    python3 bench/run.py chunks [--deltas 4000 --delta-chars 16 --runs 3] [--database both|sqlite|postgres]

One reply of ``--deltas`` deltas goes through the services a worker calls (``stream_start``,
``stream_append`` once per delta, ``stream_finish`` with the text joined from what was stored, as
a stop or the stale sweep does) on a test database of its own:

- PostgreSQL: a cluster of its own (``chatproject.testing.PostgresCluster``: initdb on a spare
  port, fsync and full-page writes off), so the WAL it writes is this reply's alone. Rows from
  ``pg_stat_database`` (``tup_inserted``, ``tup_updated``), bytes as the WAL written
  (``pg_current_wal_lsn()`` before and after) and the reply tables' size afterwards
  (``pg_total_relation_size``, TOAST and indexes included, dead versions not yet vacuumed too).
- SQLite: a file in a temporary folder (WAL mode, as the embedded default); bytes as what this
  process handed to ``write()`` (``wchar`` of ``/proc/self/io``: the database and its WAL), and the
  file sizes afterwards.

Then ``--runs`` more replies are timed with ``bench/timing.py`` (wall and CPU per whole reply).
The same script measured the code before ReplyChunk (the JSON list rewritten on every delta):
copy it into a checkout of that commit and run it there.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def child(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.db import connection
    from django.test.utils import setup_databases, teardown_databases
    from timing import timed  # bench/, the script's folder

    old = setup_databases(verbosity=0, interactive=False)
    try:
        from django.contrib.auth import get_user_model

        from messaging.models import ChatMessage
        from messaging.services import stream_append, stream_finish, stream_start
        from threads.models import ChatThread

        user = get_user_model().objects.create_user("bench", password="bench-password-123")
        thread = ChatThread.objects.create(owner=user, title="Bench")
        # Text that compresses about as well as prose (PostgreSQL compresses a large JSON value).
        rng = random.Random(7)
        words = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9))) for _ in range(5000)]
        deltas = []
        for _ in range(args.deltas):
            delta = ""
            while len(delta) < args.delta_chars:
                delta += rng.choice(words) + " "
            deltas.append(delta[: args.delta_chars])

        def reply() -> None:
            question = ChatMessage.objects.create(thread=thread, role="user", sender=user, content="go")
            stream = stream_start(reply_to=question)
            assert stream is not None
            for delta in deltas:
                assert stream_append(stream=stream, delta=delta)
            message = stream_finish(stream=stream, status="interrupted")  # joins what was stored
            assert message is not None and message.content == "".join(deltas)[: len(message.content)]

        vendor = connection.vendor
        result: dict = {"vendor": vendor, "deltas": args.deltas, "delta_chars": args.delta_chars}
        if vendor == "postgresql":
            result.update(_postgres(connection, reply))
        else:
            result.update(_sqlite(connection, reply))
        print("RESULT=" + json.dumps(result), flush=True)
        timed(f"{vendor}: one reply of {args.deltas} deltas", args.runs, reply)
    finally:
        teardown_databases(old, verbosity=0)


def _pg_counts(cursor) -> dict[str, int]:
    # The backend's pending statistics reach shared memory when it is next idle: wait for that.
    cursor.execute("SELECT pg_stat_force_next_flush()")
    time.sleep(1.5)
    cursor.execute("SELECT pg_stat_clear_snapshot()")
    cursor.execute(
        "SELECT tup_inserted, tup_updated, tup_deleted, pg_current_wal_lsn() FROM pg_stat_database"
        " WHERE datname = current_database()"
    )
    inserted, updated, deleted, lsn = cursor.fetchone()
    return {"inserted": inserted, "updated": updated, "deleted": deleted, "lsn": lsn}


def _postgres(connection, reply) -> dict:
    with connection.cursor() as cursor:
        before = _pg_counts(cursor)
        start, start_cpu = time.perf_counter(), time.process_time()
        reply()
        seconds, cpu = time.perf_counter() - start, time.process_time() - start_cpu
        after = _pg_counts(cursor)
        cursor.execute("SELECT pg_wal_lsn_diff(%s, %s)", [after["lsn"], before["lsn"]])
        wal = int(cursor.fetchone()[0])
        cursor.execute(
            "SELECT relname, pg_total_relation_size(relid) FROM pg_stat_user_tables"
            " WHERE relname LIKE 'messaging_reply%%' ORDER BY relname"
        )
        sizes = dict(cursor.fetchall())
    return {
        "rows_inserted": after["inserted"] - before["inserted"],
        "rows_updated": after["updated"] - before["updated"],
        "wal_bytes": wal,
        "table_bytes": sizes,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),
    }


def _written() -> int:
    with open("/proc/self/io") as io:
        return next(int(line.split()[1]) for line in io if line.startswith("wchar:"))


def _sqlite(connection, reply) -> dict:
    name = Path(connection.settings_dict["NAME"])
    start_bytes = _written()
    start, start_cpu = time.perf_counter(), time.process_time()
    reply()
    seconds, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    written = _written() - start_bytes
    files = {path.name: path.stat().st_size for path in name.parent.glob(name.name + "*")}
    return {"bytes_written": written, "file_bytes": files, "seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deltas", type=int, default=4000)
    parser.add_argument("--delta-chars", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3, help="Replies timed after the measured one.")
    parser.add_argument("--database", choices=["both", "sqlite", "postgres"], default="both")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    sys.path.insert(0, str(ROOT))
    from chatproject.testing import PostgresCluster

    forwarded = ["--deltas", str(args.deltas), "--delta-chars", str(args.delta_chars), "--runs", str(args.runs)]
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    for database in ("sqlite", "postgres") if args.database == "both" else (args.database,):
        with tempfile.TemporaryDirectory(prefix="chat-bench-chunks-") as var:
            cluster = None
            run_env = {**env, "VAR_DIR": var}
            if database == "postgres":
                cluster = PostgresCluster()
                cluster.start()
                run_env["DATABASE_URL"] = cluster.url("postgres")
            try:
                subprocess.run(
                    [sys.executable, __file__, "--child", *forwarded], env=run_env, cwd=ROOT, check=True, timeout=3600
                )
            finally:
                if cluster is not None:
                    cluster.remove()


if __name__ == "__main__":
    main()

"""Reply chunks as insert-only rows: what one delta writes, reading from a seq, the end of a stream
racing with its worker, and the migration of the JSON lists they replace."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.test.utils import CaptureQueriesContext

from messaging.consumers import _stream_state
from messaging.models import ReplyChunk, ReplyStream
from messaging.selectors import stream_chunk_list, stream_text
from messaging.services import stream_append, stream_start, stream_stop, stream_sweep_stale
from messaging.tests.factories import make_message
from threads.tests.factories import make_thread

pytestmark = pytest.mark.django_db


def writes(queries: list[dict]) -> list[str]:
    """The statements that change rows (not transaction control), upper-cased."""
    changing = ("INSERT", "UPDATE", "DELETE", "WITH")
    return [q["sql"].upper() for q in queries if q["sql"].lstrip().upper().startswith(changing)]


def test_each_delta_is_one_insert_and_one_fixed_size_update_however_long_the_reply():
    stream = stream_start(reply_to=make_message(make_thread(), "q"))
    sizes = []
    for n in range(300):
        with CaptureQueriesContext(connection) as captured:
            assert stream_append(stream=stream, delta=f"delta {n:04d} ")
        changes = writes(captured.captured_queries)
        if connection.vendor == "postgresql":
            # One statement, one round trip: no BEGIN, savepoint or COMMIT around it either.
            assert len(captured.captured_queries) == 1 and len(changes) == 1
            [statement] = changes
            assert "UPDATE MESSAGING_REPLYSTREAM" in statement and "INSERT INTO MESSAGING_REPLYCHUNK" in statement
        else:
            inserts = [sql for sql in changes if sql.startswith("INSERT")]
            updates = [sql for sql in changes if sql.startswith("UPDATE")]
            assert len(inserts) == 1 and '"MESSAGING_REPLYCHUNK"' in inserts[0]
            assert len(updates) == 1 and '"MESSAGING_REPLYSTREAM"' in updates[0]
            assert len(changes) == 2
            # The UPDATE carries the count and the heartbeat only.
            assert "DELTA" not in updates[0]
        # No earlier delta is written again.
        assert n == 0 or f"DELTA {n - 1:04d}" not in " ".join(changes)
        sizes.append(sum(len(sql) for sql in changes))
    # The 300th delta writes what the 2nd did (give or take the digits of its seq).
    assert max(sizes[1:]) - min(sizes[1:]) <= 4
    stream.refresh_from_db()
    assert stream.chunk_count == 300 == ReplyChunk.objects.filter(stream=stream).count()
    assert stream_text(stream_id=stream.pk) == "".join(f"delta {n:04d} " for n in range(300))
    assert stream.first_chunk_at is not None and stream.first_chunk_at <= stream.heartbeat_at


def test_reading_from_a_seq_returns_only_the_later_chunks():
    stream = stream_start(reply_to=make_message(make_thread(), "q"))
    for n in range(10):
        stream_append(stream=stream, delta=f"{n},")
    assert stream_chunk_list(stream_id=stream.pk, from_seq=7) == [(7, "7,"), (8, "8,"), (9, "9,")]
    assert stream_chunk_list(stream_id=stream.pk, from_seq=10) == []
    assert [seq for seq, _ in stream_chunk_list(stream_id=stream.pk)] == list(range(10))


def test_the_consumers_stream_state_reads_only_what_the_client_lacks(django_assert_num_queries):
    thread = make_thread()
    stream = stream_start(reply_to=make_message(thread, "q"))
    for n in range(50):
        stream_append(stream=stream, delta=f"{n} ")
    with CaptureQueriesContext(connection) as captured:
        state = _stream_state(thread.pk, str(stream.pk), 48)
    assert state is not None and state["chunks"] == [(48, "48 "), (49, "49 ")] and state["end"] is None
    assert len(captured) == 2 and any('"SEQ" >= 48' in q["sql"].upper() for q in captured.captured_queries)
    # Nothing new: the stream's row says so, and no chunk is read.
    with django_assert_num_queries(1):
        assert _stream_state(thread.pk, str(stream.pk), 50)["chunks"] == []


def _append_until_refused(stream: ReplyStream, accepted: list[str], started: threading.Event) -> None:
    try:
        for n in range(100_000):
            delta = f"d{n} "
            if not stream_append(stream=stream, delta=delta):
                return
            accepted.append(delta)
            if n == 20:
                started.set()
    finally:
        started.set()
        connection.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("ender", ["stop", "sweep"])
def test_a_stop_or_sweep_racing_the_worker_persists_exactly_the_chunks_stored(settings, ender):
    """The worker appends as fast as it can while another thread ends the stream: the text kept is
    every accepted delta, in order; nothing refused is stored; no seq is missing or doubled."""
    # Every stream is stale at once, even one whose worker beat a moment after the sweep read the
    # clock (each append beats): the sweep races the worker.
    settings.STREAM_STALE_SECONDS = -60
    for _ in range(3):
        thread = make_thread()
        stream = stream_start(reply_to=make_message(thread, "q"))
        accepted: list[str] = []
        started = threading.Event()
        worker = threading.Thread(target=_append_until_refused, args=(stream, accepted, started))
        worker.start()
        assert started.wait(10)
        if ender == "stop":
            stream_stop(user=thread.owner, stream_id=stream.pk)
        else:
            assert stream_sweep_stale(thread_id=thread.pk) == 1
        worker.join(10)
        assert not worker.is_alive()
        ended = ReplyStream.objects.select_related("message").get(pk=stream.pk)
        rows = stream_chunk_list(stream_id=stream.pk)
        assert [seq for seq, _ in rows] == list(range(len(accepted))) and ended.chunk_count == len(accepted)
        assert ended.message.content == "".join(accepted) == "".join(delta for _, delta in rows)
        assert ended.status == {"stop": "stopped", "sweep": "interrupted"}[ender]


@pytest.mark.django_db(transaction=True)
def test_a_stop_waits_for_an_append_in_flight_and_keeps_its_chunk():
    """An append whose transaction is still open when the stop comes: the stop waits for it (the
    stream row is locked) and persists its delta; the next append is refused."""
    thread = make_thread()
    stream = stream_start(reply_to=make_message(thread, "q"))
    stream_append(stream=stream, delta="first ")
    in_flight, stopping = threading.Event(), threading.Event()

    def append_slowly() -> None:
        try:
            with transaction.atomic():
                assert stream_append(stream=stream, delta="in flight")
                in_flight.set()
                stopping.wait(10)
                time.sleep(0.3)  # the stop is waiting on the lock meanwhile
        finally:
            connection.close()

    worker = threading.Thread(target=append_slowly)
    worker.start()
    assert in_flight.wait(10)
    result: list[ReplyStream] = []
    stopper = threading.Thread(
        target=lambda: (result.append(stream_stop(user=thread.owner, stream_id=stream.pk)), connection.close())
    )
    stopper.start()
    stopping.set()
    worker.join(10)
    stopper.join(10)
    assert result and result[0].status == "stopped"
    assert ReplyStream.objects.select_related("message").get(pk=stream.pk).message.content == "first in flight"
    assert not stream_append(stream=stream, delta="too late")
    assert stream_text(stream_id=stream.pk) == "first in flight"


@pytest.mark.django_db(transaction=True)
def test_the_migration_moves_each_streams_list_into_rows_and_back():
    executor = MigrationExecutor(connection)
    before = [("messaging", "0006_list_indexes")]
    executor.migrate(before)
    # The other apps stay at their latest (this rolls back only messaging).
    others = [node for node in executor.loader.graph.leaf_nodes() if node[0] != "messaging"]
    apps = executor.loader.project_state(before + others).apps
    User = apps.get_model("auth", "User")
    Thread = apps.get_model("threads", "ChatThread")
    Message = apps.get_model("messaging", "ChatMessage")
    Stream = apps.get_model("messaging", "ReplyStream")
    owner = User.objects.create(username="old")
    thread = Thread.objects.create(owner=owner, title="old")
    lists = {
        "long": [f"part {n} " for n in range(2500)],  # more than one insert batch
        "unicode": ["Grüße, ", "日本語 ", "🙂"],
        "empty": [],
    }
    streams = {}
    for name, chunks in lists.items():
        question = Message.objects.create(thread=thread, role="user", content=name, sender=owner)
        streams[name] = Stream.objects.create(
            thread=thread, reply_to=question, chunks=chunks, status="streaming", heartbeat_at="2026-01-01T00:00Z"
        ).pk

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    for name, chunks in lists.items():
        assert stream_chunk_list(stream_id=streams[name]) == list(enumerate(chunks))
        assert ReplyStream.objects.get(pk=streams[name]).chunk_count == len(chunks)

    executor = MigrationExecutor(connection)
    executor.migrate(before)
    Stream = executor.loader.project_state(before + others).apps.get_model("messaging", "ReplyStream")
    assert {name: Stream.objects.get(pk=pk).chunks for name, pk in streams.items()} == lists

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


def _chunk_statements(sink: list[str]):
    """An execute wrapper noting each chunk write (the statement that inserts reply chunks)."""

    def note(execute, sql, params, many, context):
        if "INSERT INTO" in sql.upper() and "REPLYCHUNK" in sql.upper():
            sink.append(sql)
        return execute(sql, params, many, context)

    return note


@pytest.mark.django_db(transaction=True)
def test_replies_appending_at_once_each_keep_every_chunk_in_order():
    """Replies of one process write their chunks together (``_ChunkWriter``): each still gets
    every one of its deltas stored once, in its own order, whichever thread wrote them."""
    thread = make_thread()
    streams = [stream_start(reply_to=make_message(thread, f"q{n}")) for n in range(6)]
    failures: list[BaseException] = []

    def produce(stream: ReplyStream, number: int) -> None:
        try:
            for seq in range(25):
                assert stream_append(stream=stream, delta=f"r{number}.{seq} ")
        except BaseException as exc:  # reported by the test below
            failures.append(exc)
        finally:
            connection.close()

    workers = [threading.Thread(target=produce, args=(s, n)) for n, s in enumerate(streams)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert not failures
    for number, stream in enumerate(streams):
        rows = stream_chunk_list(stream_id=stream.pk)
        assert rows == [(seq, f"r{number}.{seq} ") for seq in range(25)]
        assert ReplyStream.objects.get(pk=stream.pk).chunk_count == 25


@pytest.mark.skipif(connection.vendor != "postgresql", reason="holds one stream's row lock (PostgreSQL)")
@pytest.mark.django_db(transaction=True)
def test_chunks_waiting_while_one_is_written_go_in_one_statement():
    """While one reply's chunk write waits (its stream's row is locked by an end in progress), the
    chunks of five other replies gather and are then written by one statement, not five."""
    from messaging.services import _chunk_writer

    thread = make_thread()
    streams = [stream_start(reply_to=make_message(thread, f"q{n}")) for n in range(6)]
    statements: list[str] = []
    results: dict[int, bool] = {}

    def produce(number: int) -> None:
        try:
            with connection.execute_wrapper(_chunk_statements(statements)):
                results[number] = stream_append(stream=streams[number], delta=f"piece {number}")
        finally:
            connection.close()

    def wait_for(condition, seconds: float = 10) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            assert time.monotonic() < deadline
            time.sleep(0.01)

    with transaction.atomic():
        ReplyStream.objects.select_for_update().get(pk=streams[0].pk)  # an end holding the row
        first = threading.Thread(target=produce, args=(0,))
        first.start()
        wait_for(lambda: len(statements) == 1)  # its write is sent, and waits for the lock
        others = [threading.Thread(target=produce, args=(n,)) for n in range(1, 6)]
        for other in others:
            other.start()
        wait_for(lambda: len(_chunk_writer._waiting) == 5)
    for worker in (first, *others):
        worker.join(10)
    assert results == {n: True for n in range(6)}
    assert len(statements) == 2  # the first chunk alone, then the five together
    for number, stream in enumerate(streams):
        assert stream_chunk_list(stream_id=stream.pk) == [(0, f"piece {number}")]


def test_a_batch_stores_the_chunks_of_open_streams_and_refuses_the_ended_one(django_assert_num_queries):
    from messaging.services import _Chunk, _chunks_insert

    thread = make_thread()
    streams = [stream_start(reply_to=make_message(thread, f"q{n}")) for n in range(3)]
    stream_stop(user=thread.owner, stream_id=streams[1].pk)
    chunks = [_Chunk(stream_id=s.pk, thread_id=thread.pk, seq=0, delta=f"d{n}") for n, s in enumerate(streams)]
    if connection.vendor == "postgresql":
        with django_assert_num_queries(1):
            stored = _chunks_insert(chunks)
    else:
        stored = _chunks_insert(chunks)
    assert stored == {streams[0].pk, streams[2].pk}
    assert [stream_chunk_list(stream_id=s.pk) for s in streams] == [[(0, "d0")], [], [(0, "d2")]]
    assert [ReplyStream.objects.get(pk=s.pk).chunk_count for s in streams] == [1, 0, 1]

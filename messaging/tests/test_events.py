"""The wire format (messaging/events.py) and its published document (docs/asyncapi.yaml).

The document is checked as an AsyncAPI 3.0 document (against the specification's own JSON Schema,
kept offline in tests/support), then against the code: the events module and the document name
the same events and frames with the same fields, and every event a real conversation over the
WebSocket produces matches exactly one of the document's messages.
"""

from __future__ import annotations

import json
import re
import typing
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone
from jsonschema import Draft7Validator

from chatproject.errors import InvalidInput, NotFound, RateLimited, ServiceUnavailable
from messaging import events
from messaging.models import ReplyStream
from messaging.services import stream_append, stream_start
from messaging.tests.factories import make_message
from messaging.tests.support import protocol
from messaging.tests.test_consumers import connect, receive_until
from threads.services import thread_delete
from threads.tests.factories import make_thread, make_user

# --- The document itself ------------------------------------------------------------------------


def test_the_document_is_an_asyncapi_3_document():
    doc = protocol.document()
    errors = sorted(Draft7Validator(protocol.asyncapi_schema()).iter_errors(doc), key=str)
    assert not errors, [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5]]
    assert doc["asyncapi"] == "3.0.0"
    assert {"title", "version", "description"} <= set(doc["info"])
    [channel] = doc["channels"].values()
    assert channel["address"] == "/ws/{thread_id}/{user_id}/"
    assert set(channel["parameters"]) == {"thread_id", "user_id"}
    assert {op["action"] for op in doc["operations"].values()} == {"send", "receive"}


def test_every_reference_in_the_document_resolves():
    refs: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            refs.extend(v for k, v in node.items() if k == "$ref")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(protocol.document())
    assert len(refs) > 40
    for ref in refs:
        protocol.resolve(ref)  # KeyError names a dangling one


def test_the_vendored_asyncapi_schema_rejects_a_broken_document():
    """The structural check can fail: a document missing what AsyncAPI 3 requires is refused."""
    validator = Draft7Validator(protocol.asyncapi_schema())
    doc = protocol.document()
    assert not validator.is_valid({**doc, "asyncapi": "2.6.0"})
    assert not validator.is_valid({key: value for key, value in doc.items() if key != "info"})
    broken_operation = {**doc["operations"]["sendEvents"], "action": "publish"}  # AsyncAPI 2's verb
    assert not validator.is_valid({**doc, "operations": {**doc["operations"], "sendEvents": broken_operation}})


def test_the_close_codes_are_documented():
    description = protocol.document()["info"]["description"]
    codes = {value for name, value in vars(events).items() if name.startswith("CLOSE_")}
    assert codes == {4401, 4403, 4404, 4410, 4429, 4503}
    for code in codes:
        assert re.search(rf"^\| {code} \| \S", description, re.MULTILINE), code


# --- The document and the events module ---------------------------------------------------------


def _typed_dicts(union: object) -> dict[str, type]:
    """The TypedDicts of a union, by the literal of their ``type`` key."""
    found = {}
    for td in typing.get_args(union):
        [literal] = typing.get_args(typing.get_type_hints(td)["type"])
        found[literal] = td
    return found


@pytest.mark.parametrize(
    ("action", "union", "names"),
    [
        ("send", events.ServerEvent, events.SERVER_EVENT_TYPES),
        ("receive", events.ClientFrame, events.CLIENT_FRAME_TYPES),
    ],
)
def test_the_module_and_the_document_define_the_same_events_with_the_same_fields(action, union, names):
    documented = protocol.operation_messages(action)
    typed = _typed_dicts(union)
    assert set(documented) == set(names) == set(typed)
    assert len(names) == len(set(names))
    for name, td in typed.items():
        schema = protocol.resolve(documented[name]["payload"]["$ref"])
        assert set(schema["properties"]) == set(td.__required_keys__ | td.__optional_keys__), name
        assert set(schema["required"]) == set(td.__required_keys__), name
        assert schema["properties"]["type"] == {"const": name}


def test_every_constructor_builds_an_event_of_the_document():
    message = {
        "id": "5d1f0a6e-7e55-4f0e-8a57-2f8a0b3c9d10",
        "thread": "0b7c4c0e-4a8a-4a4e-9a43-0f2f3c1f8a11",
        "sender": None,
        "role": "ai",
        "type": "text",
        "content": "4",
        "metadata": {},
        "parent": None,
        "children_count": 0,
        "sibling_ids": ["5d1f0a6e-7e55-4f0e-8a57-2f8a0b3c9d10"],
        "client_id": None,
        "created_at": "2026-12-02T10:00:00.000000Z",
        "attachments": [],
    }
    stream = "0b7c4c0e-4a8a-4a4e-9a43-0f2f3c1f8a11"
    built = [
        events.message(message),
        events.stream_start(stream, reply_to=message["id"], attempt=0),
        events.stream_start(stream, reply_to=message["id"]),
        events.stream_chunk(stream, seq=0, delta="4"),
        events.stream_status(stream, {"step": "tool_start", "tool": "calculator", "input": {"expression": "2+2"}}),
        events.stream_status(
            stream, {"step": "tool_end", "tool": "calculator", "output": "4", "duration_ms": 3, "ok": True}
        ),
        events.stream_end(stream, status="complete", chunk_count=1, message=message),
        events.error("unknown_type", "Unknown frame type 'x'."),
        events.error_for(InvalidInput.field("content", "Bad."), client_id="c1"),
        events.error_for(RateLimited(retry_after=5)),
        events.error_for(ServiceUnavailable()),
        events.pong(),
        events.active_leaf(message["id"]),
        events.forked(
            {
                "id": "0b7c4c0e-4a8a-4a4e-9a43-0f2f3c1f8a11",
                "title": "Plans (fork)",
                "summary": "",
                "status": "active",
                "metadata": {"forked_from": {}},
                "model": "offline",
                "instructions": "",
                "active_leaf": message["id"],
                "created_at": "2026-12-02T10:00:00.000000Z",
                "updated_at": "2026-12-02T10:00:00.000000Z",
            }
        ),
        events.resync_required(after=message["id"], missed=501, limit=500),
    ]
    assert [protocol.check_event(event) for event in built] == [event["type"] for event in built]
    # Something off the document is refused, so the checks above can fail.
    assert protocol.matching_messages({**events.pong(), "extra": 1}) == []
    assert protocol.matching_messages({"type": "stream_chunk", "stream_id": stream, "seq": -1, "delta": "x"}) == []


def test_error_events_take_the_domain_errors_code_and_details():
    assert events.error_for(NotFound("Reply stream not found.")) == {
        "type": "error",
        "code": "not_found",
        "message": "Reply stream not found.",
    }
    assert events.error_for(InvalidInput.field("after", "Not found."), client_id="c9") == {
        "type": "error",
        "code": "validation_error",
        "message": "after: Not found.",
        "errors": {"after": ["Not found."]},
        "client_id": "c9",
    }
    assert events.error_for(ServiceUnavailable())["retry_after"] == 5


# --- What the server really sends ---------------------------------------------------------------


def failing_reply(message):
    from agent.services import ReplyEvent

    yield ReplyEvent(delta="Let me think")
    raise RuntimeError("the model went away")


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_whole_conversation_sends_only_events_of_the_document(settings):
    """Every kind of event, through the real ASGI stack: each matches exactly one message of the document.

    ``test_consumers.py`` checks every event of its tests the same way (its ``_events_match_the_document``).
    """
    settings.ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]
    settings.WEBSOCKET_REPLAY_LIMIT = 3
    alice = await sync_to_async(make_user)("alice")
    thread = await sync_to_async(make_thread)(alice, model="retired")  # model_fallback
    seen: list[dict] = []

    async def until(client, kind: str) -> list[dict]:
        got = await receive_until(client, kind, timeout=10)
        seen.extend(got)
        return got

    async def send(client, frame: dict) -> None:
        assert protocol.matching_messages(frame, "receive") == [frame["type"]], frame
        await client.send_json_to(frame)

    client = await connect(alice, thread)
    await send(client, {"type": "ping"})
    await until(client, "pong")
    await send(client, {"type": "message", "content": "what is 2 plus 2?", "client_id": "m1"})
    first = await until(client, "stream_end")
    question, answer = first[0]["message"], first[-1]["message"]
    await send(client, {"type": "message", "content": "what is 2 plus 2?", "client_id": "m1"})  # a retry
    await until(client, "message")
    data = "bmFtZSxzY29yZQphZGEsMwo="  # a small CSV: the file tool's steps
    await send(
        client, {"type": "file", "filename": "s.csv", "content_type": "text/csv", "data": data, "client_id": "f1"}
    )
    await until(client, "stream_end")
    await send(client, {"type": "regenerate", "message_id": answer["id"], "client_id": "r1"})
    regenerated = await until(client, "stream_end")
    assert regenerated[0]["attempt"] == 1
    await send(client, {"type": "switch", "message_id": question["id"]})
    await until(client, "active_leaf")
    await send(client, {"type": "fork", "message_id": answer["id"], "mode": "path_with_branches"})
    await until(client, "forked")
    for frame in ('{"type": "message", "content": "   ", "client_id": "bad"}', "{not json", '{"type": "shout"}'):
        await client.send_to(text_data=frame)
        await until(client, "error")
    await send(client, {"type": "stop", "stream_id": regenerated[0]["stream_id"]})  # ended already: nothing
    await send(client, {"type": "regenerate", "message_id": "5d1f0a6e-7e55-4f0e-8a57-2f8a0b3c9d10"})
    await until(client, "error")  # not_found

    settings.AGENT_REPLY_GENERATOR = "messaging.tests.test_events.failing_reply"
    await send(client, {"type": "message", "content": "fail please"})
    await until(client, "stream_end")
    settings.AGENT_REPLY_GENERATOR = "messaging.tests.test_regenerate_stop.slow_reply"
    settings.AGENT_EAGER_IN_BACKGROUND = True
    await send(client, {"type": "message", "content": "a long story"})
    streaming = await until(client, "stream_chunk")
    await send(client, {"type": "stop", "stream_id": streaming[-1]["stream_id"]})
    await until(client, "stream_end")

    # Resuming: replayed after a message, too far behind, a sync frame, an unknown after.
    replayed = await connect(alice, thread, query=f"after={answer['id']}")
    await send(replayed, {"type": "ping"})
    await until(replayed, "pong")
    behind = await connect(alice, thread, query=f"after={question['id']}")
    await until(behind, "resync_required")
    await send(behind, {"type": "sync", "after": question["id"]})
    await until(behind, "resync_required")
    await send(behind, {"type": "sync", "after": "5d1f0a6e-7e55-4f0e-8a57-2f8a0b3c9d10"})
    await until(behind, "error")

    # A reply whose worker died: replayed to a new client, then ended as interrupted by its watchdog.
    settings.STREAM_HEARTBEAT_SECONDS = 0.5
    settings.STREAM_STALE_SECONDS = 1

    def dead_worker():
        stream = stream_start(reply_to=make_message(thread, "anyone there?"))
        stream_append(stream=stream, delta="half an ans")
        ReplyStream.objects.filter(pk=stream.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=5))

    await sync_to_async(dead_worker)()
    watcher = await connect(alice, thread)
    await until(watcher, "stream_end")

    kinds = [protocol.check_event(event) for event in seen]
    assert set(kinds) == set(events.SERVER_EVENT_TYPES)
    assert {e["step"] for e in seen if e["type"] == "stream_status"} == {"model_fallback", "tool_start", "tool_end"}
    assert {e["status"] for e in seen if e["type"] == "stream_end"} == {"complete", "error", "stopped", "interrupted"}
    assert {e["code"] for e in seen if e["type"] == "error"} >= {
        "validation_error",
        "invalid_json",
        "unknown_type",
        "not_found",
        "agent_error",
    }

    # The thread's deletion closes every socket with 4410 (a close code, not an event).
    await sync_to_async(thread_delete)(thread=thread)
    for each in (client, replayed, behind, watcher):
        while (output := await each.receive_output(timeout=5))["type"] != "websocket.close":
            protocol.check_event(json.loads(output["text"]))
        assert output["code"] == events.CLOSE_THREAD_DELETED
        await each.disconnect()

"""Logging: JSON lines, request ids (HTTP, WebSocket, into the reply task) and redaction.

Lines are read from the handler the settings configured (its filters as configured), with its
output sent to a buffer: what an operator would see, not what a test handler would.
"""

from __future__ import annotations

import io
import json
import logging
import re

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client
from rest_framework.authtoken.models import Token
from rich.console import Console

from chatproject.asgi import application
from chatproject.logs import FORMATS, JsonFormatter, RedactSecrets, RequestIdFilter, logging_config, rich_handler
from messaging.tests.factories import make_attachment, make_message
from messaging.tests.test_consumers import BROWSER, receive_until
from threads.tests.factories import make_thread, make_user

GENERATED_ID = re.compile(r"[0-9a-f]{32}")


class Lines:
    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def records(self) -> list[dict]:
        """Every line, each parsed on its own: a line that is not one JSON object fails here."""
        return [json.loads(line) for line in self.text.splitlines()]

    def access(self) -> list[dict]:
        return [r for r in self.records() if r["logger"] == "chatproject.access"]

    def assert_absent(self, *secrets: str) -> None:
        assert self.text, "nothing was logged"
        for secret in secrets:
            assert secret not in self.text


@pytest.fixture
def lines():
    """The configured console handler, writing JSON to a buffer at INFO for the test."""
    handler = next(h for h in logging.getLogger().handlers if h.name == "console")
    stream = io.StringIO()
    old_stream, old_formatter = handler.setStream(stream), handler.formatter
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.setLevel(logging.INFO)
    yield Lines(stream)
    root.setLevel(old_level)
    handler.setFormatter(old_formatter)
    handler.setStream(old_stream)


def test_the_configured_handlers_all_add_the_request_id_and_redact():
    for log_format in FORMATS:
        config = logging_config(log_format=log_format, level="INFO")
        for handler in config["handlers"].values():
            assert handler["filters"] == ["request_id", "redact"]
    # And this process runs with them (the settings' LOGGING was applied).
    handler = next(h for h in logging.getLogger().handlers if h.name == "console")
    assert [type(f) for f in handler.filters] == [RequestIdFilter, RedactSecrets]
    assert settings.LOG_FORMAT == "json" and not settings.DEBUG


@pytest.mark.django_db
def test_a_request_is_one_json_line_with_its_id_sent_back(api, user, lines):
    response = api.get("/api/me/", HTTP_X_REQUEST_ID="abc-123")
    assert response.status_code == 200
    assert response["X-Request-ID"] == "abc-123"
    records = lines.records()
    access = [r for r in records if r["logger"] == "chatproject.access"]
    assert len(access) == 1
    line = access[0]
    assert line["request_id"] == "abc-123"
    assert (line["method"], line["path"], line["status"], line["user_id"]) == ("GET", "/api/me/", 200, user.pk)
    assert isinstance(line["duration_ms"], float) and line["level"] == "INFO"
    assert line["message"].startswith("GET /api/me/ 200 ")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])


@pytest.mark.django_db
@pytest.mark.parametrize(
    "sent",
    ["x" * 129, 'abc\n{"level": "CRITICAL"}', "abc\x00def", "a b", "", "é-123"],
    ids=["too-long", "newline", "nul", "space", "empty", "non-ascii"],
)
def test_a_bad_request_id_is_replaced_by_a_new_one(anon_api, lines, sent):
    response = anon_api.get("/api/me/", HTTP_X_REQUEST_ID=sent)
    assert response.status_code == 401
    given = response["X-Request-ID"]
    assert given != sent and GENERATED_ID.fullmatch(given)
    assert [r["request_id"] for r in lines.access()] == [given]
    # Django's own line about the 401 carries it too (logged after the middleware is done).
    assert {r["request_id"] for r in lines.records()} == {given}


def test_a_request_without_an_id_gets_a_new_one_each_time(client, lines):
    first, second = client.get("/healthz")["X-Request-ID"], client.get("/healthz")["X-Request-ID"]
    assert GENERATED_ID.fullmatch(first) and GENERATED_ID.fullmatch(second) and first != second
    # Probes are logged at DEBUG: not a line at INFO.
    assert lines.access() == []


@pytest.mark.django_db
def test_the_access_log_adds_no_query(user, lines, django_assert_num_queries):
    """A signed-in browser on a page that never asks who it is: the user stays unloaded."""
    client = Client()
    client.force_login(user)
    with django_assert_num_queries(0):
        assert client.get("/healthz").status_code == 200
    # The same with the access line at INFO.
    logging.getLogger("chatproject.access").setLevel(logging.DEBUG)
    try:
        with django_assert_num_queries(0):
            client.get("/healthz")
    finally:
        logging.getLogger("chatproject.access").setLevel(logging.NOTSET)
    assert [r["user_id"] for r in lines.access()] == [None]


@pytest.mark.django_db
def test_a_listing_keeps_its_query_count_and_logs_its_user(api, user, lines, django_assert_num_queries):
    thread = make_thread(user)
    for n in range(3):
        make_attachment(make_message(thread, f"m{n}"), f"f{n}.txt")
    # The README's number: seven queries a message listing, whatever the page size.
    with django_assert_num_queries(7):
        assert api.get(f"/api/threads/{thread.pk}/messages/").status_code == 200
    assert [r["user_id"] for r in lines.access()] == [user.pk]


@pytest.mark.django_db(transaction=True)
def test_the_request_id_reaches_the_reply_task(api, user, lines):
    """Celery runs eagerly here (in-process): the reply task's own lines carry the request's id.
    The real worker (the id travels in a task header) is covered by test_logging_stack.py.
    Transactional: the reply is queued when the view's transaction commits, as in production."""
    thread = make_thread(user)
    response = api.post(
        f"/api/threads/{thread.pk}/messages/",
        {"content": "What is 15% of 240?"},
        format="json",
        HTTP_X_REQUEST_ID="reply-trace-1",
    )
    assert response.status_code == 201
    reply_lines = [r for r in lines.records() if r["logger"] == "agent.services"]
    assert len(reply_lines) == 2
    assert reply_lines[0]["message"].endswith("started") and "ended after" in reply_lines[1]["message"]
    assert {r["request_id"] for r in reply_lines} == {"reply-trace-1"}


def test_redaction_on_any_logger_any_field(lines):
    """Whatever logs them, however: message, arguments, extra fields, tracebacks."""
    token = "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"
    log = logging.getLogger("some.library")
    log.warning("calling with Authorization: Token %s", token)
    log.warning("headers", extra={"headers": {"Authorization": f"Bearer {token}", "Cookie": "sessionid=s3ss10nk3y"}})
    log.warning("login %r", {"username": "alice", "password": "hunter2-pass"})
    log.warning("POST /api/auth/token/ body=%s", '{"username": "alice", "password": "hunter2-pass"}')
    log.warning("endpoint secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    log.warning("GET %s", f"/ws/t/1/?after=m1&token={token}")
    log.warning("database postgres://chat:db-pa55word@db:5432/chat")
    try:
        raise ValueError(f"bad token={token}")
    except ValueError:
        log.exception("it failed")
    lines.assert_absent(token, "s3ss10nk3y", "hunter2-pass", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "db-pa55word")
    records = lines.records()
    assert len(records) == 8
    # What is not secret stays readable.
    assert "after=m1" in records[5]["message"] and "ValueError" in records[7]["traceback"]
    assert "alice" in records[2]["message"]


def test_configured_secret_values_are_redacted_verbatim(lines, settings):
    settings.SECRET_KEY = "a-long-secret-key-" + "k" * 40
    settings.OPENAI_API_KEY = "sk-proj-abcdef0123456789"
    logging.getLogger("x").warning("signing with %s", settings.SECRET_KEY)
    logging.getLogger("x").warning("model call failed: %s", "bad key sk-proj-abcdef0123456789 for openai")
    lines.assert_absent(settings.SECRET_KEY, "sk-proj-abcdef0123456789")
    assert "for openai" in lines.text


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_websocket_connection_lines_and_request_id_and_token_redacted(lines, settings):
    settings.ALLOWED_HOSTS = ["localhost"]
    from asgiref.sync import sync_to_async

    alice = await sync_to_async(make_user)("alice")
    thread = await sync_to_async(make_thread)(alice)
    token = (await sync_to_async(Token.objects.create)(user=alice)).key
    communicator = WebsocketCommunicator(
        application,
        f"/ws/{thread.pk}/{alice.pk}/?after=&token={token}",
        headers=[*BROWSER, (b"x-request-id", b"ws-trace-7")],
    )
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_json_to({"type": "message", "content": "what is 2 plus 2?"})
    await receive_until(communicator, "stream_end")
    await communicator.disconnect(code=1001)

    lines.assert_absent(token)
    access = lines.access()
    assert [r["event"] for r in access] == ["websocket_connect", "websocket_disconnect"]
    for line in access:
        assert (line["thread_id"], line["user_id"], line["request_id"]) == (str(thread.pk), alice.pk, "ws-trace-7")
        assert line["path"] == f"/ws/{thread.pk}/{alice.pk}/?after=&token=[REDACTED]"
    assert access[1]["close_code"] == 1001 and access[1]["duration_ms"] >= access[0]["duration_ms"]
    # The reply the connection started logs under the connection's id.
    reply_lines = [r for r in lines.records() if r["logger"] == "agent.services"]
    assert len(reply_lines) == 2 and {r["request_id"] for r in reply_lines} == {"ws-trace-7"}


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_refused_websocket_logs_its_close_code(lines, settings):
    settings.ALLOWED_HOSTS = ["localhost"]
    communicator = WebsocketCommunicator(application, "/ws/nothing/1/?token=not-a-real-token-123", headers=BROWSER)
    connected, _ = await communicator.connect()
    assert connected
    assert (await communicator.receive_output(timeout=5))["code"] == 4401
    await communicator.wait()
    lines.assert_absent("not-a-real-token-123")
    access = lines.access()
    assert [(r["event"], r["user_id"], r["close_code"]) for r in access] == [
        ("websocket_connect", None, None),
        ("websocket_disconnect", None, 4401),
    ]
    assert GENERATED_ID.fullmatch(access[0]["request_id"])


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_handshake_from_a_foreign_origin_logs_one_reject_line(lines, settings):
    settings.ALLOWED_HOSTS = ["localhost"]
    headers = [(b"origin", b"http://evil.example"), (b"host", b"localhost")]
    communicator = WebsocketCommunicator(application, "/ws/x/1/?token=not-a-real-token-123", headers=headers)
    connected, _ = await communicator.connect()
    assert not connected
    await communicator.wait()
    lines.assert_absent("not-a-real-token-123")
    assert [(r["event"], r["user_id"], r["close_code"], r["thread_id"]) for r in lines.access()] == [
        ("websocket_reject", None, None, "x")
    ]


@pytest.mark.django_db
def test_failed_log_ins_never_log_the_password(anon_api, user, lines):
    """Nothing we run logs a password today (Django cleans the failure signal's credentials);
    this guards the real paths: the token API and the log-in page, answered 401 and 200."""
    password = "wrong-Pa55word-xyz"
    response = anon_api.post("/api/auth/token/", {"username": user.username, "password": password}, format="json")
    assert response.status_code in (400, 401)
    client = Client()
    assert client.post("/accounts/login/", {"username": user.username, "password": password}).status_code == 200
    lines.assert_absent(password)
    assert [r["path"] for r in lines.access()] == ["/api/auth/token/", "/accounts/login/"]


@pytest.mark.django_db
def test_creating_a_webhook_logs_neither_its_secret_nor_the_token(api, user, lines, settings):
    """The secret is in the response body only; the API token rides in the Authorization header."""
    settings.WEBHOOKS_ALLOW_PRIVATE = False
    response = api.post("/api/webhooks/", {"url": "https://93.184.215.14/hooks/chat", "events": ["*"]}, format="json")
    assert response.status_code == 201, response.json()
    secret = response.json()["secret"]
    assert secret.startswith("whsec_")
    lines.assert_absent(secret, secret.removeprefix("whsec_"), Token.objects.get(user=user).key)


def test_rich_format_colours_the_access_line():
    output = io.StringIO()
    handler = rich_handler(console=Console(file=output, force_terminal=True, color_system="truecolor", width=200))
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactSecrets())
    fields = {"method": "GET", "path": "/x?token=abc123secret", "status": 404, "duration_ms": 1.5, "user_id": 3}
    record = logging.getLogger("chatproject.access").makeRecord(
        "chatproject.access", logging.INFO, __file__, 1, "%(path)s", fields, None, extra=fields
    )
    handler.handle(record)
    text = output.getvalue()
    assert "\x1b[" in text and "abc123secret" not in text
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
    assert "GET /x?token=[REDACTED] 404 1.5 ms user=3" in plain


def test_plain_format_shows_the_request_id():
    from chatproject.logs import PLAIN_FORMAT, current_request_id

    output = io.StringIO()
    handler = logging.StreamHandler(output)
    handler.setFormatter(logging.Formatter(PLAIN_FORMAT))
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("plain.test")
    logger.addHandler(handler)
    token = current_request_id.set("plain-42")
    try:
        logger.warning("hello")
    finally:
        current_request_id.reset(token)
        logger.removeHandler(handler)
    assert "WARNING plain.test [plain-42] hello" in output.getvalue()

"""The request body limit and the browser security headers, through the real stack.

Bodies without a Content-Length (chunked) are sent to the project's ASGI application the way
Daphne hands them over: several ``http.request`` messages and no length header. A real Daphne
gets the same in test_serve.py.
"""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from asgiref.testing import ApplicationCommunicator
from rest_framework.authtoken.models import Token

from chatproject.asgi import application
from messaging.models import ChatMessage
from threads.models import ChatThread
from threads.tests.factories import make_thread, make_user

LIMIT = 2000


@pytest.fixture
def small_limit(settings):
    settings.REQUEST_MAX_BODY_BYTES = LIMIT


def padded(size: int, **fields) -> bytes:
    """A JSON object of exactly ``size`` bytes: ``fields`` plus padding in its metadata."""
    body = {**fields, "metadata": {"pad": ""}}
    body["metadata"]["pad"] = "x" * (size - len(json.dumps(body).encode()))
    encoded = json.dumps(body).encode()
    assert len(encoded) == size
    return encoded


@pytest.mark.django_db
@pytest.mark.usefixtures("small_limit")
def test_a_body_over_the_limit_is_413_before_parsing_and_nothing_is_stored(api, user, settings):
    settings.METADATA_MAX_BYTES = 10 * LIMIT  # the body limit, not the metadata one, must refuse
    response = api.post("/api/threads/", padded(LIMIT + 1, title="big"), content_type="application/json")
    assert response.status_code == 413
    assert response.json() == {"detail": f"The request body is larger than {LIMIT} bytes.", "code": "too_large"}
    assert ChatThread.objects.count() == 0

    thread = make_thread(user)
    response = api.post(
        f"/api/threads/{thread.pk}/messages/", padded(LIMIT + 1, content="hi"), content_type="application/json"
    )
    assert response.status_code == 413 and response.json()["code"] == "too_large"
    assert ChatMessage.objects.count() == 0

    # At the limit, the same body is parsed and stored.
    response = api.post("/api/threads/", padded(LIMIT, title="fits"), content_type="application/json")
    assert response.status_code == 201


@pytest.mark.django_db
@pytest.mark.usefixtures("small_limit")
def test_the_limit_covers_pages_and_log_in_too(client):
    response = client.post("/accounts/login/", {"username": "a", "password": "x" * LIMIT})
    assert response.status_code == 413


def test_the_default_limit_fits_the_largest_valid_message(settings):
    # The most verbose valid body: every character an emoji written as two \uXXXX escapes (as
    # json.dumps writes it), and metadata at its limit in characters that escape the same way.
    metadata = {"pad": "é" * (settings.METADATA_MAX_BYTES // 2 - 10)}
    largest = json.dumps({"content": "😀" * settings.MAX_MESSAGE_CHARS, "metadata": metadata, "client_id": "x" * 64})
    assert len(largest.encode()) <= settings.REQUEST_MAX_BODY_BYTES


async def asgi_post(path: str, chunks: list[bytes], headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
    """POST ``chunks`` as one body with no Content-Length, as Daphne passes a chunked request."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"localhost"), (b"content-type", b"application/json"), *headers],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }
    communicator = ApplicationCommunicator(application, scope)
    for index, chunk in enumerate(chunks):
        await communicator.send_input({"type": "http.request", "body": chunk, "more_body": index < len(chunks) - 1})
    start = await communicator.receive_output(timeout=10)
    body = b""
    while True:
        message = await communicator.receive_output(timeout=10)
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await communicator.wait(timeout=10)
    return start["status"], body


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("small_limit")
async def test_a_chunked_body_without_content_length_is_limited_and_otherwise_parsed(settings):
    settings.ALLOWED_HOSTS = ["localhost"]
    settings.METADATA_MAX_BYTES = 10 * LIMIT
    user = await sync_to_async(make_user)("chunky")
    token = await sync_to_async(lambda: Token.objects.create(user=user).key)()
    auth = [(b"authorization", f"Token {token}".encode())]

    body = padded(LIMIT + 1, title="big")
    status, answer = await asgi_post("/api/threads/", [body[:1000], body[1000:]], auth)
    assert status == 413 and json.loads(answer)["code"] == "too_large"
    assert await ChatThread.objects.acount() == 0

    # Under the limit, a chunked body is read like any other (DRF alone would take it as empty).
    body = padded(LIMIT, title="chunked")
    status, answer = await asgi_post("/api/threads/", [body[:1000], body[1000:]], auth)
    assert status == 201, answer
    assert (await ChatThread.objects.aget()).title == "chunked"


@pytest.mark.django_db
def test_every_page_gets_the_content_security_policy(client, user):
    client.force_login(user)
    thread = make_thread(user)
    for path in ["/accounts/login/", "/", f"/t/{thread.pk}/", "/healthz"]:
        policy = client.get(path)["Content-Security-Policy"]
        assert "script-src 'self';" in policy and "style-src 'self';" in policy, path
        assert "'unsafe-inline'" not in policy and "object-src 'none'" in policy
        assert "frame-ancestors 'none'" in policy
    # Pages of DRF, Swagger UI and ReDoc may have inline styles; never inline scripts.
    for path in ["/api/threads/", "/api/docs/", "/api/redoc/"]:
        policy = client.get(path, HTTP_ACCEPT="text/html")["Content-Security-Policy"]
        assert "script-src 'self';" in policy and "style-src 'self' 'unsafe-inline';" in policy, path


def test_debug_error_pages_keep_their_inline_styles(client, settings):
    settings.DEBUG = True
    response = client.get("/no-such-page/")
    assert response.status_code == 404 and "Content-Security-Policy" not in response
    settings.DEBUG = False
    assert "Content-Security-Policy" in client.get("/no-such-page/")


@pytest.mark.django_db
def test_referrer_policy_and_hsts_over_https(client, settings):
    settings.SECURE_HSTS_SECONDS = 31536000
    response = client.get("/accounts/login/", secure=True)
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Strict-Transport-Security"] == "max-age=31536000"
    # Plain HTTP never gets HSTS: browsers ignore it there and a LAN setup keeps working.
    assert "Strict-Transport-Security" not in client.get("/accounts/login/")


@pytest.mark.django_db
def test_swagger_ui_starts_from_a_script_file_not_an_inline_script(client, user):
    client.force_login(user)
    page = client.get("/api/docs/").content.decode()
    assert "<script>" not in page and 'src="/api/docs/?script="' in page
    script = client.get("/api/docs/?script=")
    assert script["Content-Type"].startswith("application/javascript")
    assert b"SwaggerUIBundle" in script.content

"""The WebSocket handshake's origin check, as Django's CSRF origin check would judge the same request."""

from __future__ import annotations

import pytest

from chatproject.websocket import origin_allowed


def handshake(origin: str | None, host: str | None = "chat.example", *, scheme: str = "ws", **headers: str) -> dict:
    pairs = [("origin", origin), ("host", host), *headers.items()]
    return {
        "type": "websocket",
        "scheme": scheme,
        "server": ("10.0.0.5", 8000),
        "headers": [(name.replace("_", "-").encode(), value.encode()) for name, value in pairs if value is not None],
    }


@pytest.mark.parametrize(
    ("scope", "allowed"),
    [
        (handshake(None), True),
        (handshake("http://chat.example"), True),
        (handshake("https://chat.example"), False),  # the page was https, the socket is not: not this origin
        (handshake("https://chat.example", scheme="wss"), True),
        (handshake("http://chat.example:8000"), False),
        (handshake("http://chat.example:8000", "chat.example:8000"), True),
        (handshake("http://evil.example"), False),
        (handshake("null"), False),
        (handshake("http://sub.chat.example"), False),
        # Two Origin headers are one joined value that matches nothing.
        ({**handshake("http://chat.example"), "headers": [(b"origin", b"http://chat.example")] * 2}, False),
        # No Host header: the server address, as Django builds the host from SERVER_NAME/PORT.
        (handshake("http://10.0.0.5:8000", None), False),  # 10.0.0.5 is not an allowed host
    ],
)
def test_origin_must_be_the_requests_own(settings, scope, allowed):
    settings.ALLOWED_HOSTS = ["chat.example"]
    settings.CSRF_TRUSTED_ORIGINS = []
    assert origin_allowed(scope) is allowed


def test_a_host_outside_allowed_hosts_is_no_origin_of_ours(settings):
    settings.ALLOWED_HOSTS = ["chat.example"]
    assert not origin_allowed(handshake("http://evil.example", "evil.example"))
    settings.ALLOWED_HOSTS = ["10.0.0.5"]
    assert origin_allowed(handshake("http://10.0.0.5:8000", None))


def test_any_host_still_needs_the_same_origin(settings):
    """ALLOWED_HOSTS = "*" used to turn the check off; like Django's CSRF check it no longer does."""
    settings.ALLOWED_HOSTS = ["*"]
    settings.CSRF_TRUSTED_ORIGINS = []
    assert origin_allowed(handshake("http://chat.example"))
    assert not origin_allowed(handshake("https://evil.example"))
    # A page on evil.example can only reach a server at evil.example, which gets evil.example's cookies.
    assert origin_allowed(handshake("http://evil.example", "evil.example"))


def test_debug_with_no_allowed_hosts_admits_localhost(settings):
    settings.DEBUG = True
    settings.ALLOWED_HOSTS = []
    assert origin_allowed(handshake("http://localhost:8000", "localhost:8000"))
    assert not origin_allowed(handshake("http://chat.example"))


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://chat.example.com", True),
        ("http://chat.example.com", False),
        ("https://eu.app.example.org", True),
        ("https://app.example.org", True),
        ("http://eu.app.example.org", False),
        ("https://evilapp.example.org", False),
    ],
)
def test_csrf_trusted_origins(settings, origin, allowed):
    settings.ALLOWED_HOSTS = ["internal"]
    settings.CSRF_TRUSTED_ORIGINS = ["https://chat.example.com", "https://*.app.example.org"]
    assert origin_allowed(handshake(origin, "internal")) is allowed


def test_a_tls_proxy_is_believed_only_when_configured(settings):
    settings.ALLOWED_HOSTS = ["chat.example"]
    behind_proxy = handshake("https://chat.example", x_forwarded_proto="https")
    assert not origin_allowed(behind_proxy)
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert origin_allowed(behind_proxy)
    assert not origin_allowed(handshake("https://chat.example", x_forwarded_proto="http"))

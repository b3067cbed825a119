"""Fetching a URL a user gave us without letting it reach our own network (SSRF).

``url_check`` refuses a URL whose scheme is not allowed or whose host resolves to any address
that is not public; ``fetch`` resolves once, checks every address, then connects to a checked
address itself (the TLS name and the Host header stay the URL's host), so a second DNS answer
cannot swap in an internal address between the check and the connection (DNS rebinding).
Redirects are never followed: the caller sees the 3xx.

Refused: loopback, private (RFC 1918), link-local (169.254.0.0/16, where cloud metadata lives;
fe80::/10), shared/CGNAT (100.64.0.0/10), multicast, unique-local (fc00::/7), unspecified,
reserved and documentation ranges, and IPv6 forms that carry one of those IPv4 addresses
(IPv4-mapped ``::ffff:a.b.c.d``, 6to4, Teredo, NAT64 ``64:ff9b::/96``).

Tests (and names that need no real DNS) swap the resolver with ``use_resolver``.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from chatproject.errors import InvalidInput

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class UnsafeURL(InvalidInput):
    """The URL may not be fetched: bad scheme, no host, or an address that is not public."""

    code = "unsafe_url"

    def __init__(self, message: str, *, field_name: str = "url") -> None:
        super().__init__({field_name: [message]})


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for ``host`` (IPv4 and IPv6)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeURL(f'The host "{host}" could not be resolved ({exc}).') from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


_resolver: Resolver = system_resolver


@contextlib.contextmanager
def use_resolver(resolver: Resolver) -> Iterator[None]:
    """Resolve names with ``resolver`` inside the block (tests: names without real DNS)."""
    global _resolver
    previous, _resolver = _resolver, resolver
    try:
        yield
    finally:
        _resolver = previous


def address_refusal(address: Address) -> str | None:
    """Why ``address`` must not be reached (a short class name), or None when it is public."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            reason = address_refusal(embedded)
            return f"{reason} (inside an IPv6 address)" if reason else None
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("shared (CGNAT)", isinstance(address, ipaddress.IPv4Address) and address in _CGNAT),
        ("unique-local", isinstance(address, ipaddress.IPv6Address) and address in ipaddress.ip_network("fc00::/7")),
        ("reserved", address.is_reserved),
        ("private", address.is_private or not address.is_global),
    )
    return next((name for name, hit in checks if hit), None)


@dataclass(frozen=True)
class Target:
    """A URL that passed the checks, with the addresses its host resolved to."""

    scheme: str
    host: str
    port: int
    path: str
    addresses: list[str]


def url_check(url: str, *, allow_http: bool = False, allow_private: bool = False) -> Target:
    """Parse and check ``url``: https (or http when ``allow_http``), a host, and every resolved
    address public unless ``allow_private``. Raises UnsafeURL naming what is wrong."""
    if not isinstance(url, str) or not url.strip():
        raise UnsafeURL("A URL is required.")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise UnsafeURL("This is not a valid URL.") from None
    allowed = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in allowed:
        raise UnsafeURL(f"The URL must start with {' or '.join(s + '://' for s in allowed)}.")
    if not parts.hostname:
        raise UnsafeURL("The URL has no host.")
    if parts.username or parts.password:
        raise UnsafeURL("The URL must not contain a user name or password.")
    host = parts.hostname
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = [host] if ipaddress.ip_address(host) else []
    except ValueError:
        addresses = _resolver(host, port)
    if not addresses:
        raise UnsafeURL(f'The host "{host}" has no address.')
    if not allow_private:
        for text in addresses:
            reason = address_refusal(ipaddress.ip_address(text.split("%")[0]))
            if reason:
                raise UnsafeURL(
                    f'The host "{host}" resolves to {text}, a {reason} address: only public addresses are allowed.'
                )
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(scheme=parts.scheme, host=host, port=port, path=path, addresses=addresses)


@dataclass
class Response:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    duration_ms: int = 0


def _connection(target: Target, address: str, timeout: float) -> http.client.HTTPConnection:
    conn: http.client.HTTPConnection
    if target.scheme == "https":
        conn = http.client.HTTPSConnection(
            target.host, target.port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        conn = http.client.HTTPConnection(target.host, target.port, timeout=timeout)

    def connect_to_checked(addr: tuple[str, int], timeout: float | None = None, source: object = None) -> socket.socket:
        return socket.create_connection((address, target.port), timeout)

    # The TLS handshake (SNI, certificate check) and the Host header use the URL's host; only
    # the TCP connection goes to the address that was checked.
    conn._create_connection = connect_to_checked  # type: ignore[attr-defined]
    return conn


def _cut(conn: http.client.HTTPConnection, expired: threading.Event) -> None:
    """At the deadline: end the connection under the thread still reading it."""
    expired.set()
    with contextlib.suppress(OSError, AttributeError):
        conn.sock.shutdown(socket.SHUT_RDWR)


def fetch(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10,
    max_bytes: int = 64 * 1024,
    allow_http: bool = False,
    allow_private: bool = False,
) -> Response:
    """One request to ``url`` after ``url_check``; no redirects followed, at most ``max_bytes`` of
    the body read. ``timeout`` bounds the whole request, from connecting to the last byte read:
    a server dripping its answer cannot hold the caller longer. Raises UnsafeURL, or OSError /
    http.client.HTTPException on network failure (``TimeoutError`` when the server is too slow)."""
    target = url_check(url, allow_http=allow_http, allow_private=allow_private)
    started = time.monotonic()
    deadline = started + timeout
    last_error: OSError | None = None
    for address in target.addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        conn = _connection(target, address, remaining)
        # A socket timeout bounds each read, not their sum: the timer ends the request at the deadline.
        expired = threading.Event()
        timer = threading.Timer(remaining, _cut, args=(conn, expired))
        timer.daemon = True
        timer.start()
        try:
            conn.request(method, target.path, body=body, headers=headers or {})
            reply = conn.getresponse()
            data = reply.read(max_bytes)
        except (ConnectionRefusedError, socket.gaierror) as exc:
            if expired.is_set():
                raise TimeoutError(f"No complete answer within {timeout} s.") from None
            last_error = exc  # try the host's next address
            continue
        except (OSError, http.client.HTTPException):
            if expired.is_set():
                raise TimeoutError(f"No complete answer within {timeout} s.") from None
            raise
        finally:
            timer.cancel()
            conn.close()
        if expired.is_set():
            raise TimeoutError(f"No complete answer within {timeout} s.")
        return Response(
            status=reply.status,
            headers={key.lower(): value for key, value in reply.getheaders()},
            body=data,
            duration_ms=int((time.monotonic() - started) * 1000),
        )
    if last_error is None:
        raise TimeoutError(f"No complete answer within {timeout} s.")
    raise last_error

"""SSRF checks: every address class refused, names checked through a resolver stub, the checked
address is the one connected to, and redirects are not followed."""

from __future__ import annotations

import time

import pytest

from agent.tests.local_http import LocalServer, Reply
from chatproject import ssrf


def stub(answers: dict[str, list[str]]) -> ssrf.Resolver:
    def resolve(host: str, port: int) -> list[str]:
        return answers[host]

    return resolve


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("fe80::1", "link-local"),
        ("100.64.0.1", "shared (CGNAT)"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("fc00::1", "unique-local"),
        ("fd12:3456::1", "unique-local"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("::ffff:127.0.0.1", "loopback (inside an IPv6 address)"),
        ("::ffff:169.254.169.254", "link-local (inside an IPv6 address)"),
        ("2002:a00:1::", "private (inside an IPv6 address)"),  # 6to4 of 10.0.0.1
        ("64:ff9b::a9fe:a9fe", "link-local (inside an IPv6 address)"),  # NAT64 of 169.254.169.254
        ("240.0.0.1", "reserved"),
        ("192.0.2.10", "private"),  # documentation range: never a real endpoint
    ],
)
def test_each_non_public_address_class_is_refused_by_name_and_by_literal(address, reason):
    assert ssrf.address_refusal(ssrf.ipaddress.ip_address(address)) == reason
    with ssrf.use_resolver(stub({"hook.example": [address]})), pytest.raises(ssrf.UnsafeURL) as error:
        ssrf.url_check("https://hook.example/path")
    assert f"a {reason} address" in error.value.errors["url"][0]
    literal = f"[{address}]" if ":" in address else address
    with pytest.raises(ssrf.UnsafeURL):
        ssrf.url_check(f"https://{literal}/path")


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "8.8.8.8"])
def test_public_addresses_pass(address):
    assert ssrf.address_refusal(ssrf.ipaddress.ip_address(address)) is None
    with ssrf.use_resolver(stub({"hook.example": [address]})):
        assert ssrf.url_check("https://hook.example:8443/a?b=1").addresses == [address]


def test_one_private_address_among_public_ones_refuses_the_name():
    with ssrf.use_resolver(stub({"hook.example": ["93.184.215.14", "10.0.0.7"]})), pytest.raises(ssrf.UnsafeURL):
        ssrf.url_check("https://hook.example/")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://93.184.215.14/", "must start with https://"),
        ("ftp://93.184.215.14/", "must start with https://"),
        ("https:///nohost", "no host"),
        ("https://user:pw@93.184.215.14/", "user name or password"),
        ("https://93.184.215.14:99999/", "not a valid URL"),
        ("", "required"),
    ],
)
def test_bad_urls_are_refused_with_a_reason(url, message):
    with pytest.raises(ssrf.UnsafeURL) as error:
        ssrf.url_check(url)
    assert message in error.value.errors["url"][0]


def test_http_only_when_allowed():
    assert ssrf.url_check("http://93.184.215.14/", allow_http=True).port == 80


def test_fetch_connects_to_the_checked_address_not_a_second_lookup():
    """The stub answers a loopback address for a name; fetch connects there (allowed here) with
    the name as Host: a rebinding resolver gets no second chance to change the address."""
    calls: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["127.0.0.1"]

    with LocalServer(lambda request: Reply.json({"host": request.headers["host"]})) as server:
        port = server.url.rsplit(":", 1)[1]
        with ssrf.use_resolver(resolve):
            response = ssrf.fetch("GET", f"http://rebind.example:{port}/x", allow_http=True, allow_private=True)
            with pytest.raises(ssrf.UnsafeURL):
                ssrf.fetch("GET", f"http://rebind.example:{port}/x", allow_http=True)
    assert response.status == 200 and b"rebind.example" in response.body
    assert calls == ["rebind.example", "rebind.example"]
    assert len(server.requests) == 1


def test_fetch_does_not_follow_redirects():
    with LocalServer(lambda request: Reply(status=302, headers={"Location": "http://169.254.169.254/"})) as server:
        response = ssrf.fetch("GET", server.url + "/", allow_http=True, allow_private=True)
    assert response.status == 302 and len(server.requests) == 1


def dripping(request):
    """An answer that comes a byte every 0.2 s: each read is quick, the whole takes 2 s."""

    def drip():
        for _ in range(10):
            time.sleep(0.2)
            yield b"x"

    return Reply(status=200, body=drip())


def test_the_timeout_bounds_the_whole_request_not_each_read():
    with LocalServer(dripping) as server:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            ssrf.fetch("POST", server.url + "/", timeout=0.7, allow_http=True, allow_private=True)
        assert time.monotonic() - started < 1.5

import socket

import pytest


@pytest.fixture
def no_outside_network(monkeypatch):
    """Fails the test if anything connects beyond 127.0.0.1 (the model, DSPy, LiteLLM, tools)."""
    attempts: list[object] = []
    connect = socket.socket.connect

    def guarded(sock, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and host not in ("127.0.0.1", "::1", "localhost") and sock.family != socket.AF_UNIX:
            attempts.append(address)
            raise OSError(f"test forbids connecting to {address!r}")
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    yield attempts
    assert attempts == [], f"connections beyond 127.0.0.1: {attempts}"

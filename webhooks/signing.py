"""Standard Webhooks signatures (standardwebhooks.com): secrets, signing and verifying.

A signature is ``v1,`` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")) where the key is
the base64-decoded part of the ``whsec_`` secret; several signatures are space-separated.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"


class SignatureError(Exception):
    """The request is not signed by any of the expected secrets (or not at all)."""


def secret_new() -> str:
    """A new secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(*, secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of ``body`` sent as message ``msg_id`` at ``timestamp``."""
    digest = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(*, secrets_: list[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header: one signature per secret, space-separated."""
    return " ".join(sign(secret=s, msg_id=msg_id, timestamp=timestamp, body=body) for s in secrets_)


def verify(
    *, secret: str, msg_id: str, timestamp: str, signatures: str, body: bytes, now: float, tolerance: int
) -> None:
    """Raise SignatureError unless ``signatures`` holds a valid v1 signature made within
    ``tolerance`` seconds of ``now``."""
    if not (msg_id and timestamp and signatures):
        raise SignatureError("Missing webhook-id, webhook-timestamp or webhook-signature header.")
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise SignatureError("The webhook-timestamp header is not a Unix time in seconds.") from None
    if abs(now - sent_at) > tolerance:
        raise SignatureError(f"The webhook-timestamp is more than {tolerance} s away from now.")
    expected = sign(secret=secret, msg_id=msg_id, timestamp=sent_at, body=body)
    if not any(hmac.compare_digest(expected.encode(), given.encode()) for given in signatures.split()):
        raise SignatureError("No valid signature.")

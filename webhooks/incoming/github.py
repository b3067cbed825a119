"""The GitHub handler: ``X-Hub-Signature-256`` over the body; issues, pull requests and pushes
become a short message (no agent reply: they are notifications); other events are acknowledged
and ignored. The endpoint's secret is the one to paste into GitHub's webhook settings."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from chatproject.errors import InvalidInput

from ..signing import SignatureError
from . import Incoming, register


def github_signature_valid(*, secret: str, body: bytes, header: str) -> bool:
    """Whether ``header`` (``sha256=<hex>``) is GitHub's HMAC-SHA256 of ``body`` with ``secret``."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), (header or "").strip().encode())


def _item(repo: str, what: str, action: Any, item: dict[str, Any]) -> str:
    title = f"GitHub {repo}: {what} #{item.get('number')} {action}: {item.get('title', '')}"
    return f"{title}\n{item.get('html_url', '')}"


def _summary(event: str, payload: dict[str, Any]) -> str | None:
    repo = (payload.get("repository") or {}).get("full_name", "?")
    if event == "issues":
        return _item(repo, "issue", payload.get("action"), payload.get("issue") or {})
    if event == "pull_request":
        return _item(repo, "pull request", payload.get("action"), payload.get("pull_request") or {})
    if event == "push":
        commits = payload.get("commits") or []
        pusher = (payload.get("pusher") or {}).get("name", "?")
        lines = [f"GitHub {repo}: {pusher} pushed {len(commits)} commit(s) to {payload.get('ref', '?')}"]
        lines += [f"- {str(c.get('message', '')).splitlines()[0] if c.get('message') else ''}" for c in commits[:10]]
        return "\n".join(lines)
    return None


@register("github")
def receive(*, secret: str, headers: dict[str, str], body: bytes, now: float) -> Incoming | None:
    if not github_signature_valid(secret=secret, body=body, header=headers.get("x-hub-signature-256", "")):
        raise SignatureError("Missing or invalid X-Hub-Signature-256.")
    delivery_id = headers.get("x-github-delivery", "")
    if not delivery_id:
        raise InvalidInput.field("X-GitHub-Delivery", "This header is required.")
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        raise InvalidInput.field("body", "Must be JSON (set the content type to application/json).") from None
    event = headers.get("x-github-event", "")
    content = _summary(event, payload) if isinstance(payload, dict) else None
    if content is None:
        return None
    return Incoming(
        content=content,
        delivery_id=f"github:{delivery_id}",
        reply=False,
        metadata={"github": {"event": event, "delivery": delivery_id}},
    )

"""Outbound HTTP for tools: short timeouts, a size cap, JSON, and errors as values, not crashes."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

MAX_RESPONSE_BYTES = 2 * 1024 * 1024
USER_AGENT = "chatproject-agent/1.0"


class FetchError(Exception):
    pass


def fetch(url: str, *, params: dict[str, Any] | None = None, timeout: float = 5.0) -> bytes:
    if params:
        url = f"{url}{'&' if '?' in url else '?'}{urllib.parse.urlencode(params)}"
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": "application/json, */*"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body: bytes = response.read(MAX_RESPONSE_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise FetchError(f"HTTP {exc.code}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FetchError(f"unreachable ({reason})") from None
    if len(body) > MAX_RESPONSE_BYTES:
        raise FetchError("response too large")
    return body


def fetch_json(url: str, **kwargs: Any) -> Any:
    body = fetch(url, **kwargs)
    try:
        return json.loads(body)
    except ValueError:
        raise FetchError("not JSON") from None

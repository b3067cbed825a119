"""Failed log-ins: at most LOGIN_FAILURE_LIMIT per username and per client address.

Every password check goes through ``django.contrib.auth.authenticate()``, which sends
``user_login_failed`` when it fails: one receiver counts the failures of the token API, the
log-in page, the admin and the browsable API's log-in alike. Each of those entry points calls
``login_attempt_check`` before checking a password. Counted in the shared cache (Redis when
configured), so the limit holds across processes.
"""

from __future__ import annotations

import hashlib
import unicodedata
from typing import Any

from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from .errors import LoginThrottled
from .ratelimit import window_count, window_hit


def client_address(request: HttpRequest | None) -> str | None:
    """The address the request came from: ``REMOTE_ADDR``.

    Behind a reverse proxy that is the proxy's address (every client shares one counter) unless
    ``manage.py serve`` runs with PROXY_HEADERS, which makes Daphne take it from X-Forwarded-For.
    """
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


def _keys(*, username: Any, address: str | None) -> list[str]:
    keys = []
    if isinstance(username, str) and username.strip():
        # As the log-in form normalizes it (NFKC), and case-folded: "Alice" and "alice" share a count.
        name = unicodedata.normalize("NFKC", username.strip()).casefold()
        keys.append("login-failures:user:" + hashlib.sha256(name.encode()).hexdigest()[:32])
    if address:
        keys.append("login-failures:addr:" + address)
    return keys


def login_attempt_check(*, username: Any, address: str | None) -> None:
    """Raise LoginThrottled while this username or this address is locked out.

    The current and the previous window are added up, so no ``window`` seconds ever see more than
    the limit of failures, also across a window's edge. Successful log-ins do not count.
    """
    limit, window = settings.LOGIN_FAILURE_LIMIT
    for key in _keys(username=username, address=address):
        count = window_count(key, window=window)
        if count.current + count.previous >= limit:
            # Past the current window only its own failures remain, and they may still be too many.
            raise LoginThrottled(retry_after=count.seconds_left + (window if count.current >= limit else 0))


def login_failure_record(*, username: Any, address: str | None) -> None:
    """Count one failed log-in against the username and the address."""
    _, window = settings.LOGIN_FAILURE_LIMIT
    for key in _keys(username=username, address=address):
        window_hit(key, window=window)


@receiver(user_login_failed, dispatch_uid="chatproject.logins.count_failed_login")
def _count_failed_login(sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any):
    from django.contrib.auth import get_user_model

    username = credentials.get(get_user_model().USERNAME_FIELD, credentials.get("username"))
    login_failure_record(username=username, address=client_address(request))

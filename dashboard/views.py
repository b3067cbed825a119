"""The staff dashboard page (charts drawn by static/js/dashboard.js from GET /api/dashboard/) and
the Prometheus endpoint, GET /metrics."""

from __future__ import annotations

import hashlib
import hmac

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from .selectors import WINDOWS
from .services import MAX_SECONDS, MIN_SECONDS

# How often the page asks the API again.
REFRESH_SECONDS = 5


@login_required
def dashboard_page(request: HttpRequest) -> HttpResponse:
    # Not staff: the page does not exist for them.
    if not request.user.is_staff:
        raise Http404("Page not found.")
    config = {"windows": list(WINDOWS), "refreshSeconds": REFRESH_SECONDS, "profileSeconds": [MIN_SECONDS, MAX_SECONDS]}
    return render(request, "dashboard/page.html", {"config": config})


def _bearer(request: HttpRequest) -> str | None:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else None


def _same_secret(given: str, expected: str) -> bool:
    # Digests first: the comparison then takes as long whatever the lengths (compare_digest
    # returns at once when they differ).
    return hmac.compare_digest(hashlib.sha256(given.encode()).digest(), hashlib.sha256(expected.encode()).digest())


def metrics_allowed(request: HttpRequest) -> bool:
    """A scraper with ``Authorization: Bearer <METRICS_TOKEN>`` (when set), or a staff user by
    session or API token (``Authorization: Token <key>``). A bearer token decides alone."""
    given = _bearer(request)
    if given is not None:
        return bool(settings.METRICS_TOKEN) and _same_secret(given, settings.METRICS_TOKEN)
    if request.user.is_authenticated:
        return bool(request.user.is_staff)
    try:
        found = TokenAuthentication().authenticate(request)  # type: ignore[arg-type]
    except AuthenticationFailed:
        return False
    return found is not None and bool(found[0].is_staff)


@require_safe
@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus' text format (see README "Prometheus"). Anyone else gets 403 and nothing else,
    whatever is wrong (no credentials, not staff, a wrong token)."""
    if not metrics_allowed(request):
        return HttpResponse("Forbidden.\n", status=403, content_type="text/plain; charset=utf-8")
    from chatproject.prometheus import scrape

    body, content_type = scrape()
    return HttpResponse(body, content_type=content_type)

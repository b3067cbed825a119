"""The staff dashboard page: charts drawn by static/js/dashboard.js from GET /api/dashboard/."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

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

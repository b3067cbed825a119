"""The webhooks page: the user's endpoints, managed in the page through the REST API."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from threads.selectors import thread_list

from .events import EVENT_TYPES


@login_required
def webhooks_page(request: HttpRequest) -> HttpResponse:
    threads = [{"id": str(t.pk), "title": t.title or "Untitled"} for t in thread_list(user=request.user)[:200]]
    config = {"eventTypes": [{"type": k, "description": v} for k, v in EVENT_TYPES.items()], "threads": threads}
    return render(request, "webhooks/page.html", {"config": config})

"""Server-rendered pages for the user's threads: list, search, create, rename, archive, delete.

Plain HTML forms (POST, redirect): they work without JavaScript. The chat page is messaging's.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from chatproject import catalog
from chatproject.errors import InvalidInput, NotFound

from .models import ChatThread
from .selectors import preferences_get, preferences_model_name, thread_get, thread_list
from .services import preferences_update, thread_create, thread_delete, thread_update

THREADS_PER_PAGE = 30


@login_required
def thread_list_page(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status") or ChatThread.Status.ACTIVE
    if status not in (ChatThread.Status.ACTIVE, ChatThread.Status.ARCHIVED):
        status = ChatThread.Status.ACTIVE
    search = request.GET.get("search", "").strip()
    page = Paginator(thread_list(user=request.user, status=status, search=search), THREADS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    return render(request, "threads/list.html", {"page": page, "status": status, "search": search})


@login_required
@require_POST
def thread_create_page(request: HttpRequest) -> HttpResponse:
    try:
        thread = thread_create(owner=request.user, title=request.POST.get("title", ""))
    except InvalidInput as exc:
        messages.error(request, exc.message)
        return redirect("home")
    return redirect("chat-page", thread_id=thread.pk)


@login_required
@require_POST
def thread_action_page(request: HttpRequest, thread_id: str, action: str) -> HttpResponse:
    """Rename, archive, unarchive, delete, or choose its model or instructions; unknown threads are 404
    like everywhere else."""
    try:
        thread = thread_get(user=request.user, thread_id=thread_id)
    except NotFound as exc:
        raise Http404(exc.message) from None
    try:
        if action == "rename":
            thread_update(thread=thread, title=request.POST.get("title", ""))
        elif action == "archive":
            thread_update(thread=thread, status=ChatThread.Status.ARCHIVED)
        elif action == "unarchive":
            thread_update(thread=thread, status=ChatThread.Status.ACTIVE)
        elif action == "model":
            thread_update(thread=thread, model=request.POST.get("model", ""))
        elif action == "instructions":
            thread_update(thread=thread, instructions=request.POST.get("instructions", ""))
        elif action == "delete":
            thread_delete(thread=thread)
            messages.success(request, f"Deleted “{thread.title or 'Untitled'}”.")
    except InvalidInput as exc:
        messages.error(request, exc.message)
    next_url = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        return redirect(next_url)
    return redirect("home")


@login_required
def preferences_page(request: HttpRequest) -> HttpResponse:
    """Your custom instructions (sent to the agent with every request) and default model."""
    preferences = preferences_get(user_id=request.user.pk)
    if request.method == "POST":
        try:
            preferences = preferences_update(
                user=request.user,
                instructions=request.POST.get("instructions", ""),
                model=request.POST.get("model", ""),
            )
        except InvalidInput as exc:
            messages.error(request, exc.message)
            preferences.instructions = request.POST.get("instructions", "")
        else:
            messages.success(request, "Settings saved.")
            return redirect("preferences-page")
    context = {
        "preferences": preferences,
        "models": list(catalog.offered()),
        "current_model": preferences_model_name(preferences=preferences),
        "max_chars": settings.AGENT_INSTRUCTIONS_MAX_CHARS,
    }
    return render(request, "threads/settings.html", context)

"""The chat page (the thread's active branch rendered on the server; live updates over the
WebSocket) and the tree page (every branch, drawn with D3)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import render

from chatproject import catalog
from chatproject.errors import NotFound
from threads.models import ChatThread
from threads.selectors import parse_uuid, thread_get

from .selectors import message_path_pages, message_tree_info

# The page shows the latest messages of the active branch and loads older ones, this many at a
# time, when scrolled to the top; "show all" renders the whole branch.
RECENT_MESSAGES = 50


def _thread_or_404(request: HttpRequest, thread_id: str) -> ChatThread:
    try:
        return thread_get(user=request.user, thread_id=thread_id)
    except NotFound as exc:
        raise Http404(exc.message) from None


@login_required
def chat_page(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = _thread_or_404(request, thread_id)
    path = message_path_pages(thread=thread)
    start = 0 if request.GET.get("all") == "1" else max(0, len(path) - RECENT_MESSAGES)
    # ?at=<message id> (from the tree page): start early enough to show that message.
    at = parse_uuid(request.GET.get("at") or "")
    if at in path.ids:
        start = min(start, path.ids.index(at))
    messages = list(message_tree_info(messages=path[start:]))
    config = {
        "threadId": str(thread.pk),
        "userId": str(request.user.pk),
        "lastMessageId": str(messages[-1].pk) if messages else None,
        "maxMessageChars": settings.MAX_MESSAGE_CHARS,
        "maxUploadBytes": settings.MAX_UPLOAD_BYTES,
        "allowedUploadTypes": settings.ALLOWED_UPLOAD_TYPES,
        "pageSize": RECENT_MESSAGES,
        "at": str(at) if at in path.ids else None,
        "csrfToken": get_token(request),
    }
    return render(
        request,
        "messaging/chat.html",
        {
            "thread": thread,
            "chat_messages": messages,
            "hidden": start,
            "config": config,
            "models": list(catalog.offered()),
            "thread_model": thread.model or catalog.default_spec().name,
            "max_instruction_chars": settings.AGENT_INSTRUCTIONS_MAX_CHARS,
        },
    )


@login_required
def tree_page(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = _thread_or_404(request, thread_id)
    config = {"threadId": str(thread.pk), "csrfToken": get_token(request)}
    return render(request, "messaging/tree.html", {"thread": thread, "config": config})

"""The chat page: the thread's history rendered on the server; live updates over the WebSocket."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from chatproject import catalog
from chatproject.errors import NotFound
from threads.selectors import thread_get

from .selectors import message_list

# The page shows the latest messages; "show all" renders the whole thread.
RECENT_MESSAGES = 200


@login_required
def chat_page(request: HttpRequest, thread_id: str) -> HttpResponse:
    try:
        thread = thread_get(user=request.user, thread_id=thread_id)
    except NotFound as exc:
        raise Http404(exc.message) from None
    messages = message_list(thread=thread)
    total = messages.count()
    show_all = request.GET.get("all") == "1"
    if not show_all and total > RECENT_MESSAGES:
        messages = messages[total - RECENT_MESSAGES :]
    messages = list(messages)
    config = {
        "threadId": str(thread.pk),
        "userId": str(request.user.pk),
        "lastMessageId": str(messages[-1].pk) if messages else None,
        "maxMessageChars": settings.MAX_MESSAGE_CHARS,
        "maxUploadBytes": settings.MAX_UPLOAD_BYTES,
        "allowedUploadTypes": settings.ALLOWED_UPLOAD_TYPES,
    }
    return render(
        request,
        "messaging/chat.html",
        {
            "thread": thread,
            "chat_messages": messages,
            "hidden": total - len(messages),
            "config": config,
            "models": list(catalog.offered()),
            "thread_model": thread.model or catalog.default_spec().name,
            "max_instruction_chars": settings.AGENT_INSTRUCTIONS_MAX_CHARS,
        },
    )

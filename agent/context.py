"""What the agent gets to see: recent turns within a budget, memory hits, the thread's files.

Everything is read here, before the agent runs, because DSPy runs the program and its tools on
other threads (see ``agent.tools``). Also keeps the thread's title and summary current.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from chatproject.catalog import ModelSpec, resolve
from messaging.models import ChatMessage
from messaging.selectors import attachment_list_on_path, message_list_in_thread, message_path_pages
from threads.models import ChatThread
from threads.selectors import preferences_get
from threads.services import thread_update

from . import text as textlib
from .memory import memory_add, memory_searcher
from .tools import AttachmentInfo, ToolContext

TITLE_WORDS = 8
TITLE_CHARS = 60


@dataclass
class AgentContext:
    history: str
    memories: str
    message: str
    tools: ToolContext
    instructions: str = ""
    model: ModelSpec | None = None
    # The thread's model when it is no longer offered (the reply used the default instead).
    unavailable_model: str = ""


def describe_message(message: ChatMessage) -> str:
    """A message as the model reads it: file messages name their attachments."""
    if message.type != ChatMessage.Type.FILE:
        return message.content
    files = ", ".join(f"{a.filename} ({a.file_type}, {a.size} bytes)" for a in message.attachments.all())
    return f"[Attached file: {files}] {message.content}".strip()


# The most turns of the path the history holds (fewer when AGENT_HISTORY_CHARS runs out first).
HISTORY_TURNS = 50


def _history(path: list[ChatMessage]) -> str:
    """The turns on the path from the root to this message (never another branch's), newest kept
    first when the budget runs out, oldest first."""
    earlier = path[:-1][-HISTORY_TURNS:]
    lines: list[str] = []
    used = 0
    for turn in reversed(earlier):
        speaker = {"user": "User", "ai": "Assistant"}.get(turn.role, "System")
        line = f"{speaker}: {describe_message(turn)}"
        if used + len(line) > settings.AGENT_HISTORY_CHARS:
            break
        lines.append(line)
        used += len(line)
    return "\n".join(reversed(lines))


def gather(message: ChatMessage) -> AgentContext:
    """What the agent may see to answer ``message``: of its own thread, only the branch from the
    root down to it (turns, files, memory hits), never a branch the user left."""
    memory_add(message)
    # The path's ids, and only its last turns loaded: a 5,000-message thread's whole path as
    # objects cost 170 ms of CPU a reply (bench/run.py tree).
    path = message_path_pages(thread=message.thread, leaf=message)
    recent = path[-(HISTORY_TURNS + 1) :]
    hits: list[dict[str, Any]] = []
    search: Callable[[str, int], list[dict[str, Any]]] | None = None
    # A message with no sender (its user gone) has no memory to search.
    if message.sender_id is not None:
        search = memory_searcher(
            user_id=message.sender_id,
            exclude_message_id=str(message.pk),
            thread_id=str(message.thread_id),
            path_ids=[str(pk) for pk in path.ids],
        )
        found = search(message.content, settings.AGENT_MEMORY_HITS)
        hits = [h for h in found if h["thread_id"] != str(message.thread_id)]
    memories = "\n".join(f"- ({h['date']}, “{h['thread_title']}”) {h['snippet']}" for h in hits)
    attachments = [
        AttachmentInfo(filename=a.filename, file_type=a.file_type, size=a.size, path=a.file.path)
        for a in attachment_list_on_path(thread_id=message.thread_id, path_ids=path.ids)
    ]
    thread = message.thread
    chosen = thread.model
    model, fell_back = resolve(chosen)
    if fell_back:
        # The model was removed from AGENT_MODELS: the thread moves to the default for good.
        thread_update(thread=thread, model=model.name, chosen_by_owner=False)
    return AgentContext(
        instructions=instructions_for(thread),
        model=model,
        unavailable_model=chosen if fell_back else "",
        history=_history(recent),
        memories=memories or "(none)",
        message=describe_message(message),
        tools=ToolContext(
            user_id=message.sender_id,
            thread_id=str(message.thread_id),
            message_id=str(message.pk),
            attachments=attachments,
            memory_search=search,
        ),
    )


def instructions_for(thread: ChatThread) -> str:
    """The thread's own custom instructions, else its owner's (never anyone else's)."""
    return thread.instructions or preferences_get(user_id=thread.owner_id).instructions


def title_for(text: str) -> str:
    words = text.split()
    title = " ".join(words[:TITLE_WORDS])
    if len(title) > TITLE_CHARS:
        title = title[: TITLE_CHARS - 1].rsplit(" ", 1)[0]
    return (title + ("…" if len(words) > TITLE_WORDS or len(title) < len(" ".join(words)) else "")).strip()


def update_thread_after_reply(message: ChatMessage) -> None:
    """Title an untitled thread after its first exchange; keep the summary current."""
    thread = ChatThread.objects.get(pk=message.thread_id)
    user_turns = list(
        message_list_in_thread(thread_id=thread.pk)
        .filter(role=ChatMessage.Role.USER)
        .order_by("-created_at")
        .values_list("content", flat=True)[:20]
    )
    # Each turn a paragraph of its own: chat messages often end without a full stop.
    fields: dict[str, Any] = {"summary": textlib.summarize("\n\n".join(reversed(user_turns)), max_sentences=2)[:1000]}
    if not thread.title.strip() and message.content.strip():
        fields["title"] = title_for(message.content)
    thread_update(thread=thread, **fields)

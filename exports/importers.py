"""Reading import files: our own JSON export, ChatGPT's ``conversations.json`` and Open WebUI's
chat export, alone or in a ZIP. Recognised by content, parsed one conversation at a time (ijson),
so a large file never has to be in memory as Python objects at once.

``ImportFile.open`` checks the whole file first (size, ZIP bomb, JSON well-formed, a known
format) and counts its conversations and messages; nothing is stored for a file it refuses.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import IO, Any

import ijson
from django.conf import settings
from django.utils.dateparse import parse_datetime

from chatproject.errors import InvalidInput, PayloadTooLarge
from messaging.services import AttachmentImport, MessageImport

# Deeper than anything these formats produce; a file nesting deeper is refused unread.
MAX_NESTING = 100
ZIP_MAX_MEMBERS = 10_000
# More than this many bytes out for each byte in: what a ZIP bomb looks like (text compresses ~10x).
ZIP_MAX_RATIO = 200
KINDS = {"chat-export": "our JSON export", "chatgpt": "ChatGPT export", "open-webui": "Open WebUI export"}


def _refuse(message: str) -> InvalidInput:
    return InvalidInput.field("file", message)


@dataclass
class Conversation:
    """One conversation, ready for ``messaging.services.message_import_bulk``."""

    title: str
    messages: list[MessageImport]
    summary: str = ""
    status: str = "active"
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    active_leaf_key: str | None = None
    model: str = ""
    instructions: str = ""


@dataclass
class Entry:
    """A conversation of the file, or why it cannot be imported."""

    index: int
    title: str
    conversation: Conversation | None = None
    error: str = ""


# --- helpers -------------------------------------------------------------------------------------


def _epoch(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _iso(value)
    seconds = value / 1000 if value > 1e11 else value  # milliseconds
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _iso(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = parse_datetime(value)
    except ValueError:
        return None
    if parsed is not None and parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _parents_first(messages: list[MessageImport]) -> list[MessageImport]:
    """Order messages so each parent comes before its children (siblings by time, then as given);
    a parent that is missing or part of a loop leaves its child a root."""
    keys = {m.key for m in messages}
    children: dict[str | None, list[MessageImport]] = {}
    for message in messages:
        if message.parent_key not in keys or message.parent_key == message.key:
            message.parent_key = None
        children.setdefault(message.parent_key, []).append(message)
    ordered: list[MessageImport] = []
    placed: set[str] = set()
    stack = list(reversed(children.get(None, [])))
    while stack:
        message = stack.pop()
        if message.key in placed:
            continue
        placed.add(message.key)
        ordered.append(message)
        stack.extend(reversed(children.get(message.key, [])))
    for message in messages:  # in a loop: no root leads to them
        if message.key not in placed:
            message.parent_key = None
            placed.add(message.key)
            ordered.append(message)
            stack = list(reversed(children.get(message.key, [])))
            while stack:
                child = stack.pop()
                if child.key not in placed:
                    placed.add(child.key)
                    ordered.append(child)
                    stack.extend(reversed(children.get(child.key, [])))
    return ordered


def _fill_times(messages: list[MessageImport], fallback: datetime | None) -> None:
    """A message without a time gets its parent's plus 1 ms (messages are parents first)."""
    by_key = {m.key: m for m in messages}
    for message in messages:
        if message.created_at is None:
            parent = by_key.get(message.parent_key) if message.parent_key else None
            base = parent.created_at if parent and parent.created_at else fallback
            message.created_at = base + timedelta(milliseconds=1) if base else None


# --- our own JSON export ---------------------------------------------------------------------------


def _our_attachment(raw: Any, archive: zipfile.ZipFile | None, budget: _Budget) -> AttachmentImport | str:
    if not isinstance(raw, dict):
        raise ValueError("an attachment is not an object")
    filename = _text(raw.get("filename")) or "attachment"
    if isinstance(raw.get("data"), str):
        try:
            data = base64.b64decode(raw["data"], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f'attachment "{filename}" is not valid base64') from None
    elif isinstance(raw.get("path"), str) and archive is not None:
        try:
            data = budget.read(archive, raw["path"])
        except KeyError:
            return filename
    else:
        return filename
    if isinstance(raw.get("sha256"), str) and hashlib.sha256(data).hexdigest() != raw["sha256"]:
        raise ValueError(f'attachment "{filename}" does not match its sha256')
    return AttachmentImport(filename=filename, data=data, content_type=_text(raw.get("file_type")))


def _ours(raw: Any, archive: zipfile.ZipFile | None, budget: _Budget) -> Conversation:
    if not isinstance(raw, dict) or not isinstance(raw.get("messages"), list):
        raise ValueError("a thread must be an object with a list of messages")
    messages = []
    for item in raw["messages"]:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise ValueError("a message must be an object with an id")
        attachments, missing = [], []
        for attachment in item.get("attachments") or []:
            found = _our_attachment(attachment, archive, budget)
            (missing.append(found) if isinstance(found, str) else attachments.append(found))
        metadata = item.get("metadata") if isinstance(item.get("metadata"), dict) else {}
        if missing:
            metadata = {**metadata, "import_missing_attachments": missing}
        messages.append(
            MessageImport(
                key=item["id"],
                parent_key=item.get("parent") if isinstance(item.get("parent"), str) else None,
                role=_text(item.get("role")),
                type=_text(item.get("type")) or "text",
                content=_text(item.get("content")),
                metadata=metadata,
                created_at=_iso(item.get("created_at")),
                attachments=attachments,
            )
        )
    messages = _parents_first(messages)
    created_at = _iso(raw.get("created_at"))
    _fill_times(messages, created_at)
    return Conversation(
        title=_text(raw.get("title")),
        summary=_text(raw.get("summary")),
        status=_text(raw.get("status")) or "active",
        metadata=raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {},
        created_at=created_at,
        updated_at=_iso(raw.get("updated_at")),
        active_leaf_key=raw.get("active_leaf") if isinstance(raw.get("active_leaf"), str) else None,
        model=_text(raw.get("model")),
        instructions=_text(raw.get("instructions")),
        messages=messages,
    )


# --- ChatGPT ----------------------------------------------------------------------------------------

_CHATGPT_ROLES = {"user": "user", "assistant": "ai", "system": "system", "tool": "ai"}


def _chatgpt_content(content: Any) -> tuple[str, dict[str, Any]]:
    """The message's text and what the metadata should say about its content."""
    if not isinstance(content, dict):
        return "", {}
    kind = _text(content.get("content_type"))
    note: dict[str, Any] = {"content_type": kind} if kind and kind != "text" else {}
    parts = content.get("parts") if isinstance(content.get("parts"), list) else []
    if kind == "code":
        language = _text(content.get("language"))
        language = "" if language == "unknown" else language
        return f"```{language}\n{_text(content.get('text'))}\n```", note
    texts: list[str] = []
    omitted: list[str] = []
    for part in parts:
        if isinstance(part, str):
            texts.append(part)
        else:
            kind_of_part = (part.get("content_type") if isinstance(part, dict) else None) or "unknown"
            omitted.append(kind_of_part)
            texts.append(f"[{kind_of_part} not included]")
    if omitted:
        note["omitted_parts"] = omitted
    if not parts and isinstance(content.get("text"), str):
        texts = [content["text"]]
    elif not parts:
        texts = [_chatgpt_other_text(content)]
    return "\n".join(t for t in texts if t != "" or len(texts) == 1), note


def _chatgpt_other_text(content: dict[str, Any]) -> str:
    """The text of content with neither parts nor text: a reasoning model's ``thoughts`` (each
    summary and content), its ``reasoning_recap`` ("Thought for 5 seconds"), a browsing result."""
    thoughts = content.get("thoughts")
    if isinstance(thoughts, list):
        blocks = []
        for thought in thoughts:
            if isinstance(thought, dict):
                summary, body = _text(thought.get("summary")), _text(thought.get("content"))
                blocks.append(f"**{summary}**\n\n{body}" if summary and body else summary or body)
        return "\n\n".join(b for b in blocks if b)
    for key in ("result", "content"):
        if isinstance(content.get(key), str):
            return str(content[key])
    return ""


def _chatgpt(raw: Any) -> Conversation:
    if not isinstance(raw, dict) or not isinstance(raw.get("mapping"), dict):
        raise ValueError("a conversation must have a mapping of messages")
    mapping: dict[str, Any] = raw["mapping"]
    created_at = _epoch(raw.get("create_time"))
    kept: dict[str, MessageImport] = {}
    # The kept message each node stands for: itself, or its nearest kept ancestor.
    stands_for: dict[str, str | None] = {}
    roots = [key for key, node in mapping.items() if not isinstance(node, dict) or node.get("parent") not in mapping]
    stack: list[tuple[str, str | None]] = [(key, None) for key in reversed(roots)]
    ordered: list[MessageImport] = []
    while stack:
        key, kept_parent = stack.pop()
        if key in stands_for:
            continue
        node = mapping.get(key)
        node = node if isinstance(node, dict) else {}
        message = node.get("message") if isinstance(node.get("message"), dict) else None
        here = kept_parent
        if message is not None:
            meta = message.get("metadata") if isinstance(message.get("metadata"), dict) else {}
            author = message.get("author") if isinstance(message.get("author"), dict) else {}
            role = _CHATGPT_ROLES.get(_text(author.get("role")))
            text, note = _chatgpt_content(message.get("content"))
            hidden = bool(meta.get("is_visually_hidden_from_conversation")) or (role == "system" and not text.strip())
            if role and not hidden:
                info: dict[str, Any] = {"source": "chatgpt", "id": _text(message.get("id")) or key, **note}
                if author.get("role") == "tool":
                    info["tool"] = _text(author.get("name")) or "tool"
                if isinstance(meta.get("model_slug"), str):
                    info["model"] = meta["model_slug"]
                metadata: dict[str, Any] = {"import": info}
                if message.get("status") == "in_progress":
                    metadata["unfinished"] = True
                imported = MessageImport(
                    key=key,
                    parent_key=kept_parent,
                    role=role,
                    content=text,
                    metadata=metadata,
                    created_at=_epoch(message.get("create_time")),
                )
                kept[key] = imported
                ordered.append(imported)
                here = key
        stands_for[key] = here
        children = node.get("children") if isinstance(node.get("children"), list) else []
        stack.extend((child, here) for child in reversed(children) if isinstance(child, str) and child in mapping)
    _fill_times(ordered, created_at)
    current = raw.get("current_node")
    return Conversation(
        title=_text(raw.get("title")),
        metadata={"import": {"source": "chatgpt", "id": _text(raw.get("conversation_id") or raw.get("id"))}},
        created_at=created_at,
        updated_at=_epoch(raw.get("update_time")),
        status="archived" if raw.get("is_archived") is True else "active",
        active_leaf_key=stands_for.get(current) if isinstance(current, str) else None,
        messages=ordered,
    )


# --- Open WebUI ------------------------------------------------------------------------------------

_WEBUI_ROLES = {"user": "user", "assistant": "ai", "system": "system"}


def _open_webui(raw: Any) -> Conversation:
    chat = raw.get("chat") if isinstance(raw, dict) else None
    if not isinstance(chat, dict):
        raise ValueError("a chat must be an object with a history")
    history = chat.get("history") if isinstance(chat.get("history"), dict) else {}
    found = history.get("messages")
    if isinstance(found, dict):
        items = [(str(k), v) for k, v in found.items()]
    elif isinstance(chat.get("messages"), list):  # older exports: a plain list
        items = [(_text(v.get("id")) if isinstance(v, dict) else "", v) for v in chat["messages"]]
    else:
        raise ValueError("a chat must have messages")
    messages = []
    for key, item in items:
        if not isinstance(item, dict) or not key:
            raise ValueError("a message must be an object with an id")
        role = _WEBUI_ROLES.get(_text(item.get("role")))
        if role is None:
            raise ValueError(f'unknown role "{item.get("role")}"')
        info = {"source": "open-webui", "id": key}
        if isinstance(item.get("model"), str):
            info["model"] = item["model"]
        messages.append(
            MessageImport(
                key=key,
                parent_key=item.get("parentId") if isinstance(item.get("parentId"), str) else None,
                role=role,
                content=_text(item.get("content")),
                metadata={"import": info},
                created_at=_epoch(item.get("timestamp")),
            )
        )
    messages.sort(key=lambda m: m.created_at or datetime.min.replace(tzinfo=UTC))
    messages = _parents_first(messages)
    created_at = _epoch(raw.get("created_at"))
    _fill_times(messages, created_at)
    current = history.get("currentId")
    return Conversation(
        title=_text(raw.get("title")) or _text(chat.get("title")),
        metadata={"import": {"source": "open-webui", "id": _text(raw.get("id"))}},
        created_at=created_at,
        updated_at=_epoch(raw.get("updated_at")),
        status="archived" if raw.get("archived") is True else "active",
        active_leaf_key=current if isinstance(current, str) else None,
        messages=messages,
    )


# --- the file --------------------------------------------------------------------------------------


class _Budget:
    """Bytes read out of a ZIP, held to MAX_IMPORT_BYTES whatever its headers claim."""

    def __init__(self, limit: int) -> None:
        self.left = limit

    def read(self, archive: zipfile.ZipFile, name: str) -> bytes:
        with archive.open(name) as member:
            data = member.read(self.left + 1)
        self.left -= len(data)
        if self.left < 0:
            raise PayloadTooLarge(f"The ZIP file unpacks to more than {settings.MAX_IMPORT_BYTES} bytes.")
        return data


_VALUE_STARTS = {"start_map", "start_array", "string", "number", "boolean", "null"}
# Where each list format has one message: a key of ChatGPT's mapping or Open WebUI's history, an
# object of Open WebUI's older plain list.
_MESSAGE_EVENTS = {
    ("map_key", "item.mapping"),
    ("map_key", "item.chat.history.messages"),
    ("start_map", "item.chat.messages.item"),
}


def _scan(stream: IO[bytes]) -> tuple[str, int, int]:
    """Read the whole JSON once (no objects built): its kind, conversations and messages.

    Raises InvalidInput when it is not JSON, nests too deep or is none of the known formats.
    """
    top = None
    first_item_keys: set[str] = set()
    conversations = messages = 0
    our_format = None
    depth = 0
    try:
        for prefix, event, value in ijson.parse(stream):
            if event in ("start_map", "start_array"):
                depth += 1
                if depth > MAX_NESTING:
                    raise _refuse(f"The file nests deeper than {MAX_NESTING} levels.")
                if top is None:
                    top = event
            elif event in ("end_map", "end_array"):
                depth -= 1
            if top == "start_array":
                if prefix == "item" and event in _VALUE_STARTS:
                    conversations += 1
                    if conversations == 1 and event != "start_map":
                        first_item_keys.add("")
                elif prefix == "item" and event == "map_key" and conversations == 1:
                    first_item_keys.add(value)
                elif (event, prefix) in _MESSAGE_EVENTS:
                    messages += 1
            elif top == "start_map":
                if prefix == "format" and event == "string":
                    our_format = value
                elif prefix == "threads.item" and event == "start_map":
                    conversations += 1
                elif prefix == "threads.item.messages.item" and event == "start_map":
                    messages += 1
    except ijson.JSONError as exc:
        raise _refuse(f"The file is not valid JSON ({exc}).") from None
    stream.seek(0)
    if top == "start_map" and our_format == "chat-export":
        return "chat-export", conversations, messages
    if top == "start_array":
        if conversations == 0:
            return "chatgpt", 0, 0
        if "" in first_item_keys:
            pass
        elif "mapping" in first_item_keys:
            return "chatgpt", conversations, messages
        if "chat" in first_item_keys:
            return "open-webui", conversations, messages
    raise _refuse(
        "The file is not a format we import: our JSON export, ChatGPT's conversations.json or an Open WebUI export."
    )


@dataclass
class ImportFile:
    """A checked import file: what it holds, and its conversations one at a time."""

    kind: str
    conversations: int
    messages: int
    _open_json: Callable[[], IO[bytes]]
    _archive: zipfile.ZipFile | None = None
    _budget: _Budget | None = None

    @classmethod
    def open(cls, stream: IO[bytes], *, size: int) -> ImportFile:
        """Check ``stream`` (a seekable file of ``size`` bytes) and recognise its format."""
        limit = settings.MAX_IMPORT_BYTES
        if size > limit:
            raise PayloadTooLarge(f"The file is larger than {limit} bytes ({size} given).")
        if size == 0:
            raise _refuse("The file is empty.")
        head = stream.read(4)
        stream.seek(0)
        if head != b"PK\x03\x04":
            kind, conversations, messages = _scan(stream)
            return cls(kind, conversations, messages, lambda: stream)
        try:
            archive = zipfile.ZipFile(stream)
        except (zipfile.BadZipFile, OSError, ValueError):
            raise _refuse("The file is not a valid ZIP file.") from None
        members = [i for i in archive.infolist() if not i.is_dir() and not i.filename.startswith("__MACOSX/")]
        if len(members) > ZIP_MAX_MEMBERS:
            raise _refuse(f"The ZIP file holds more than {ZIP_MAX_MEMBERS} files.")
        total = sum(i.file_size for i in members)
        if total > limit:
            raise PayloadTooLarge(f"The ZIP file unpacks to more than {limit} bytes ({total} claimed).")
        for info in members:
            if info.compress_size and info.file_size / info.compress_size > ZIP_MAX_RATIO:
                raise _refuse(
                    f'The ZIP file looks like a ZIP bomb ("{info.filename}" expands over {ZIP_MAX_RATIO} times).'
                )
        names = [i.filename for i in members if i.filename.lower().endswith(".json")]
        chosen = next((n for n in names if n.rsplit("/", 1)[-1] == "conversations.json"), None) or (
            names[0] if len(names) == 1 else next((n for n in names if n.startswith("export")), None)
        )
        budget = _Budget(limit)
        if chosen is None and names:
            # Our archive: one chat-export document per thread.
            return cls("chat-export-archive", len(names), 0, lambda: stream, archive, budget)
        if chosen is None:
            raise _refuse("The ZIP file holds no JSON file to import.")
        data = budget.read(archive, chosen)
        buffer = io.BytesIO(data)
        kind, conversations, messages = _scan(buffer)
        return cls(kind, conversations, messages, lambda: buffer, archive, budget)

    def entries(self) -> Iterator[Entry]:
        """Each conversation, parsed, or the reason it cannot be (the others go on)."""
        budget = self._budget or _Budget(settings.MAX_IMPORT_BYTES)
        if self.kind == "chat-export-archive":
            assert self._archive is not None
            index = 0
            for name in sorted(n for n in self._archive.namelist() if n.lower().endswith(".json")):
                buffer = io.BytesIO(budget.read(self._archive, name))
                try:
                    kind, _, _ = _scan(buffer)
                except InvalidInput as exc:
                    yield Entry(index, name, error=f"{name}: {exc.message}")
                    index += 1
                    continue
                if kind != "chat-export":
                    yield Entry(index, name, error=f"{name}: not one of our exports")
                    index += 1
                    continue
                for entry in self._items(buffer, "chat-export", budget, start=index):
                    index += 1
                    yield entry
            return
        yield from self._items(self._open_json(), self.kind, budget, start=0)

    def _items(self, stream: IO[bytes], kind: str, budget: _Budget, *, start: int) -> Iterator[Entry]:
        path = "threads.item" if kind == "chat-export" else "item"
        for offset, raw in enumerate(ijson.items(stream, path, use_float=True)):
            index = start + offset
            title = _text(raw.get("title")) if isinstance(raw, dict) else ""
            try:
                if kind == "chat-export":
                    conversation = _ours(raw, self._archive, budget)
                elif kind == "chatgpt":
                    conversation = _chatgpt(raw)
                else:
                    conversation = _open_webui(raw)
            except (ValueError, TypeError, AttributeError) as exc:
                yield Entry(index, title, error=str(exc))
                continue
            yield Entry(index, conversation.title, conversation=conversation)

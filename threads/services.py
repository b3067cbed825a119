"""Writes to threads. Every function validates its input and raises InvalidInput naming the field."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import models, transaction
from django.utils import timezone

from chatproject import catalog
from chatproject.errors import InvalidInput, NotFound, TooLarge
from chatproject.json_input import json_depth, json_nul_free, json_size

from .models import ChatPreferences, ChatThread
from .selectors import parse_uuid
from .signals import thread_changed, thread_deleted
from .tree import newest_leaf

TITLE_MAX_CHARS = cast(int, ChatThread._meta.get_field("title").max_length)  # a CharField: always set
_UNSET: Any = object()


def validate_metadata(metadata: object, *, field: str = "metadata", limited: bool = True) -> dict[str, Any]:
    """Metadata is always a JSON object; None means empty.

    ``limited`` (what users send): at most METADATA_MAX_DEPTH levels deep and METADATA_MAX_BYTES
    as compact JSON. The agent's own metadata (a reply's whole trajectory) is not bounded here.
    """
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise InvalidInput.field(field, "Must be a JSON object.")
    # Any JSON object is valid metadata, but no database column takes a NUL (PostgreSQL's jsonb
    # refuses \u0000): NULs become U+FFFD, the same on every database.
    metadata = cast(dict[str, Any], json_nul_free(metadata)[0])  # a dict comes back a dict
    if limited:
        max_depth = settings.METADATA_MAX_DEPTH
        too_deep = TooLarge.field(field, f"Must not nest deeper than {max_depth} levels.")
        # Size first: json.dumps runs in C, so a huge value is refused before a walk in Python.
        try:
            size = json_size(metadata)
        except RecursionError:  # nested past what json.dumps can follow
            raise too_deep from None
        except ValueError:
            raise InvalidInput.field(field, "Must be valid JSON (no NaN or Infinity).") from None
        if size > settings.METADATA_MAX_BYTES:
            raise TooLarge.field(field, f"Must be at most {settings.METADATA_MAX_BYTES} bytes as JSON ({size} given).")
        if json_depth(metadata, stop_after=max_depth) > max_depth:
            raise too_deep
    return metadata


def _clean_title(title: object) -> str:
    if not isinstance(title, str):
        raise InvalidInput.field("title", "Must be a string.")
    title = title.strip()
    if len(title) > TITLE_MAX_CHARS:
        raise InvalidInput.field("title", f"Ensure this field has no more than {TITLE_MAX_CHARS} characters.")
    return title


class UnknownModel(InvalidInput):
    """A model name that is not (or no longer) offered."""

    code = "unknown_model"


def clean_model(model: Any) -> str:
    """A model name users may choose, or "" for the default (AGENT_LM); UnknownModel names the ones offered."""
    if not isinstance(model, str):
        raise InvalidInput.field("model", "Must be a string.")
    if not model.strip():
        return ""
    offered = catalog.offered()
    if model.strip() not in offered:
        raise UnknownModel.field(
            "model", f"Unknown model {model.strip()!r}: choose one of {', '.join(offered)} (GET /api/models/)."
        )
    return model.strip()


def clean_instructions(instructions: object, *, field: str = "instructions") -> str:
    """Custom instructions: a string of at most AGENT_INSTRUCTIONS_MAX_CHARS, trimmed."""
    if not isinstance(instructions, str):
        raise InvalidInput.field(field, "Must be a string.")
    instructions = instructions.strip()
    if len(instructions) > (limit := settings.AGENT_INSTRUCTIONS_MAX_CHARS):
        raise TooLarge.field(
            field, f"Ensure this field has no more than {limit} characters ({len(instructions)} given)."
        )
    return instructions


def preferences_update(*, user: User, instructions: str = _UNSET, model: str = _UNSET) -> ChatPreferences:
    """Change a user's custom instructions and/or last chosen model (validated); creates the row."""
    values: dict[str, str] = {}
    if instructions is not _UNSET:
        values["instructions"] = clean_instructions(instructions)
    if model is not _UNSET:
        values["model"] = clean_model(model)
    preferences, created = ChatPreferences.objects.get_or_create(user=user, defaults=values)
    if values and not created:
        for name, value in values.items():
            setattr(preferences, name, value)
        preferences.save(update_fields=list(values))
    return preferences


def _model_for_new_thread(owner: User) -> str:
    last = ChatPreferences.objects.filter(user=owner).values_list("model", flat=True).first()
    # No choice ("") follows AGENT_LM, even when the operator changes it later.
    return last if last and last in catalog.offered() else ""


@transaction.atomic
def thread_create(
    *,
    owner: User,
    title: str = "",
    metadata: dict[str, Any] | None = None,
    model: str | None = None,
    instructions: str = "",
) -> ChatThread:
    """Create an active thread owned by ``owner``; sends ``thread_changed`` (created) in its transaction.

    Its model is ``model`` (which becomes the owner's last choice), else the owner's last choice
    while it is offered, else the default (AGENT_LM).
    """
    fields: dict[str, Any] = {
        "title": _clean_title(title),
        "metadata": validate_metadata(metadata),
        "instructions": clean_instructions(instructions),
    }
    if model is not None:
        fields["model"] = clean_model(model)
        preferences_update(user=owner, model=fields["model"])
    else:
        fields["model"] = _model_for_new_thread(owner)
    thread = ChatThread.objects.create(owner=owner, **fields)
    thread_changed.send(sender=ChatThread, thread=thread, change="created")
    return thread


@transaction.atomic
def thread_update(
    *,
    thread: ChatThread,
    title: str = _UNSET,
    summary: str = _UNSET,
    status: str = _UNSET,
    metadata: dict[str, Any] = _UNSET,
    model: str = _UNSET,
    instructions: str = _UNSET,
    chosen_by_owner: bool = True,
    active_leaf: Any = _UNSET,
) -> ChatThread:
    """Change the given fields only. Status moves between active and archived; deleting is thread_delete.

    A model the owner chooses (``chosen_by_owner``) also becomes their default for new threads.
    ``active_leaf`` (a message id of this thread) switches branch: the newest message under that
    message becomes the active leaf, as when a user clicks a branch.
    Sends ``thread_changed`` (updated) in its transaction when a field changed.
    """
    changed: list[str] = []
    if active_leaf is not _UNSET:
        thread.active_leaf_id = _branch_leaf(thread, active_leaf)
        changed.append("active_leaf")
    if model is not _UNSET:
        thread.model = clean_model(model)
        changed.append("model")
    if instructions is not _UNSET:
        thread.instructions = clean_instructions(instructions)
        changed.append("instructions")
    if title is not _UNSET:
        thread.title = _clean_title(title)
        changed.append("title")
    if summary is not _UNSET:
        if not isinstance(summary, str):
            raise InvalidInput.field("summary", "Must be a string.")
        if len(summary) > (limit := settings.THREAD_SUMMARY_MAX_CHARS):
            raise TooLarge.field(
                "summary", f"Ensure this field has no more than {limit} characters ({len(summary)} given)."
            )
        thread.summary = summary
        changed.append("summary")
    if status is not _UNSET:
        if status not in (ChatThread.Status.ACTIVE, ChatThread.Status.ARCHIVED):
            raise InvalidInput.field("status", f'"{status}" is not a valid choice: use "active" or "archived".')
        thread.status = status
        changed.append("status")
    if metadata is not _UNSET:
        thread.metadata = validate_metadata(metadata)
        changed.append("metadata")
    if changed:
        thread.save(update_fields=[*changed, "updated_at"])
        thread_changed.send(sender=ChatThread, thread=thread, change="updated")
    if model is not _UNSET and chosen_by_owner:
        # Only once every field was accepted: a refused update changes nothing.
        preferences_update(user=thread.owner, model=thread.model)
    return thread


def _branch_leaf(thread: ChatThread, message_id: Any) -> Any:
    pk = parse_uuid(message_id) if message_id is not None else None
    # The reverse relation of ChatMessage.thread: threads reads the tree without importing messaging.
    pairs = list(thread.messages.order_by("created_at", "id").values_list("id", "parent_id"))
    if pk is None:
        raise InvalidInput.field("active_leaf", "Must be a message id.")
    if pk not in {node for node, _ in pairs}:
        raise NotFound("Message not found in this thread.")
    return newest_leaf(pairs, pk)


@transaction.atomic
def thread_delete(*, thread: ChatThread) -> None:
    """Mark the thread deleted: it disappears for its owner; its rows stay until an admin purges them.

    Sends ``thread_changed`` (deleted) in its transaction and ``threads.signals.thread_deleted``
    after commit (its open WebSockets are closed).
    """
    thread.status = ChatThread.Status.DELETED
    thread.save(update_fields=["status", "updated_at"])
    thread_changed.send(sender=ChatThread, thread=thread, change="deleted")
    transaction.on_commit(lambda: thread_deleted.send(sender=ChatThread, thread_id=thread.pk))


def thread_touch(*, thread_id: Any, active_leaf_id: Any = _UNSET) -> None:
    """Record activity on a thread (a new message) without loading it, and move its active leaf."""
    fields: dict[str, Any] = {"updated_at": timezone.now()}
    if active_leaf_id is not _UNSET:
        fields["active_leaf_id"] = active_leaf_id
    ChatThread.objects.filter(pk=thread_id).update(**fields)


def thread_advance_leaf(*, thread_id: Any, from_id: Any, to_id: Any) -> bool:
    """Move the active leaf from ``from_id`` (or none) to ``to_id``; False when the user has moved
    elsewhere meanwhile (a reply finishing on a branch they left does not pull them back)."""
    return bool(
        ChatThread.objects.filter(pk=thread_id)
        .filter(models.Q(active_leaf_id=from_id) | models.Q(active_leaf__isnull=True))
        .update(active_leaf_id=to_id)
    )


@transaction.atomic
def demo_user_ensure(*, username: str, password: str) -> User | None:
    """Create a demo user with a welcome thread when the site has no user at all; else None."""
    User = get_user_model()
    if User.objects.exists():
        return None
    user = User.objects.create_user(username=username, password=password)
    thread_create(owner=user, title="Welcome")
    return user


def thread_import(
    *,
    owner: User,
    title: str,
    summary: str = "",
    status: str = ChatThread.Status.ACTIVE,
    metadata: dict[str, Any] | None = None,
    created_at: datetime | None = None,
    updated_at: datetime | None = None,
    model: str = "",
    instructions: str = "",
) -> ChatThread:
    """Create a thread brought in from an export, keeping its times. Sends nothing.

    A title longer than 200 characters is shortened (an import keeps what it can); a status other
    than active or archived becomes active; metadata follows the rules for users' metadata. The
    thread's model is kept when this server offers it (else the default answers); its custom
    instructions are kept, shortened to AGENT_INSTRUCTIONS_MAX_CHARS.
    """
    if not isinstance(title, str) or not isinstance(summary, str):
        raise InvalidInput.field("title", "Must be a string.")
    if len(summary) > (limit := settings.THREAD_SUMMARY_MAX_CHARS):
        summary = summary[:limit]
    if status not in (ChatThread.Status.ACTIVE, ChatThread.Status.ARCHIVED):
        status = ChatThread.Status.ACTIVE
    thread = ChatThread.objects.create(
        owner=owner,
        title=title.strip()[:TITLE_MAX_CHARS],
        summary=summary,
        status=status,
        metadata=validate_metadata(metadata),
        model=model if model in catalog.offered() else "",
        instructions=clean_instructions(instructions[: settings.AGENT_INSTRUCTIONS_MAX_CHARS]),
    )
    times = {"created_at": created_at or thread.created_at, "updated_at": updated_at or created_at or thread.updated_at}
    # auto_now fields ignore given values on save: set the original times with an update.
    ChatThread.objects.filter(pk=thread.pk).update(**times)
    thread.created_at, thread.updated_at = times["created_at"], times["updated_at"]
    return thread

"""What the human-readable formats (Markdown, HTML) share: labels, tool steps, attachment links."""

from __future__ import annotations

import re
from typing import Any

from . import ExportContext

ROLE_LABELS = {"user": "You", "ai": "Assistant", "system": "System"}
_STEP_KEY = re.compile(r"^(thought|tool_name|tool_args|observation)_(\d+)$")


def role_label(role: str) -> str:
    return ROLE_LABELS.get(role, role.title())


def time_label(created_at: str) -> str:
    """``2026-11-25T14:06:57.123456+00:00`` as ``2026-11-25 14:06 UTC``-like text (minute precision)."""
    date, _, rest = created_at.partition("T")
    return f"{date} {rest[:5]} UTC" if rest else created_at


def tool_steps(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The agent's tool steps from an AI message's metadata (its ReAct trajectory), in order."""
    trajectory = (message.get("metadata") or {}).get("trajectory")
    if message.get("role") != "ai" or not isinstance(trajectory, dict):
        return []
    steps: dict[int, dict[str, Any]] = {}
    for key, value in trajectory.items():
        if match := _STEP_KEY.match(str(key)):
            steps.setdefault(int(match.group(2)), {})[match.group(1)] = value
    return [steps[n] for n in sorted(steps) if steps[n].get("tool_name") not in (None, "finish")]


def attachment_href(thread_id: str, attachment: dict[str, Any], context: ExportContext) -> str:
    """Inside a ZIP: the file beside the document; else the owner-only download endpoint, on the
    site the file came from (a link that still works once the file is saved elsewhere)."""
    if context.in_archive and attachment.get("path"):
        return "../" + attachment["path"]
    return f"{context.base_url}/api/attachments/{attachment['id']}/download/"

"""What the exports app tells others.

``export_completed`` is sent when an export has been written to its end (the last byte of a
download streamed, a command's file written), with ``user`` and ``export``: a small dict
``{"scope": "thread" | "all", "thread_id": str | None, "format", "branches", "archive": bool,
"threads": int, "messages": int}``. Webhooks connect ``export.completed`` to it.
"""

from django.dispatch import Signal

export_completed = Signal()

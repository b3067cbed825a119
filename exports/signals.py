"""What the exports app tells others.

``export_completed`` is sent when an export has been written to its end (the last byte of a
download streamed, a command's file written), with ``user`` and ``export``: a small dict
``{"scope": "thread" | "all", "thread_id": str | None, "format", "branches", "archive": bool,
"threads": int, "messages": int}``. Webhooks connect ``export.completed`` to it.

``import_completed`` is sent when an import has ended (in the request, a background job's last
conversation, the command), with ``user`` and ``result``: ``{"kind", "imported": [{"id", "title",
"messages"}], "skipped": [{"index", "title", "reason"}]}``: the one event of an import, whose
messages send none of their own. Webhooks connect ``import.completed`` to it.
"""

from django.dispatch import Signal

export_completed = Signal()
import_completed = Signal()

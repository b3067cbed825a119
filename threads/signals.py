"""Hooks by which threads tells higher apps what happened, without importing them.

``thread_deleted`` is sent after the transaction that marked a thread deleted commits, with
``thread_id``. Messaging connects to it to close the thread's open WebSockets.

``thread_changed`` is sent INSIDE the transaction that creates, updates or deletes a thread, with
``thread`` and ``change`` ("created", "updated" or "deleted"), so that a receiver's own writes (the
webhooks outbox) commit or roll back with the change. Receivers must not do I/O beyond the database.
"""

from django.dispatch import Signal

thread_deleted = Signal()
thread_changed = Signal()

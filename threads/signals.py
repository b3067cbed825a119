"""Hooks by which threads tells higher apps what happened, without importing them.

``thread_deleted`` is sent after the transaction that marked a thread deleted commits, with
``thread_id``. Messaging connects to it to close the thread's open WebSockets.
"""

from django.dispatch import Signal

thread_deleted = Signal()

"""The one hook by which messaging sets off work in higher apps.

``user_message_posted`` is sent after the transaction that stored a user message commits, with
``message_id`` and ``thread_id``. The agent app connects to it to queue its reply; messaging
never imports the agent. It is not sent for a message stored with ``reply=False``.

``user_message_created`` (``message``) and ``reply_finished`` (``message``: the AI message,
``status``: how its stream ended) are sent INSIDE the transaction that stores the message, so a
receiver's own writes (the webhooks outbox) commit or roll back with it. Receivers must not do I/O
beyond the database.
"""

from django.dispatch import Signal

user_message_posted = Signal()
user_message_created = Signal()
reply_finished = Signal()

"""The one hook by which messaging sets off work in higher apps.

``user_message_posted`` is sent after the transaction that stored a user message commits, with
``message_id`` and ``thread_id``. The agent app connects to it to queue its reply; messaging
never imports the agent.
"""

from django.dispatch import Signal

user_message_posted = Signal()

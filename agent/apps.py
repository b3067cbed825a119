from django.apps import AppConfig


class AgentConfig(AppConfig):
    """The AI agent: replies to every new user message (see ``agent.receivers``)."""

    name = "agent"
    verbose_name = "Agent"

    def ready(self) -> None:
        from messaging.signals import user_message_posted

        from .receivers import queue_reply

        user_message_posted.connect(queue_reply, dispatch_uid="agent.queue_reply")

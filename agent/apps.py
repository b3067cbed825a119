from django.apps import AppConfig


class AgentConfig(AppConfig):
    """The AI agent. It will connect to ``messaging.signals.user_message_posted`` to reply."""

    name = "agent"
    verbose_name = "Agent"

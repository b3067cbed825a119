from django.apps import AppConfig


class ChatprojectConfig(AppConfig):
    name = "chatproject"

    def ready(self) -> None:
        # Connects the receiver that counts failed log-ins.
        from . import logins  # noqa: F401

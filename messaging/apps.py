from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"
    verbose_name = "Messaging"

    def ready(self) -> None:
        from django.conf import settings
        from django.contrib.auth.signals import user_logged_out
        from django.db.models.signals import post_delete, post_save
        from rest_framework.authtoken.models import Token

        from threads.signals import thread_deleted

        from . import receivers

        thread_deleted.connect(receivers.close_thread_connections, dispatch_uid="messaging.close_thread")
        user_logged_out.connect(receivers.close_session_connections, dispatch_uid="messaging.close_session")
        post_save.connect(
            receivers.close_connections_of_inactive_user,
            sender=settings.AUTH_USER_MODEL,
            dispatch_uid="messaging.close_inactive_user",
        )
        post_delete.connect(
            receivers.close_connections_of_deleted_user,
            sender=settings.AUTH_USER_MODEL,
            dispatch_uid="messaging.close_deleted_user",
        )
        # The admin deletes TokenProxy rows; DRF deletes them through the concrete Token.
        post_delete.connect(receivers.close_token_connections, sender=Token, dispatch_uid="messaging.close_token")

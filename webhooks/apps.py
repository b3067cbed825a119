from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    """Webhooks: signed outgoing events (an outbox) and incoming messages; imported by no other app."""

    name = "webhooks"
    verbose_name = "Webhooks"

    def ready(self) -> None:
        from messaging.signals import reply_finished, user_message_created
        from threads.signals import thread_changed

        from . import receivers

        thread_changed.connect(receivers.on_thread_changed, dispatch_uid="webhooks.thread_changed")
        user_message_created.connect(receivers.on_user_message_created, dispatch_uid="webhooks.message_created")
        reply_finished.connect(receivers.on_reply_finished, dispatch_uid="webhooks.reply_finished")
        try:  # the exports app sends it once it exists (built in parallel)
            from exports.signals import export_completed, import_completed
        except ImportError:
            pass
        else:
            export_completed.connect(receivers.on_export_completed, dispatch_uid="webhooks.export_completed")
            import_completed.connect(receivers.on_import_completed, dispatch_uid="webhooks.import_completed")

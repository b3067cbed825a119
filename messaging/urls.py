from django.urls import path

from . import api

urlpatterns = [
    path("threads/<str:thread_id>/messages/", api.MessageListApi.as_view(), name="message-list"),
    path(
        "threads/<str:thread_id>/messages/<str:message_id>/regenerate/",
        api.MessageRegenerateApi.as_view(),
        name="message-regenerate",
    ),
    path("threads/<str:thread_id>/fork/", api.ThreadForkApi.as_view(), name="thread-fork"),
    path("visualization/<str:thread_id>/", api.VisualizationApi.as_view(), name="visualization"),
    path("streams/<str:stream_id>/stop/", api.StreamStopApi.as_view(), name="stream-stop"),
    path("attachments/<str:attachment_id>/download/", api.AttachmentDownloadApi.as_view(), name="attachment-download"),
]

from django.urls import path

from . import api

urlpatterns = [
    path("threads/<str:thread_id>/messages/", api.MessageListApi.as_view(), name="message-list"),
    path("attachments/<str:attachment_id>/download/", api.AttachmentDownloadApi.as_view(), name="attachment-download"),
]

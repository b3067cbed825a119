from django.urls import path

from . import api

urlpatterns = [
    path("threads/", api.ThreadListApi.as_view(), name="thread-list"),
    path("threads/<str:thread_id>/", api.ThreadDetailApi.as_view(), name="thread-detail"),
]

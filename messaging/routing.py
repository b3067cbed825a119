from django.urls import path

from .consumers import ChatConsumer

websocket_urlpatterns = [
    path("ws/<str:thread_id>/<str:user_id>/", ChatConsumer.as_asgi()),
]

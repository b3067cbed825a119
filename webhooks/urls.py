from django.urls import path

from . import api

urlpatterns = [
    path("webhooks/", api.WebhookListApi.as_view(), name="webhook-list"),
    path("webhooks/event-types/", api.EventTypesApi.as_view(), name="webhook-event-types"),
    path("webhooks/incoming/", api.IncomingEndpointListApi.as_view(), name="webhook-incoming-list"),
    path("webhooks/incoming/<str:endpoint_id>/", api.IncomingReceiveApi.as_view(), name="webhook-incoming"),
    path(
        "webhooks/deliveries/<str:delivery_id>/redeliver/",
        api.DeliveryRedeliverApi.as_view(),
        name="webhook-delivery-redeliver",
    ),
    path("webhooks/<str:webhook_id>/", api.WebhookDetailApi.as_view(), name="webhook-detail"),
    path("webhooks/<str:webhook_id>/rotate-secret/", api.WebhookRotateSecretApi.as_view(), name="webhook-rotate"),
    path("webhooks/<str:webhook_id>/test/", api.WebhookTestApi.as_view(), name="webhook-test"),
    path("webhooks/<str:webhook_id>/deliveries/", api.WebhookDeliveryListApi.as_view(), name="webhook-deliveries"),
]

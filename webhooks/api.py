"""REST API of webhooks: outgoing endpoints, their deliveries, incoming endpoints."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chatproject.schema import ERROR_SCHEMA

from . import selectors, services
from .events import EVENT_TYPES
from .serializers import (
    DeliverySerializer,
    IncomingEndpointCreateSerializer,
    IncomingEndpointSerializer,
    WebhookCreateSerializer,
    WebhookSerializer,
    WebhookUpdateSerializer,
    WebhookWithSecretSerializer,
)
from .signing import SignatureError


class WebhookListApi(generics.GenericAPIView):
    """Your outgoing webhooks, newest first. Creating one answers its secret, shown only then."""

    serializer_class = WebhookCreateSerializer

    @extend_schema(responses=WebhookSerializer(many=True))
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(selectors.webhook_list(user=request.user))
        return self.get_paginated_response(WebhookSerializer(page, many=True).data)

    @extend_schema(request=WebhookCreateSerializer, responses={201: WebhookWithSecretSerializer})
    def post(self, request: Request) -> Response:
        data = WebhookCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        webhook = services.webhook_create(owner=request.user, **data.validated_data)
        return Response(WebhookWithSecretSerializer(webhook).data, status=status.HTTP_201_CREATED)


class WebhookDetailApi(generics.GenericAPIView):
    """One of your webhooks; anyone else's answers 404."""

    serializer_class = WebhookUpdateSerializer

    @extend_schema(responses=WebhookSerializer)
    def get(self, request: Request, webhook_id: str) -> Response:
        return Response(WebhookSerializer(selectors.webhook_get(user=request.user, webhook_id=webhook_id)).data)

    @extend_schema(request=WebhookUpdateSerializer, responses=WebhookSerializer)
    def patch(self, request: Request, webhook_id: str) -> Response:
        webhook = selectors.webhook_get(user=request.user, webhook_id=webhook_id)
        data = WebhookUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(WebhookSerializer(services.webhook_update(webhook=webhook, **data.validated_data)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, webhook_id: str) -> Response:
        services.webhook_delete(webhook=selectors.webhook_get(user=request.user, webhook_id=webhook_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookRotateSecretApi(APIView):
    """A new secret; the old one still signs (a second signature) for 24 hours."""

    @extend_schema(request=None, responses=WebhookWithSecretSerializer)
    def post(self, request: Request, webhook_id: str) -> Response:
        webhook = selectors.webhook_get(user=request.user, webhook_id=webhook_id)
        return Response(WebhookWithSecretSerializer(services.webhook_rotate_secret(webhook=webhook)).data)


class WebhookTestApi(APIView):
    """Send a ``webhook.test`` event to this endpoint."""

    @extend_schema(request=None, responses={202: DeliverySerializer})
    def post(self, request: Request, webhook_id: str) -> Response:
        webhook = selectors.webhook_get(user=request.user, webhook_id=webhook_id)
        delivery = services.webhook_send_test(webhook=webhook)
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


class WebhookDeliveryListApi(generics.GenericAPIView):
    """The endpoint's deliveries, newest first (each with its latest attempt)."""

    serializer_class = DeliverySerializer

    def get(self, request: Request, webhook_id: str) -> Response:
        webhook = selectors.webhook_get(user=request.user, webhook_id=webhook_id)
        page = self.paginate_queryset(selectors.delivery_list(webhook=webhook))
        return self.get_paginated_response(DeliverySerializer(page, many=True).data)


class DeliveryRedeliverApi(APIView):
    """Send the delivery's event again (same event id) as a new delivery."""

    @extend_schema(
        request=None,
        responses={
            202: DeliverySerializer,
            409: OpenApiResponse(response=ERROR_SCHEMA, description="The webhook is disabled: enable it first."),
        },
    )
    def post(self, request: Request, delivery_id: str) -> Response:
        delivery = selectors.delivery_get(user=request.user, delivery_id=delivery_id)
        again = services.delivery_redeliver(delivery=delivery)
        return Response(DeliverySerializer(again).data, status=status.HTTP_202_ACCEPTED)


class EventTypesApi(APIView):
    """The event types an endpoint can subscribe to."""

    def get(self, request: Request) -> Response:
        return Response([{"type": name, "description": text} for name, text in EVENT_TYPES.items()])


class IncomingEndpointListApi(generics.GenericAPIView):
    """Your incoming webhooks; creating one binds it to one of your threads."""

    serializer_class = IncomingEndpointCreateSerializer

    @extend_schema(responses=IncomingEndpointSerializer(many=True))
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(selectors.incoming_endpoint_list(user=request.user))
        return self.get_paginated_response(IncomingEndpointSerializer(page, many=True).data)

    @extend_schema(
        request=IncomingEndpointCreateSerializer,
        responses={
            201: IncomingEndpointSerializer,
            404: OpenApiResponse(response=ERROR_SCHEMA, description="The thread is not one of yours."),
        },
    )
    def post(self, request: Request) -> Response:
        data = IncomingEndpointCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint = services.incoming_endpoint_create(
            owner=request.user, thread_id=data.validated_data["thread"], kind=data.validated_data["kind"]
        )
        return Response(IncomingEndpointSerializer(endpoint).data, status=status.HTTP_201_CREATED)


class IncomingReceiveApi(APIView):
    """POST (signed): posts a message to the endpoint's thread. DELETE (its owner): removes it.

    The POST needs no log-in: the signature is the credential. 401 for a bad, missing or stale
    signature, 404 for an unknown endpoint; nothing is stored then.
    """

    parser_classes: list = []

    def get_authenticators(self):  # type: ignore[no-untyped-def]
        # The signature authenticates a POST; no session, so no CSRF check either.
        # (spectacular's schema generation calls this with no request)
        return [] if getattr(self.request, "method", None) == "POST" else super().get_authenticators()

    def get_permissions(self):  # type: ignore[no-untyped-def]
        return [AllowAny()] if getattr(self.request, "method", None) == "POST" else super().get_permissions()

    @extend_schema(request=None, responses={202: None, 401: None, 404: None})
    def post(self, request: Request, endpoint_id: str) -> Response:
        try:
            message, created = services.incoming_receive(
                endpoint_id=endpoint_id, headers=dict(request.headers), body=request.body
            )
        except SignatureError as exc:
            return Response({"detail": str(exc), "code": "invalid_signature"}, status=status.HTTP_401_UNAUTHORIZED)
        if message is None:
            return Response({"ignored": True}, status=status.HTTP_202_ACCEPTED)
        return Response({"message": str(message.pk), "created": created}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, endpoint_id: str) -> Response:
        endpoint = selectors.incoming_endpoint_get(user=request.user, endpoint_id=endpoint_id)
        services.incoming_endpoint_delete(endpoint=endpoint)
        return Response(status=status.HTTP_204_NO_CONTENT)

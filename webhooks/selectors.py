"""Reads of webhooks, always scoped to the user asking (anyone else's: NotFound)."""

from __future__ import annotations

import uuid

from django.contrib.auth.models import User
from django.db.models import QuerySet

from chatproject.errors import NotFound
from threads.selectors import parse_uuid

from .models import IncomingEndpoint, Webhook, WebhookDelivery


def webhook_list(*, user: User) -> QuerySet[Webhook]:
    return Webhook.objects.filter(owner_id=user.pk).order_by("-created_at", "-id")


def webhook_get(*, user: User, webhook_id: str | uuid.UUID) -> Webhook:
    pk = parse_uuid(webhook_id)
    webhook = Webhook.objects.filter(pk=pk, owner_id=user.pk).first() if pk else None
    if webhook is None:
        raise NotFound("Webhook not found.")
    return webhook


def delivery_list(*, webhook: Webhook) -> QuerySet[WebhookDelivery]:
    """The endpoint's deliveries, newest first."""
    return WebhookDelivery.objects.filter(webhook=webhook).select_related("event").order_by("-created_at", "-id")


def delivery_get(*, user: User, delivery_id: str | uuid.UUID) -> WebhookDelivery:
    pk = parse_uuid(delivery_id)
    delivery = (
        WebhookDelivery.objects.select_related("webhook", "event").filter(pk=pk, webhook__owner_id=user.pk).first()
        if pk
        else None
    )
    if delivery is None:
        raise NotFound("Delivery not found.")
    return delivery


def incoming_endpoint_list(*, user: User) -> QuerySet[IncomingEndpoint]:
    return IncomingEndpoint.objects.filter(owner_id=user.pk).select_related("thread").order_by("-created_at", "-id")


def incoming_endpoint_get(*, user: User, endpoint_id: str | uuid.UUID) -> IncomingEndpoint:
    pk = parse_uuid(endpoint_id)
    endpoint = IncomingEndpoint.objects.filter(pk=pk, owner_id=user.pk).first() if pk else None
    if endpoint is None:
        raise NotFound("Incoming webhook not found.")
    return endpoint

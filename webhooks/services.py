"""Writes of the webhooks app: endpoints, the event outbox, delivery attempts, incoming messages.

Delivery is at least once: an event is a row written in the transaction of the change that
caused it (``event_record``), with one pending delivery per subscribed endpoint; a task sends it
after commit, and the periodic job (``deliveries_queue_due`` / ``deliveries_run_due``) takes every
delivery that is due, including the ones whose task was never queued (the broker was down) or
never finished (the worker died). Receivers deduplicate by ``webhook-id``.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, cast

from django.contrib.auth.models import User
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from chatproject import ssrf
from chatproject.errors import Conflict, InvalidInput, NotFound
from chatproject.totals import WEBHOOK_DELIVERY_ATTEMPTS, Totals
from messaging.models import ChatMessage
from messaging.services import message_send
from threads.models import ChatThread
from threads.selectors import parse_uuid, thread_get

from . import conf, signing
from .events import ALL, EVENT_TYPES, TEST_EVENT
from .incoming import HANDLERS, Incoming
from .models import IncomingEndpoint, Webhook, WebhookDelivery, WebhookEvent

logger = logging.getLogger(__name__)

WEBHOOKS_PER_USER = 20
INCOMING_PER_USER = 50
DESCRIPTION_MAX_CHARS = cast(int, Webhook._meta.get_field("description").max_length)  # CharFields: always set
URL_MAX_CHARS = cast(int, Webhook._meta.get_field("url").max_length)
_UNSET: Any = object()


# --- Endpoints ----------------------------------------------------------------------------------


def _clean_url(url: object) -> str:
    if not isinstance(url, str):
        raise InvalidInput.field("url", "Must be a string.")
    url = url.strip()
    if len(url) > URL_MAX_CHARS:
        raise InvalidInput.field("url", f"Ensure this field has no more than {URL_MAX_CHARS} characters.")
    ssrf.url_check(url, allow_http=conf.allow_http(), allow_private=conf.allow_private())
    return url


def _clean_events(events: Any) -> list[str]:
    if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
        raise InvalidInput.field("events", 'Must be a non-empty list of event types, or ["*"] for all.')
    unknown = [e for e in events if e != ALL and e not in EVENT_TYPES]
    if unknown:
        known = ", ".join(EVENT_TYPES)
        raise InvalidInput.field("events", f"Unknown event type(s): {', '.join(unknown)}. Known: {known}, or *.")
    return list(dict.fromkeys(events))


def _clean_description(description: Any) -> str:
    if not isinstance(description, str):
        raise InvalidInput.field("description", "Must be a string.")
    if len(description) > DESCRIPTION_MAX_CHARS:
        raise InvalidInput.field(
            "description", f"Ensure this field has no more than {DESCRIPTION_MAX_CHARS} characters."
        )
    return description.strip()


def webhook_create(*, owner: User, url: str, events: list[str], description: str = "", active: bool = True) -> Webhook:
    """Register an endpoint with a new secret. The URL is checked (scheme, every address public)
    now and again at each delivery. At most WEBHOOKS_PER_USER per user."""
    webhook = Webhook(
        owner=owner,
        url=_clean_url(url),
        events=_clean_events(events),
        description=_clean_description(description),
        active=bool(active),
        secret=signing.secret_new(),
    )
    if Webhook.objects.filter(owner=owner).count() >= WEBHOOKS_PER_USER:
        raise InvalidInput.field("url", f"You have {WEBHOOKS_PER_USER} webhooks already: delete one first.")
    webhook.save()
    return webhook


def webhook_update(
    *,
    webhook: Webhook,
    url: str = _UNSET,
    events: list[str] = _UNSET,
    description: str = _UNSET,
    active: bool = _UNSET,
) -> Webhook:
    """Change the given fields. Enabling an endpoint clears why it was disabled and its failure
    counts; its deliveries that failed meanwhile are not sent again (redeliver them)."""
    changed: list[str] = []
    if url is not _UNSET:
        webhook.url = _clean_url(url)
        changed.append("url")
    if events is not _UNSET:
        webhook.events = _clean_events(events)
        changed.append("events")
    if description is not _UNSET:
        webhook.description = _clean_description(description)
        changed.append("description")
    if active is not _UNSET:
        if not isinstance(active, bool):
            raise InvalidInput.field("active", "Must be true or false.")
        webhook.active = active
        changed.append("active")
        if active:
            webhook.disabled_at = None
            webhook.disabled_reason = ""
            webhook.consecutive_failures = 0
            webhook.failing_since = None
            changed += ["disabled_at", "disabled_reason", "consecutive_failures", "failing_since"]
    if changed:
        webhook.save(update_fields=[*changed, "updated_at"])
    return webhook


def webhook_delete(*, webhook: Webhook) -> None:
    """Delete the endpoint with its deliveries; nothing more is sent to it."""
    webhook.delete()


def webhook_rotate_secret(*, webhook: Webhook) -> Webhook:
    """Give the endpoint a new secret; the old one still signs (a second signature in the same
    header) for ROTATION_GRACE_SECONDS, so receivers can switch without losing events."""
    webhook.previous_secret = webhook.secret
    webhook.previous_secret_expires_at = timezone.now() + timedelta(seconds=conf.ROTATION_GRACE_SECONDS)
    webhook.secret = signing.secret_new()
    webhook.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at", "updated_at"])
    return webhook


# --- The outbox ---------------------------------------------------------------------------------


def _subscribed(webhook: Webhook, type: str) -> bool:
    return ALL in webhook.events or type in webhook.events


def _event_body(type: str, data: dict[str, Any]) -> str:
    body = {"type": type, "timestamp": timezone.now().isoformat(), "data": data}
    return json.dumps(body, cls=DjangoJSONEncoder, separators=(",", ":"))


def tasks_run_here() -> bool:
    """True with no broker (the embedded default, unit tests): Celery would run a task inline."""
    from chatproject.celery import app

    return bool(app.conf.task_always_eager)


def _queue_after_commit(delivery_ids: list[uuid.UUID]) -> None:
    """After commit, hand each delivery to a worker. With no broker (the embedded default) the
    periodic thread sends them, so no request waits for someone else's endpoint."""
    if tasks_run_here() or not delivery_ids:
        return

    def queue() -> None:
        from .tasks import deliver

        for index, pk in enumerate(delivery_ids):
            try:
                deliver.delay(str(pk))
            except Exception as exc:
                # The broker is down: the rows are stored; the periodic job sends them when it can.
                logger.warning(
                    "webhook deliveries not queued (%s: %s); the periodic job sends them", type(exc).__name__, exc
                )
                WebhookDelivery.objects.filter(
                    pk__in=delivery_ids[index:], status=WebhookDelivery.Status.PENDING
                ).update(next_attempt_at=timezone.now())
                return

    transaction.on_commit(queue)


def _first_attempt_at() -> datetime:
    """Due now where the periodic job sends everything; else leased to the task queued after
    commit, and taken by the periodic job only if that task has not run by then."""
    now = timezone.now()
    return now if tasks_run_here() else now + timedelta(seconds=conf.lease_seconds())


def _deliveries_create(event: WebhookEvent, webhooks: Iterable[Webhook]) -> list[WebhookDelivery]:
    first = _first_attempt_at()
    deliveries = WebhookDelivery.objects.bulk_create(
        [WebhookDelivery(webhook=w, event=event, next_attempt_at=first) for w in webhooks]
    )
    _queue_after_commit([d.pk for d in deliveries])
    return deliveries


def event_record(
    *, owner_id: Any, type: str, data: dict[str, Any] | Callable[[], dict[str, Any]]
) -> WebhookEvent | None:
    """Store an event of ``owner_id``'s with a pending delivery to each of their active endpoints
    subscribed to ``type``, in the caller's transaction; the deliveries are queued after commit.
    None (and one query) when no endpoint wants it.

    ``data`` may be a function that makes it: it is then called only when an endpoint wants the
    event (a message's payload costs queries and serializing, on every reply of every user).
    """
    if owner_id is None:
        return None
    webhooks = [
        w for w in Webhook.objects.filter(owner_id=owner_id, active=True).only("id", "events") if _subscribed(w, type)
    ]
    if not webhooks:
        return None
    if callable(data):
        data = data()
    with transaction.atomic():
        event = WebhookEvent.objects.create(owner_id=owner_id, type=type, body=_event_body(type, data))
        _deliveries_create(event, webhooks)
    return event


def webhook_send_test(*, webhook: Webhook) -> WebhookDelivery:
    """Send a ``webhook.test`` event to this endpoint only (even when disabled: it is how an
    owner checks a fixed endpoint before enabling it again)."""
    with transaction.atomic():
        data = {"webhook_id": str(webhook.pk), "message": "This is a test event."}
        event = WebhookEvent.objects.create(
            owner_id=webhook.owner_id, type=TEST_EVENT, body=_event_body(TEST_EVENT, data)
        )
        (delivery,) = _deliveries_create(event, [webhook])
    return delivery


def delivery_redeliver(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send the delivery's event again as a new delivery: same event id, same body, a fresh
    retry schedule. Conflict when the endpoint is disabled (it would fail without a request)."""
    if not delivery.webhook.active:
        raise Conflict("The webhook is disabled: enable it, then redeliver.")
    with transaction.atomic():
        (again,) = _deliveries_create(delivery.event, [delivery.webhook])
    return again


# --- Attempts -----------------------------------------------------------------------------------


def _retry_after_seconds(value: str | None) -> float:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date); 0 if none."""
    if not value:
        return 0
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        seconds: float = (parsedate_to_datetime(value) - timezone.now()).total_seconds()
        return max(0.0, seconds)
    except (TypeError, ValueError):
        return 0


def _next_delay(attempts_made: int, retry_after: float) -> float | None:
    """Seconds until the next attempt, or None when the schedule is spent."""
    if attempts_made >= len(conf.RETRY_DELAYS_SECONDS):
        return None
    delay = conf.RETRY_DELAYS_SECONDS[attempts_made] * (1 + random.uniform(-conf.JITTER, conf.JITTER))
    return max(delay, min(retry_after, conf.RETRY_AFTER_MAX_SECONDS))


def _signing_secrets(webhook: Webhook, now: Any) -> list[str]:
    secrets_ = [webhook.secret]
    if webhook.previous_secret and webhook.previous_secret_expires_at and webhook.previous_secret_expires_at > now:
        secrets_.append(webhook.previous_secret)
    return secrets_


def _disable(webhook: Webhook, reason: str) -> None:
    Webhook.objects.filter(pk=webhook.pk, active=True).update(
        active=False, disabled_at=timezone.now(), disabled_reason=reason[:300], updated_at=timezone.now()
    )
    logger.warning("webhook %s disabled: %s", webhook.pk, reason)


def _post(webhook: Webhook, event: WebhookEvent) -> tuple[ssrf.Response | None, str]:
    now = timezone.now()
    timestamp = int(now.timestamp())
    body = event.body.encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": conf.USER_AGENT,
        "webhook-id": event.pk,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signing.signature_header(
            secrets_=_signing_secrets(webhook, now), msg_id=event.pk, timestamp=timestamp, body=body
        ),
    }
    timeout = conf.timeout_seconds()
    try:
        response = ssrf.fetch(
            "POST",
            webhook.url,
            body=body,
            headers=headers,
            timeout=timeout,
            max_bytes=conf.RESPONSE_EXCERPT_CHARS * 4,
            allow_http=conf.allow_http(),
            allow_private=conf.allow_private(),
        )
    except ssrf.UnsafeURL as exc:
        return None, exc.errors["url"][0]
    except TimeoutError:
        return None, f"No answer within {timeout} s."
    except (OSError, http.client.HTTPException) as exc:
        return None, f"{type(exc).__name__}: {exc}"
    if 300 <= response.status < 400:
        return response, f"Redirects are not followed (Location: {response.headers.get('location', '-')})."
    return response, ""


def delivery_attempt(*, delivery_id: Any) -> WebhookDelivery | None:
    """Make one attempt at a pending delivery and record it; None when it is not pending.

    A disabled endpoint's deliveries fail without a request, except ``webhook.test`` (how an
    owner checks a fixed endpoint before enabling it). 2xx succeeds. 410 Gone fails it and
    disables the endpoint at once. Anything else (another status, a redirect, a timeout, a
    refused or unsafe address) is retried on RETRY_DELAYS_SECONDS
    (never sooner than a Retry-After asks); when the schedule is spent the delivery fails. An
    endpoint failing every attempt for DISABLE_AFTER_FAILING_DAYS, or every attempt of
    DISABLE_AFTER_FAILED_EVENTS events in a row, is disabled.
    """
    delivery = (
        WebhookDelivery.objects.select_related("webhook", "event")
        .filter(pk=delivery_id, status=WebhookDelivery.Status.PENDING)
        .first()
    )
    if delivery is None:
        return None
    webhook = delivery.webhook
    if not webhook.active and delivery.event.type != TEST_EVENT:
        delivery.status = WebhookDelivery.Status.FAILED
        delivery.next_attempt_at = None
        delivery.error = "The endpoint is disabled."
        _attempt_save(delivery, ["status", "next_attempt_at", "error", "updated_at"])
        return delivery

    started = time.monotonic()
    response, error = _post(webhook, delivery.event)
    now = timezone.now()
    delivery.attempt += 1
    delivery.status_code = response.status if response else None
    delivery.duration_ms = response.duration_ms if response else int((time.monotonic() - started) * 1000)
    delivery.response_excerpt = (
        response.body.decode("utf-8", errors="replace")[: conf.RESPONSE_EXCERPT_CHARS] if response else ""
    )
    delivery.error = error
    delivery.next_attempt_at = None
    succeeded = response is not None and 200 <= response.status < 300
    if succeeded:
        delivery.status = WebhookDelivery.Status.SUCCEEDED
        if webhook.consecutive_failures or webhook.failing_since:
            Webhook.objects.filter(pk=webhook.pk).update(consecutive_failures=0, failing_since=None)
    elif response is not None and response.status == 410:
        delivery.status = WebhookDelivery.Status.FAILED
        delivery.error = delivery.error or "The endpoint answered 410 Gone: it is disabled."
        _disable(webhook, "The endpoint answered 410 Gone.")
    else:
        delay = _next_delay(
            delivery.attempt, _retry_after_seconds(response.headers.get("retry-after") if response else None)
        )
        if delay is None:
            delivery.status = WebhookDelivery.Status.FAILED
            Webhook.objects.filter(pk=webhook.pk).update(consecutive_failures=F("consecutive_failures") + 1)
        else:
            delivery.next_attempt_at = now + timedelta(seconds=delay)
        Webhook.objects.filter(pk=webhook.pk, failing_since__isnull=True).update(failing_since=now)
        # The owner may have deleted the endpoint while the request was out: then nothing to disable.
        counts = Webhook.objects.filter(pk=webhook.pk).values_list("consecutive_failures", "failing_since").first()
        if counts is not None:
            failures, failing_since = counts
            if failures >= conf.DISABLE_AFTER_FAILED_EVENTS:
                _disable(webhook, f"Every attempt of the last {failures} events failed.")
            elif failing_since and now - failing_since > timedelta(days=conf.DISABLE_AFTER_FAILING_DAYS):
                _disable(webhook, f"Every attempt failed for more than {conf.DISABLE_AFTER_FAILING_DAYS} days.")
    _attempt_save(
        delivery,
        [
            "status",
            "attempt",
            "next_attempt_at",
            "status_code",
            "duration_ms",
            "response_excerpt",
            "error",
            "updated_at",
        ],
    )
    return delivery


def _attempt_save(delivery: WebhookDelivery, fields: list[str]) -> None:
    """Save an attempt's outcome and count it (GET /metrics) in one transaction: succeeded,
    retry (still pending: another attempt is scheduled) or failed (given up)."""
    outcome = "retry" if delivery.status == WebhookDelivery.Status.PENDING else str(delivery.status)
    totals = Totals()
    totals.count(WEBHOOK_DELIVERY_ATTEMPTS, outcome=outcome)
    delivery.updated_at = timezone.now()
    with transaction.atomic():
        # An update, not save(update_fields=...): a delivery deleted with its endpoint during the
        # attempt is no error (save would raise on the missing row).
        WebhookDelivery.objects.filter(pk=delivery.pk).update(**{name: getattr(delivery, name) for name in fields})
        totals.save()


def _claim_due(limit: int) -> list[uuid.UUID]:
    """Take up to ``limit`` due deliveries for this caller: each is leased (its next attempt
    moved past the time an attempt takes), so a second sweeper running at once skips it."""
    now = timezone.now()
    with transaction.atomic():
        due = WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now)
        ids = list(
            due.order_by("next_attempt_at").select_for_update(skip_locked=True).values_list("pk", flat=True)[:limit]
        )
        if ids:
            WebhookDelivery.objects.filter(pk__in=ids).update(
                next_attempt_at=now + timedelta(seconds=conf.lease_seconds())
            )
    return ids


def deliveries_run_due(*, limit: int = conf.DUE_BATCH) -> int:
    """Attempt every due delivery here, one after the other (the embedded default's thread and
    ``manage.py deliver_webhooks``); returns how many were attempted."""
    ids = _claim_due(limit)
    for pk in ids:
        delivery_attempt(delivery_id=pk)
    return len(ids)


def deliveries_queue_due(*, limit: int = conf.DUE_BATCH) -> int:
    """Hand every due delivery to the workers (Celery beat, every SWEEP_INTERVAL_SECONDS)."""
    from .tasks import deliver

    ids = _claim_due(limit)
    for pk in ids:
        deliver.delay(str(pk))
    return len(ids)


def events_prune(*, before: datetime, batch: int = conf.PRUNE_BATCH) -> int:
    """Delete up to ``batch`` events created before ``before`` with their deliveries, oldest first,
    except events with a delivery still pending (its retries are not cut short); how many went."""
    ids = list(
        WebhookEvent.objects.filter(created_at__lt=before)
        .exclude(deliveries__status=WebhookDelivery.Status.PENDING)
        .order_by("created_at")
        .values_list("pk", flat=True)[:batch]
    )
    if not ids:
        return 0
    with transaction.atomic():
        WebhookDelivery.objects.filter(event_id__in=ids).delete()
        WebhookEvent.objects.filter(pk__in=ids).delete()
    return len(ids)


# --- Incoming -----------------------------------------------------------------------------------


def incoming_endpoint_create(*, owner: User, thread_id: Any, kind: str = "generic") -> IncomingEndpoint:
    """An endpoint posting to one of ``owner``'s threads (NotFound for anyone else's), with a
    new secret. ``kind`` names a handler (``webhooks.incoming``)."""
    thread = thread_get(user=owner, thread_id=thread_id)
    if kind not in HANDLERS:
        raise InvalidInput.field("kind", f'Unknown kind "{kind}": use one of {", ".join(HANDLERS)}.')
    if IncomingEndpoint.objects.filter(owner=owner).count() >= INCOMING_PER_USER:
        raise InvalidInput.field("thread", f"You have {INCOMING_PER_USER} incoming webhooks already: delete one first.")
    return IncomingEndpoint.objects.create(owner=owner, thread=thread, kind=kind, secret=signing.secret_new())


def incoming_endpoint_delete(*, endpoint: IncomingEndpoint) -> None:
    endpoint.delete()


def _incoming_endpoint(endpoint_id: Any) -> IncomingEndpoint:
    pk = parse_uuid(endpoint_id)
    endpoint = (
        IncomingEndpoint.objects.select_related("thread", "owner")
        .filter(pk=pk, owner__is_active=True)
        .exclude(thread__status=ChatThread.Status.DELETED)
        .first()
        if pk
        else None
    )
    if endpoint is None:
        raise NotFound("No such incoming webhook.")
    return endpoint


def incoming_receive(*, endpoint_id: Any, headers: dict[str, str], body: bytes) -> tuple[ChatMessage | None, bool]:
    """Post a signed request as a user message of the endpoint's owner to its thread.

    Raises NotFound (unknown endpoint), ``signing.SignatureError`` (bad, missing or stale
    signature), InvalidInput (bad body) and RateLimited, all before anything is stored. The same
    delivery id twice stores one message: ``(message, created)``; ``(None, False)`` for an event
    the handler ignores (a GitHub ping).
    """
    endpoint = _incoming_endpoint(endpoint_id)
    headers = {key.lower(): value for key, value in headers.items()}
    incoming: Incoming | None = HANDLERS[endpoint.kind](
        secret=endpoint.secret, headers=headers, body=body, now=time.time()
    )
    if incoming is None:
        return None, False
    metadata = {**incoming.metadata, "incoming_webhook": {"endpoint": str(endpoint.pk), "kind": endpoint.kind}}
    return message_send(
        thread=endpoint.thread,
        sender=endpoint.owner,
        content=incoming.content,
        metadata=metadata,
        client_id="webhook-" + hashlib.sha256(incoming.delivery_id.encode()).hexdigest()[:48],
        reply=incoming.reply,
    )

"""The webhooks app's settings, read once, with their defaults."""

from __future__ import annotations

from django.conf import settings

# Seconds to wait before each attempt after the first: immediately, 5 s, 5 min, 30 min, 2 h, 5 h,
# 10 h, 10 h (about 1.6 days in all). Each wait gets +/- JITTER of itself at random.
RETRY_DELAYS_SECONDS = (0, 5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)
JITTER = 0.1
# A Retry-After longer than this is capped (an endpoint cannot park a delivery for weeks).
RETRY_AFTER_MAX_SECONDS = 24 * 3600
# An endpoint is disabled when every attempt has failed for this long, or when this many
# events in a row have failed every attempt, or at once on 410 Gone.
DISABLE_AFTER_FAILING_DAYS = 5
DISABLE_AFTER_FAILED_EVENTS = 50
# After a rotation the old secret still signs (a second signature) for this long.
ROTATION_GRACE_SECONDS = 24 * 3600
# Incoming requests: the timestamp must be this close to now.
TIMESTAMP_TOLERANCE_SECONDS = 5 * 60
# How much of a receiver's answer is kept on the delivery.
RESPONSE_EXCERPT_CHARS = 1000
# Due deliveries taken per run of the periodic job.
DUE_BATCH = 100
# The retention prune runs with the other periodic jobs but acts at most this often (all processes
# together: the cache is shared on the production stack), deleting at most PRUNE_BATCH events a batch.
PRUNE_EVERY_SECONDS = 600
PRUNE_BATCH = 5000
PRUNE_BATCHES_PER_RUN = 20
USER_AGENT = "ChatServer-Webhooks/1.0 (+https://www.standardwebhooks.com)"


def timeout_seconds() -> int:
    return int(settings.WEBHOOK_TIMEOUT_SECONDS)


def event_retention_days() -> int:
    return int(settings.WEBHOOK_EVENT_RETENTION_DAYS)


def allow_private() -> bool:
    return bool(settings.WEBHOOKS_ALLOW_PRIVATE)


def allow_http() -> bool:
    """Plain http only where the site itself runs in DEBUG (or private addresses are allowed)."""
    return bool(settings.DEBUG or settings.WEBHOOKS_ALLOW_PRIVATE)


def lease_seconds() -> int:
    """A claimed delivery is taken again by the periodic job if no attempt finished in this time."""
    return timeout_seconds() + 60

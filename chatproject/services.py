"""Writes of the project-wide parts (accounts' API tokens)."""

from __future__ import annotations

from django.contrib.auth.models import User


def api_token_get(*, user: User) -> str:
    """The user's API token (DRF authtoken: one per user), created on first use. The same one the
    token endpoint returns and ``create_token`` prints; signing out elsewhere does not change it."""
    from rest_framework.authtoken.models import Token

    token, _ = Token.objects.get_or_create(user=user)
    key: str = token.key
    return key

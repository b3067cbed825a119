"""``manage.py quota USER``: a user's daily limits and what they used today; sets their own limits."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from chatproject.cli import table, usage_error, user_named, write_json
from chatproject.errors import InvalidInput
from messaging.selectors import quota_usage_get
from messaging.services import QUOTA_DEFAULT, QUOTA_UNLIMITED, QuotaSetting, user_quota_set


def _setting(value: str | None, flag: str) -> QuotaSetting | None:
    """``N``, ``none``/``unlimited`` or ``default`` as ``user_quota_set`` takes it; None when not given."""
    if value is None:
        return None
    word = value.strip().lower()
    if word in {"none", QUOTA_UNLIMITED}:
        return QUOTA_UNLIMITED
    if word == QUOTA_DEFAULT:
        return QUOTA_DEFAULT
    if word.isdigit():
        return int(word)
    raise usage_error(f"{flag} takes a whole number, none (unlimited) or default, not {value!r}.")


def _limit(limit: int | None) -> str:
    return "unlimited" if limit is None else str(limit)


class Command(BaseCommand):
    help = (
        "Show USER's daily limits and what they used today (UTC day); --replies/--tokens set the user's own "
        "limit: a number, none (unlimited) or default (the site's USER_DAILY_REPLY_LIMIT / USER_DAILY_TOKEN_LIMIT)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("user", help="A username.")
        parser.add_argument("--replies", metavar="N|none|default", help="The user's AI replies a day.")
        parser.add_argument("--tokens", metavar="N|none|default", help="The user's tokens a day.")
        parser.add_argument("--json", action="store_true", help="One JSON document instead of a table.")

    def handle(self, *args: Any, user: str, replies: str | None, tokens: str | None, json: bool, **options: Any):
        person = user_named(user)
        new_replies, new_tokens = _setting(replies, "--replies"), _setting(tokens, "--tokens")
        if new_replies is not None or new_tokens is not None:
            try:
                user_quota_set(user=person, replies=new_replies, tokens=new_tokens)
            except InvalidInput as exc:
                raise usage_error(exc.message) from None
        usage = quota_usage_get(user_id=person.pk)
        reached = usage.reached()
        if json:
            data = usage.as_dict()
            write_json(
                self.stdout,
                {
                    "user": person.get_username(),
                    **data,
                    "day_start": usage.day_start.isoformat(),
                    "resets_at": usage.resets_at.isoformat(),
                    "reached": reached,
                },
            )
            return
        table(
            self.stdout,
            ["limit", "used today", "per day", "reached"],
            [
                ("replies", usage.replies_used, _limit(usage.replies_limit), "yes" if "replies" in reached else ""),
                ("tokens", usage.tokens_used, _limit(usage.tokens_limit), "yes" if "tokens" in reached else ""),
            ],
            title=f"Daily quota of {person.get_username()} (resets at {usage.resets_at:%Y-%m-%d %H:%M} UTC)",
            value_styles={"reached": {"yes": "red"}},
        )

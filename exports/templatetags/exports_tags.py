"""``{% export_menu label action %}``: the export menu of the chat page and the thread list,
offering every registered format."""

from __future__ import annotations

from typing import Any

from django import template

from exports.formats import FORMATS

register = template.Library()


@register.inclusion_tag("exports/export_menu.html")
def export_menu(label: str, action: str, zip_default: bool = False) -> dict[str, Any]:
    return {"label": label, "action": action, "zip_default": zip_default, "formats": FORMATS.values()}

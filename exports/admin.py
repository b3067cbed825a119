from django.contrib import admin

from .models import ImportJob


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    """Read-only: a job is a record of an import (``manage.py import_jobs --run`` finishes a stuck one)."""

    list_display = [
        "id",
        "owner",
        "filename",
        "kind",
        "status",
        "conversations_done",
        "conversations_total",
        "created_at",
    ]
    list_filter = ["status", "kind"]
    search_fields = ["id", "filename", "owner__username"]
    list_select_related = ["owner"]

    def has_add_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

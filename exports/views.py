"""The import page: an upload form, then the result, or a large import's progress."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from chatproject.errors import DomainError, NotFound

from .services import import_job_get, import_job_payload, import_upload


def _context(**values: object) -> dict:
    return {"max_bytes": settings.MAX_IMPORT_BYTES, "error": "", "job": None, "result": None, **values}


@login_required
def import_page(request: HttpRequest) -> HttpResponse:
    context: dict = _context()
    if request.method == "POST":
        upload = request.FILES.get("file")
        try:
            started = import_upload(user=request.user, upload=upload)
            if started.job is not None:
                return redirect("import-job-page", job_id=started.job.pk)
            context["result"] = started.result
        except DomainError as exc:
            context["error"] = exc.message
    return render(request, "exports/import.html", context, status=400 if context["error"] else 200)


@login_required
def import_job_page(request: HttpRequest, job_id: str) -> HttpResponse:
    try:
        job = import_job_get(user=request.user, job_id=job_id)
    except NotFound:
        return render(request, "exports/import.html", _context(error="Import not found."), status=404)
    return render(request, "exports/import.html", _context(job=import_job_payload(job)))

"""The import page: an upload form, then the result, or a large import's progress."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from chatproject.errors import DomainError, NotFound, PayloadTooLarge

from .selectors import import_job_list
from .services import import_job_get, import_job_payload, import_upload

# Background imports listed on the import page (all of them: GET /api/import/jobs/).
RECENT_JOBS = 10


def _context(**values: object) -> dict:
    return {"max_bytes": settings.MAX_IMPORT_BYTES, "error": "", "job": None, "result": None, "recent": [], **values}


@login_required
def import_page(request: HttpRequest) -> HttpResponse:
    context: dict = _context()
    status = 200
    if request.method == "POST":
        upload = request.FILES.get("file")
        try:
            started = import_upload(user=request.user, upload=upload)
            if started.job is not None:
                return redirect("import-job-page", job_id=started.job.pk)
            context["result"] = started.result
        except DomainError as exc:
            context["error"] = exc.message
            status = 413 if isinstance(exc, PayloadTooLarge) else 400
    jobs = import_job_list(user=request.user)[:RECENT_JOBS]
    context["recent"] = [import_job_payload(job, results=False) for job in jobs]
    return render(request, "exports/import.html", context, status=status)


@login_required
def import_job_page(request: HttpRequest, job_id: str) -> HttpResponse:
    try:
        job = import_job_get(user=request.user, job_id=job_id)
    except NotFound:
        return render(request, "exports/import.html", _context(error="Import not found."), status=404)
    return render(request, "exports/import.html", _context(job=import_job_payload(job)))

"""The import page: an upload form, then the result, or a large import's progress."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from chatproject.errors import DomainError, NotFound

from .services import (
    import_file_open,
    import_job_create,
    import_job_get,
    import_job_payload,
    import_runs_in_background,
    threads_import,
)


def _context(**values: object) -> dict:
    return {"max_bytes": settings.MAX_IMPORT_BYTES, "error": "", "job": None, "result": None, **values}


@login_required
def import_page(request: HttpRequest) -> HttpResponse:
    context: dict = _context()
    if request.method == "POST":
        upload = request.FILES.get("file")
        try:
            if upload is None:
                raise DomainError("Choose a file to import.")
            file = import_file_open(stream=upload, size=upload.size)
            if import_runs_in_background(file):
                job = import_job_create(user=request.user, file=file, filename=upload.name or "", stream=upload)
                return redirect("import-job-page", job_id=job.pk)
            context["result"] = threads_import(user=request.user, file=file)
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

"""``?profile=1``: a pyinstrument report of one request instead of its response, for staff only.

Only when PROFILING_ENABLED is on, and only for an active staff user; for everyone else (and when
it is off) the parameter is ignored and the normal response goes out. (Recording processes over
time is py-spy's job: dashboard.services.)
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

# pyinstrument's report is one HTML file with inline script and style: allowed for it alone.
REPORT_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def _is_staff(user: object) -> bool:
    return bool(getattr(user, "is_active", False) and getattr(user, "is_staff", False))


class RequestProfilerMiddleware:
    """Runs the rest of the chain under pyinstrument when a staff user asks for ``?profile=1``.

    Session users are known before the view; API clients' tokens only after DRF authenticated
    them (DRF sets the user on this request), so a request carrying credentials is profiled and
    the report goes out only if its user turns out to be staff.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not settings.PROFILING_ENABLED or request.GET.get("profile") != "1":
            return self.get_response(request)
        if not (_is_staff(getattr(request, "user", None)) or "HTTP_AUTHORIZATION" in request.META):
            return self.get_response(request)
        from pyinstrument import Profiler

        profiler = Profiler(async_mode="disabled")
        profiler.start()
        try:
            response = self.get_response(request)
        finally:
            profiler.stop()
        if not _is_staff(getattr(request, "user", None)):
            return response
        report = HttpResponse(profiler.output_html(), content_type="text/html; charset=utf-8")
        report["Content-Security-Policy"] = REPORT_POLICY
        report["Cache-Control"] = "no-store"
        return report

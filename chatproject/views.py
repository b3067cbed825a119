from collections.abc import Callable
from functools import wraps

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.defaults import page_not_found

from .errors import LoginThrottled
from .logins import client_address, login_attempt_check


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """API clients get JSON for unknown URLs too; people get the HTML page."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return page_not_found(request, exception)


def login_throttled(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A log-in page that answers 429 while the username or the address is locked out."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method == "POST":
            try:
                login_attempt_check(username=request.POST.get("username"), address=client_address(request))
            except LoginThrottled as exc:
                response = render(request, "registration/login_throttled.html", {"message": exc.message}, status=429)
                response["Retry-After"] = str(exc.retry_after)
                return response
        return view(request, *args, **kwargs)

    return wrapped

"""Outages of the database or Redis answer 503 with Retry-After, mapped once for the whole API."""

import pytest
import redis.exceptions
from django.db import InterfaceError, OperationalError

from chatproject.errors import ServiceUnavailable, api_exception_handler, as_domain_error


@pytest.mark.parametrize(
    "outage",
    [
        OperationalError("server closed the connection unexpectedly"),
        InterfaceError("connection already closed"),
        redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused."),
        redis.exceptions.TimeoutError("Timeout reading from 127.0.0.1:6379"),
    ],
)
def test_an_outage_answers_503_with_retry_after(outage):
    response = api_exception_handler(outage, {})
    assert response.status_code == 503
    assert response.data["code"] == "service_unavailable" and response.data["detail"]
    assert set(response.data) == {"detail", "code"}
    assert response["Retry-After"] == "5"
    assert isinstance(as_domain_error(outage), ServiceUnavailable)


def test_a_bug_is_not_an_outage():
    assert as_domain_error(ValueError("a bug")) is None
    assert api_exception_handler(ValueError("a bug"), {}) is None  # DRF re-raises: a 500

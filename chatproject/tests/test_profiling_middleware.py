"""``?profile=1``: a pyinstrument report for staff when PROFILING_ENABLED, the normal response otherwise."""

import pytest

from conftest import token_client
from threads.tests.factories import make_user

pytestmark = pytest.mark.django_db


def is_report(response) -> bool:
    return response["Content-Type"].startswith("text/html") and b"pyinstrument" in response.content


@pytest.fixture
def staff(db):
    return make_user("root", is_staff=True)


def test_staff_get_a_report_of_a_page_when_enabled(client, staff, settings):
    settings.PROFILING_ENABLED = True
    client.force_login(staff)
    response = client.get("/dashboard/?profile=1")
    assert response.status_code == 200 and is_report(response)
    # The report is its own inline script: allowed for it alone, and never cached.
    assert "script-src 'unsafe-inline'" in response["Content-Security-Policy"]
    assert response["Cache-Control"] == "no-store"
    # The profiled view is in it.
    assert b"dashboard_page" in response.content


def test_staff_with_a_token_get_a_report_of_an_api_call(staff, settings):
    settings.PROFILING_ENABLED = True
    response = token_client(staff).get("/api/me/?profile=1")
    assert response.status_code == 200 and is_report(response)
    assert b"MeApi" in response.content


def test_without_the_parameter_staff_get_the_page(client, staff, settings):
    settings.PROFILING_ENABLED = True
    client.force_login(staff)
    for url in ("/dashboard/", "/dashboard/?profile=0"):
        response = client.get(url)
        assert not is_report(response) and b'id="dashboard-config"' in response.content


def test_disabled_staff_get_the_normal_response(client, staff, settings):
    settings.PROFILING_ENABLED = False
    client.force_login(staff)
    response = client.get("/dashboard/?profile=1")
    assert response.status_code == 200 and not is_report(response)
    assert b'id="dashboard-config"' in response.content
    api = token_client(staff).get("/api/me/?profile=1")
    assert api.json()["username"] == "root"


def test_others_get_the_normal_response(client, user, settings, anon_api):
    settings.PROFILING_ENABLED = True
    me = token_client(user).get("/api/me/?profile=1")
    assert me.status_code == 200 and me.json()["username"] == "alice"
    client.force_login(user)
    page = client.get("/?profile=1")
    assert page.status_code == 200 and not is_report(page)
    assert anon_api.get("/api/me/?profile=1").status_code == 401
    client.logout()
    assert client.get("/?profile=1").status_code == 302

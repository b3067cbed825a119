import json

import pytest

from threads.tests.factories import make_user

pytestmark = pytest.mark.django_db


def test_staff_get_the_page_with_its_script_and_config(client):
    client.force_login(make_user("root", is_staff=True))
    page = client.get("/dashboard/").content.decode()
    assert 'src="/static/js/dashboard.js"' in page and 'src="/static/vendor/d3.min.js"' in page
    config = json.loads(page.split('id="dashboard-config" type="application/json">')[1].split("</script>")[0])
    assert config["windows"] == ["1h", "24h", "7d"] and config["refreshSeconds"] > 0
    assert "<script>" not in page  # CSP: no inline script


def test_other_users_get_404_and_anonymous_the_login_page(client, user):
    assert client.get("/dashboard/").status_code == 302
    client.force_login(user)
    assert client.get("/dashboard/").status_code == 404

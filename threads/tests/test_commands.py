from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_ensure_demo_user_creates_once_and_prints_credentials():
    out = StringIO()
    call_command("ensure_demo_user", stdout=out)
    assert "username 'demo', password 'demo-password'" in out.getvalue()
    call_command("ensure_demo_user", stdout=out)
    assert get_user_model().objects.count() == 1

"""Readiness is checked against real services; a "down" service is a real unreachable address."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
DEAD_POSTGRES = "postgres://postgres@127.0.0.1:1/nothing"
DEAD_REDIS = "redis://127.0.0.1:1/0"


def readyz_in_fresh_process(**env: str) -> tuple[int, dict, str]:
    """GET /readyz (anonymous) in a new Django process configured by ``env``, as a deployment
    would be: the status, the body and what the process logged."""
    script = (
        "import django, json; django.setup();"
        "from django.test import Client;"
        "r = Client().get('/readyz');"
        "print(json.dumps({'status': r.status_code, 'body': r.json()}))"
    )
    full_env = {**os.environ, "DJANGO_SETTINGS_MODULE": "chatproject.settings", "DEBUG": "1", **env}
    full_env["ALLOWED_HOSTS"] = "testserver"
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=60, check=True
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["status"], result["body"], out.stderr


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_ok_names_each_check(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    expected = {"database": "ok", **({"redis": "ok"} if settings.REDIS_URL else {})}
    assert response.json() == {"status": "ok", "checks": expected, "code_sandbox": {"mode": "bwrap", "active": True}}


def test_readyz_with_the_database_down_is_503_naming_it_but_not_why():
    status, body, log = readyz_in_fresh_process(DATABASE_URL=DEAD_POSTGRES, REDIS_URL="")
    assert status == 503
    assert body["failing"] == ["database"] and body["checks"] == {"database": "unavailable"}
    # Why is for operators: in the log, not in the answer to anyone who asks.
    assert "readiness check database failed: OperationalError" in log and "127.0.0.1" in log


def test_readyz_with_redis_down_is_503_naming_it_but_not_why(tmp_path):
    status, body, log = readyz_in_fresh_process(REDIS_URL=DEAD_REDIS, DATABASE_URL="", VAR_DIR=str(tmp_path))
    assert status == 503
    assert body["failing"] == ["redis"] and body["checks"] == {"database": "ok", "redis": "unavailable"}
    assert "readiness check redis failed: ConnectionError" in log


@pytest.mark.django_db
def test_readyz_tells_staff_why_a_check_fails(client, settings):
    from threads.tests.factories import make_user

    settings.REDIS_URL = DEAD_REDIS  # the check reads it each time: a real unreachable Redis
    anonymous = client.get("/readyz")
    assert anonymous.status_code == 503 and anonymous.json()["checks"]["redis"] == "unavailable"
    assert b"ConnectionError" not in anonymous.content and b"127.0.0.1" not in anonymous.content

    client.force_login(make_user("plain"))
    assert client.get("/readyz").json()["checks"]["redis"] == "unavailable"

    client.force_login(make_user("operator", is_staff=True))
    staff = client.get("/readyz").json()
    assert staff["failing"] == ["redis"] and staff["checks"]["database"] == "ok"
    assert "ConnectionError" in staff["checks"]["redis"]


@pytest.mark.django_db
def test_readyz_says_which_code_sandbox_is_active(client, settings):
    from threads.tests.factories import make_user

    assert client.get("/readyz").json()["code_sandbox"] == {"mode": "bwrap", "active": True}
    settings.CODE_SANDBOX_BWRAP = "/nonexistent/bwrap"
    # Not a readiness failure: everything but code execution works, and that is refused.
    response = client.get("/readyz")
    assert response.status_code == 200 and response.json()["code_sandbox"] == {"mode": "bwrap", "active": False}
    client.force_login(make_user("operator", is_staff=True))
    assert (
        client.get("/readyz").json()["code_sandbox"]["detail"]
        == "bubblewrap (bwrap) is not installed at /nonexistent/bwrap"
    )
    settings.CODE_SANDBOX = "unsafe-process"
    assert client.get("/readyz").json()["code_sandbox"]["detail"].startswith("UNSAFE")

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


def readyz_in_fresh_process(**env: str) -> tuple[int, dict]:
    """GET /readyz in a new Django process configured by ``env``, as a deployment would be."""
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
    return result["status"], result["body"]


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_ok_names_each_check(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    expected = {"database": "ok", **({"redis": "ok"} if settings.REDIS_URL else {})}
    assert response.json() == {"status": "ok", "checks": expected}


def test_readyz_with_the_database_down_is_503_naming_it():
    status, body = readyz_in_fresh_process(DATABASE_URL=DEAD_POSTGRES, REDIS_URL="")
    assert status == 503
    assert body["status"] == "unavailable" and body["failing"] == ["database"]
    assert "OperationalError" in body["checks"]["database"]


def test_readyz_with_redis_down_is_503_naming_it(tmp_path):
    status, body = readyz_in_fresh_process(REDIS_URL=DEAD_REDIS, DATABASE_URL="", VAR_DIR=str(tmp_path))
    assert status == 503
    assert body["failing"] == ["redis"]
    assert body["checks"]["database"] == "ok"
    assert "ConnectionError" in body["checks"]["redis"]

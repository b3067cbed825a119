"""The API against its own OpenAPI schema: schemathesis, every check, on a live server.

It generates valid and invalid requests for every operation in ``/api/schema/`` (and chains them
through the links it infers: create a thread, then read, patch and post to it) and fails on any
answer the schema does not document, any schema-violating request accepted, any schema-valid
request refused, any 5xx. Runs on whichever configuration the suite runs on.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from chatproject.testing import Stack

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CONFIG = Path(__file__).with_name("schemathesis.toml")
LIMITS = {
    # The fuzzer sends thousands of requests from one user: the limits under test elsewhere would
    # answer most of them with 429 (documented, so not a failure, but it would test little else).
    "MESSAGE_RATE_LIMIT": "100000/60",
    "LOGIN_FAILURE_LIMIT": "100000/60",
    "MAX_CONCURRENT_REPLIES": "1000",
    "AGENT_OFFLINE_WORD_DELAY_MS": "0",
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with Stack(tmp_path_factory.mktemp("contract"), env=LIMITS) as stack:
        yield stack


def token(stack: Stack) -> str:
    [person] = stack.create_users(1)
    return person["token"]


@pytest.mark.skipif(not SCHEMATHESIS.exists(), reason="schemathesis is in requirements-dev.txt")
def test_schemathesis_finds_no_failure(stack, tmp_path):
    key = token(stack)
    result = subprocess.run(
        [
            str(SCHEMATHESIS),
            "--config-file",
            str(CONFIG),
            "run",
            stack.http_url(0, "/api/schema/"),
            "--checks",
            "all",
            "--header",
            f"Authorization: Token {key}",
            "--max-examples",
            "25",
            "--seed",
            "20261125",
            "--generation-database",
            "none",
            "--no-color",
            "--report-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-20000:] + "\n" + stack.logs_text()
    assert "No issues found" in output or " passed" in output
    # It tested every operation the schema lists, authenticated.
    schema = json.loads(
        urllib.request.urlopen(
            urllib.request.Request(
                stack.http_url(0, "/api/schema/?format=json"), headers={"Accept": "application/json"}
            )
        ).read()
    )
    operations = sum(len(item) for item in schema["paths"].values())
    assert f"{operations} selected / {operations} total" in output, output[:2000]
    shutil.rmtree(tmp_path, ignore_errors=True)

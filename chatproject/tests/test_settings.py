import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def import_settings(**env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG", "DATABASE_URL"}}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", "import chatproject.settings"], cwd=ROOT, env=full_env, capture_output=True, text=True
    )


def test_refuses_to_start_without_secret_key_unless_debug():
    result = import_settings(DEBUG="0")
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr
    assert import_settings(DEBUG="1").returncode == 0
    assert import_settings(DEBUG="0", SECRET_KEY="s" * 50).returncode == 0


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL must be a postgres"),
        ({"DEBUG": "maybe"}, "DEBUG must be a boolean"),
        ({"MAX_MESSAGE_CHARS": "lots"}, "MAX_MESSAGE_CHARS must be an integer"),
        ({"CODE_MEMORY_BYTES": "-1"}, "CODE_MEMORY_BYTES must be at least 1, got -1"),
        ({"CODE_CPU_SECONDS": "0"}, "CODE_CPU_SECONDS must be at least 1, got 0"),
        ({"AGENT_MAX_RETRIES": "-2"}, "AGENT_MAX_RETRIES must be at least 0, got -2"),
        ({"WEB_SEARCH_PROVIDER": "serpapi"}, "WEB_SEARCH_PROVIDER=serpapi needs SERPAPI_API_KEY"),
        ({"WEB_SEARCH_PROVIDER": "bing"}, "WEB_SEARCH_PROVIDER must be one of off, duckduckgo, serpapi, got 'bing'"),
        ({"WEBSOCKET_FRAME_RATE_LIMIT": "many"}, "WEBSOCKET_FRAME_RATE_LIMIT must look like COUNT/SECONDS"),
        ({"WEBSOCKET_FRAME_RATE_LIMIT": "0/10"}, "WEBSOCKET_FRAME_RATE_LIMIT must allow at least 1 frame"),
        (
            {"MAX_UPLOAD_BYTES": "3000", "MAX_MESSAGE_CHARS": "100", "WEBSOCKET_BYTE_RATE_LIMIT": "69000/60"},
            "WEBSOCKET_BYTE_RATE_LIMIT must allow at least one frame of WEBSOCKET_MAX_FRAME_BYTES (70736 characters",
        ),
        ({"WEBSOCKET_MAX_PENDING_FRAMES": "0"}, "WEBSOCKET_MAX_PENDING_FRAMES must be at least 1, got 0"),
    ],
)
def test_bad_configuration_is_a_clear_error(env, message):
    result = import_settings(**{"DEBUG": "1", **env})
    assert result.returncode != 0
    assert message in result.stderr

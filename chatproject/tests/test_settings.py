import json
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
        ({"WEBSOCKET_FRAME_RATE_LIMIT": "0/10"}, "WEBSOCKET_FRAME_RATE_LIMIT must look like COUNT/SECONDS"),
        (
            {"MAX_UPLOAD_BYTES": "3000", "MAX_MESSAGE_CHARS": "100", "WEBSOCKET_BYTE_RATE_LIMIT": "69000/60"},
            "WEBSOCKET_BYTE_RATE_LIMIT must allow at least one frame of WEBSOCKET_MAX_FRAME_BYTES (70736 characters",
        ),
        ({"WEBSOCKET_MAX_PENDING_FRAMES": "0"}, "WEBSOCKET_MAX_PENDING_FRAMES must be at least 1, got 0"),
        ({"WEBSOCKET_REPLAY_LIMIT": "0"}, "WEBSOCKET_REPLAY_LIMIT must be at least 1, got 0"),
        ({"LOGIN_FAILURE_LIMIT": "0/60"}, "LOGIN_FAILURE_LIMIT must look like COUNT/SECONDS"),
        ({"SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto"}, "SECURE_PROXY_SSL_HEADER must look like"),
        ({"THREAD_SUMMARY_MAX_CHARS": "500"}, "THREAD_SUMMARY_MAX_CHARS must be at least 1000, got 500"),
        ({"HSTS_SECONDS": "-1"}, "HSTS_SECONDS must be at least 0, got -1"),
        ({"USER_DAILY_REPLY_LIMIT": "-1"}, "USER_DAILY_REPLY_LIMIT must be at least 0, got -1"),
        ({"USER_DAILY_TOKEN_LIMIT": "1e6"}, "USER_DAILY_TOKEN_LIMIT must be an integer, got '1e6'"),
        (
            {"REDIS_URL": "redis://127.0.0.1:1/0", "CHANNEL_LAYER_BACKEND": "kafka"},
            "CHANNEL_LAYER_BACKEND must be one of core, pubsub, got 'kafka'",
        ),
        ({"METRICS_TOKEN": "too-short"}, "METRICS_TOKEN must be at least 16 characters long, got 9"),
    ],
)
def test_bad_configuration_is_a_clear_error(env, message):
    result = import_settings(**{"DEBUG": "1", **env})
    assert result.returncode != 0
    assert message in result.stderr


def settings_values(*names: str, **env: str) -> dict:
    """The named settings as a fresh process configured by ``env`` computes them."""
    code = (
        "import json, chatproject.settings as s; "
        f"print(json.dumps({{n: getattr(s, n, None) for n in {list(names)!r}}}))"
    )
    full_env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG", "DATABASE_URL"}}
    full_env.update(env)
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=full_env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_production_sends_hsts_for_a_year_unless_tuned():
    names = ("SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD", "SECURE_REFERRER_POLICY")
    production = {"DEBUG": "0", "SECRET_KEY": "s" * 50}
    assert settings_values(*names, **production) == {
        "SECURE_HSTS_SECONDS": 31536000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": False,
        "SECURE_HSTS_PRELOAD": False,
        "SECURE_REFERRER_POLICY": "same-origin",
    }
    assert settings_values("SECURE_HSTS_SECONDS", DEBUG="1") == {"SECURE_HSTS_SECONDS": 0}
    assert settings_values("SECURE_HSTS_SECONDS", HSTS_SECONDS="0", **production) == {"SECURE_HSTS_SECONDS": 0}
    tuned = settings_values(*names[:3], HSTS_SECONDS="600", HSTS_INCLUDE_SUBDOMAINS="1", HSTS_PRELOAD="1", **production)
    assert tuned == {"SECURE_HSTS_SECONDS": 600, "SECURE_HSTS_INCLUDE_SUBDOMAINS": True, "SECURE_HSTS_PRELOAD": True}


def test_proxy_ssl_header_is_opt_in():
    assert settings_values("SECURE_PROXY_SSL_HEADER", DEBUG="1") == {"SECURE_PROXY_SSL_HEADER": None}
    assert settings_values(
        "SECURE_PROXY_SSL_HEADER", DEBUG="1", SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto: https"
    ) == {"SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"]}


def test_limits_follow_from_the_message_and_metadata_limits():
    values = settings_values(
        "REQUEST_MAX_BODY_BYTES", "LOGIN_FAILURE_LIMIT", DEBUG="1", MAX_MESSAGE_CHARS="1000", METADATA_MAX_BYTES="1000"
    )
    assert values == {"REQUEST_MAX_BODY_BYTES": 12 * 1000 + 3 * 1000 + 64 * 1024, "LOGIN_FAILURE_LIMIT": [10, 60]}


def test_daily_quotas_are_unlimited_unless_set():
    names = ("USER_DAILY_REPLY_LIMIT", "USER_DAILY_TOKEN_LIMIT")
    assert settings_values(*names, DEBUG="1") == {"USER_DAILY_REPLY_LIMIT": None, "USER_DAILY_TOKEN_LIMIT": None}
    values = settings_values(*names, DEBUG="1", USER_DAILY_REPLY_LIMIT=" 200 ", USER_DAILY_TOKEN_LIMIT="0")
    assert values == {"USER_DAILY_REPLY_LIMIT": 200, "USER_DAILY_TOKEN_LIMIT": 0}
    assert settings_values(*names[:1], DEBUG="1", USER_DAILY_REPLY_LIMIT="") == {"USER_DAILY_REPLY_LIMIT": None}


def test_every_process_tells_dspy_and_litellm_to_use_their_own_price_list():
    # Without it, the first model call of a process fetches LiteLLM's price list from GitHub.
    code = "import os, chatproject.settings; print(os.environ.get('LITELLM_LOCAL_MODEL_COST_MAP'))"
    env = {k: v for k, v in os.environ.items() if k not in {"LITELLM_LOCAL_MODEL_COST_MAP", "DATABASE_URL"}}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={**env, "DEBUG": "1"}, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


@pytest.mark.parametrize(
    ("backend", "expected"),
    [
        ("", "channels_redis.pubsub.RedisPubSubChannelLayer"),
        ("core", "channels_redis.core.RedisChannelLayer"),
        ("pubsub", "channels_redis.pubsub.RedisPubSubChannelLayer"),
    ],
)
def test_channel_layer_backend_chooses_the_channels_redis_layer(backend, expected):
    code = (
        "import json, chatproject.settings as s; layer = s.CHANNEL_LAYERS['default']; "
        "print(json.dumps([layer['BACKEND'], layer['CONFIG']['hosts'][0]['address'], sorted(layer['CONFIG'])]))"
    )
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG", "DATABASE_URL"}}
    env.update(DEBUG="1", REDIS_URL="redis://127.0.0.1:1/3", CHANNEL_LAYER_BACKEND=backend)
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    name, address, config = json.loads(result.stdout)
    assert (name, address) == (expected, "redis://127.0.0.1:1/3")
    # The pubsub layer has no capacity or expiry (its queues are in the process).
    assert config == (["hosts"] if expected.endswith("PubSubChannelLayer") else ["capacity", "expiry", "hosts"])


@pytest.mark.parametrize(("value", "disabled"), [("", False), ("1", True)])
def test_transaction_pooling_turns_server_side_cursors_off(value, disabled):
    values = settings_values(
        "DATABASES", DEBUG="1", DATABASE_URL="postgres://u@127.0.0.1:1/db", DATABASE_TRANSACTION_POOLING=value
    )
    assert values["DATABASES"]["default"]["DISABLE_SERVER_SIDE_CURSORS"] is disabled


def test_a_blank_prometheus_multiproc_dir_is_unset_and_a_set_one_is_created(tmp_path):
    code = (
        "import os, chatproject.settings as s; "
        "print(repr(s.PROMETHEUS_MULTIPROC_DIR), 'PROMETHEUS_MULTIPROC_DIR' in os.environ)"
    )
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG", "DATABASE_URL"}}
    blank = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**env, "DEBUG": "1", "PROMETHEUS_MULTIPROC_DIR": " "},
        capture_output=True,
        text=True,
    )
    assert blank.stdout.split() == ["''", "False"], blank.stderr
    folder = tmp_path / "prometheus" / "web"
    given = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**env, "DEBUG": "1", "PROMETHEUS_MULTIPROC_DIR": str(folder)},
        capture_output=True,
        text=True,
    )
    assert given.stdout.split() == [repr(str(folder)), "True"], given.stderr
    assert folder.is_dir()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"DEBUG": "1"}, "rich Formatter"),  # development: Rich's handler, coloured on a terminal
        ({"DEBUG": "0", "SECRET_KEY": "s" * 50}, "stream JsonFormatter"),  # production: JSON lines
        ({"DEBUG": "1", "LOG_FORMAT": "plain"}, "stream Formatter"),
    ],
)
def test_debug_logs_through_rich_and_production_in_json_lines(env, expected):
    """The root handler a process configured by ``env`` logs through, after django.setup()."""
    code = (
        "import django, logging; from rich.logging import RichHandler; django.setup(); "
        "handler = next(h for h in logging.getLogger().handlers if h.name == 'console'); "
        "print('rich' if isinstance(handler, RichHandler) else 'stream', type(handler.formatter).__name__)"
    )
    full_env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG", "DATABASE_URL", "LOG_FORMAT"}}
    full_env.update(env, DJANGO_SETTINGS_MODULE="chatproject.settings")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=full_env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == expected

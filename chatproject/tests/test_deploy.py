"""Checks on the files that deploy and document the project (no Docker engine runs here)."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_compose_file_parses_and_runs_web_worker_beat_db_redis():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert {"web", "worker", "beat", "db", "redis", "migrate"} <= set(compose["services"])
    assert compose["services"]["worker"]["command"][:3] == ["celery", "-A", "chatproject"]
    # The periodic sweeps come from beat, not from a shell loop around sweep_streams.
    assert compose["services"]["beat"]["command"][:4] == ["celery", "-A", "chatproject", "beat"]
    assert "sweeper" not in compose["services"]


def test_every_environment_variable_the_settings_read_is_documented():
    settings_source = (ROOT / "chatproject" / "settings.py").read_text()
    read = set(re.findall(r'env(?:_[a-z]+)?\(\s*"([A-Z_]+)"', settings_source))
    read |= set(re.findall(r'os\.environ\.get\(\s*"([A-Z_]+)"', settings_source))
    readme = (ROOT / "README.md").read_text()
    assert read, "the pattern found no variables"
    assert sorted(name for name in read if f"`{name}`" not in readme) == []


def test_requirements_are_all_pinned():
    for name in ("requirements.txt", "requirements-dev.txt"):
        for line in (ROOT / name).read_text().splitlines():
            line = line.strip()
            if line and not line.startswith(("#", "-r ")):
                assert re.fullmatch(r"[A-Za-z0-9_.\-\[\],]+==[\w.]+", line), f"{name}: {line}"

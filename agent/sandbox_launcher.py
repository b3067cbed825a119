"""The first Python the sandboxed process runs, before the user's code: stdlib only.

    python -I -S -B sandbox_launcher.py LIMITS_JSON   (the code arrives on stdin)

It sets the resource limits, gives up root when it has it (a bubblewrap sandbox started by a
root server keeps the host's uid 0 until here: see ``agent.sandbox``), sets no_new_privs, and
runs the code. The boundary is the kernel's (namespaces, the mounts bubblewrap set up, uid
``nobody``, rlimits); this file only arranges it. With ``"audit_hook": true`` (the
``unsafe-process`` mode, which has no namespaces) it also installs the old in-process audit
hook, which is a speed bump and not a boundary.
"""

import contextlib
import ctypes
import json
import os
import resource
import sys

NOBODY = 65534
PR_SET_NO_NEW_PRIVS = 38
# Imported before dropping privileges in the unsafe mode: as nobody, an interpreter installed
# under /root could not read its own library there.
PRELOAD = [
    "math",
    "cmath",
    "statistics",
    "random",
    "itertools",
    "functools",
    "collections",
    "json",
    "re",
    "datetime",
    "decimal",
    "fractions",
    "string",
    "textwrap",
    "heapq",
    "bisect",
    "operator",
    "typing",
    "dataclasses",
    "enum",
    "csv",
    "io",
    "time",
    "calendar",
    "copy",
    "pprint",
    "hashlib",
    "base64",
    "unicodedata",
    "array",
    "struct",
    "zlib",
    "tempfile",
    "socket",
    "subprocess",
    "urllib.request",
    "encodings.idna",
]


def limit(name: str, value: int) -> None:
    kind = getattr(resource, name)
    resource.setrlimit(kind, (value, value))


def drop_root(workdir: str | None) -> None:
    """Become ``nobody`` for real (host uid 65534), so RLIMIT_NPROC binds and no capability is left."""
    if os.geteuid() != 0:
        return
    if workdir:
        os.chown(workdir, NOBODY, NOBODY)
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def install_audit_hook(workdir: str) -> None:
    """The unsafe mode's fence: refuses sockets, processes, ctypes and files outside its folder.

    In-process Python; code can get around it (see README, "Code executor").
    """
    allowed_roots = tuple(
        os.path.realpath(p) + os.sep for p in {workdir, sys.base_prefix, sys.prefix, os.path.dirname(os.__file__)}
    )
    blocked: tuple[str, ...]
    blocked = ("socket.", "subprocess.", "os.fork", "os.forkpty", "os.posix_spawn", "os.exec", "os.spawn", "os.system")
    blocked += ("ctypes.", "os.kill", "os.killpg", "pty.", "os.putenv", "sys.addaudithook")

    def hook(event: str, args: tuple[object, ...]) -> None:
        if event.startswith(blocked) or event in ("os.system", "socket.__new__", "_posixsubprocess.fork_exec"):
            raise PermissionError(f"blocked in the sandbox: {event}")
        if event == "open" and args and isinstance(args[0], str | bytes):
            path = os.path.realpath(os.fsdecode(args[0]))
            if not (path + os.sep).startswith(allowed_roots) and not path.startswith(allowed_roots):
                raise PermissionError(f"blocked in the sandbox: reading or writing {args[0]!r}")

    sys.addaudithook(hook)


def main() -> None:
    limits = json.loads(sys.argv[1])
    source = sys.stdin.buffer.read().decode("utf-8", errors="replace")
    # The code has been read: its stdin is empty from here on.
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    code = compile(source, "<user code>", "exec")

    limit("RLIMIT_CPU", limits["cpu_seconds"])
    limit("RLIMIT_AS", limits["memory_bytes"])
    limit("RLIMIT_FSIZE", limits["file_bytes"])
    limit("RLIMIT_NOFILE", 32)
    limit("RLIMIT_CORE", 0)
    unsafe = bool(limits.get("audit_hook"))
    workdir = os.getcwd()
    if unsafe:
        for name in PRELOAD:
            with contextlib.suppress(ImportError):
                __import__(name)
    drop_root(workdir if unsafe else None)
    # Counted per real uid (per user namespace): as nobody this stops fork bombs at the kernel.
    limit("RLIMIT_NPROC", limits["processes"])
    # No set-uid program can give anything back, whatever is visible.
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    if unsafe:
        install_audit_hook(workdir)
    sys.argv = ["<user code>"]
    exec(code, {"__name__": "__main__", "__builtins__": __builtins__})


if __name__ == "__main__":
    main()

"""Runs inside the sandbox's child process, before the user's code: it only uses the stdlib.

    python -I -S -B sandbox_launcher.py LIMITS_JSON CODE_FILE

Order: resource limits (kernel-enforced), a network namespace of its own when the kernel allows,
dropping root to ``nobody``, then an audit hook that refuses sockets, new processes, ctypes and
files outside the working folder and Python's own library. Only the OS parts are a boundary;
the hook is a second fence (see README, "Code executor").
"""

import contextlib
import ctypes
import json
import os
import resource
import sys

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
NOBODY = 65534
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
    "socket",
    "subprocess",
    "urllib.request",
    "array",
    "struct",
    "zlib",
    "encodings.idna",
]


def limit(name: str, value: int) -> None:
    kind = getattr(resource, name)
    resource.setrlimit(kind, (value, value))


def isolate_network() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        flags = CLONE_NEWNET if os.geteuid() == 0 else CLONE_NEWUSER | CLONE_NEWNET
        return libc.unshare(flags) == 0
    except Exception:
        return False


def main() -> None:
    limits = json.loads(sys.argv[1])
    code_file = sys.argv[2]
    workdir = os.path.dirname(os.path.abspath(code_file))
    limit("RLIMIT_CPU", limits["cpu_seconds"])
    limit("RLIMIT_AS", limits["memory_bytes"])
    limit("RLIMIT_FSIZE", limits["file_bytes"])
    limit("RLIMIT_NOFILE", 32)
    limit("RLIMIT_CORE", 0)
    network_isolated = isolate_network()
    # Modules user code commonly wants, imported while their files are still readable: as
    # nobody, an interpreter installed under /root could not read its own library.
    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            __import__(name)
    if os.geteuid() == 0:
        os.chown(workdir, NOBODY, NOBODY)
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    # Counted per user: as nobody this stops fork bombs at the kernel.
    limit("RLIMIT_NPROC", limits["processes"])
    os.chdir(workdir)
    with open(code_file, encoding="utf-8") as source:
        code = compile(source.read(), "<user code>", "exec")

    allowed_roots = tuple(
        os.path.realpath(p) + os.sep for p in {workdir, sys.base_prefix, sys.prefix, os.path.dirname(os.__file__)}
    )
    blocked = ("socket.", "subprocess.", "os.fork", "os.forkpty", "os.posix_spawn", "os.exec", "os.spawn", "os.system")
    blocked += ("ctypes.", "os.kill", "os.killpg", "pty.", "os.putenv", "sys.addaudithook")

    def hook(event: str, args: tuple) -> None:
        if event.startswith(blocked) or event in ("os.system", "socket.__new__", "_posixsubprocess.fork_exec"):
            raise PermissionError(f"blocked in the sandbox: {event}")
        if event == "open" and args and isinstance(args[0], str | bytes):
            path = os.path.realpath(os.fsdecode(args[0]))
            if not (path + os.sep).startswith(allowed_roots) and not path.startswith(allowed_roots):
                raise PermissionError(f"blocked in the sandbox: reading or writing {args[0]!r}")

    os.environ["SANDBOX_NETWORK"] = "isolated" if network_isolated else "shared"
    sys.addaudithook(hook)
    sys.argv = ["<user code>"]
    exec(code, {"__name__": "__main__", "__builtins__": __builtins__})


if __name__ == "__main__":
    main()

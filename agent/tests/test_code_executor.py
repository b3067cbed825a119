"""The code executor, attacked the ways people attack it. Every run is a real sandboxed process.

Each escape prints ESCAPED when it gets anything it must not; the suite asserts it never does
and that what it tried to reach saw nothing. These run on the default ``CODE_SANDBOX=bwrap`` and
fail (they do not skip) where bubblewrap cannot isolate: CI must prove the boundary.
"""

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from agent import sandbox
from agent.tools import ToolContext
from agent.tools.code_executor import MAX_CODE_CHARS, UNAVAILABLE, extract_code, make_code_executor

from .local_http import LocalServer, Reply


@pytest.fixture
def run_code():
    return make_code_executor(ToolContext())


@pytest.fixture(autouse=True)
def _short_limits(settings):
    settings.CODE_CPU_SECONDS, settings.CODE_WALL_SECONDS = 2, 4
    settings.CODE_MEMORY_BYTES = 256 * 1024 * 1024


def run(code: str) -> sandbox.RunResult:
    return sandbox.run_sandboxed(code)


def assert_contained(result: sandbox.RunResult) -> None:
    assert not result.timed_out, result
    assert "ESCAPED" not in result.stdout, result


# --- It works --------------------------------------------------------------------------------


def test_the_sandbox_is_kernel_isolation_here():
    status = sandbox.sandbox_status(refresh=True)
    assert (status.mode, status.active) == ("bwrap", True), status
    assert "namespaces pid, net, ipc, uts, mount" in status.detail


def test_runs_code_and_returns_its_output(run_code):
    assert run_code(code="print(sum(range(10)))") == "The code ran successfully.\nOutput:\n45"


def test_ordinary_code_works_with_the_standard_library_and_its_scratch_folder(run_code):
    code = (
        "import json, math, statistics, collections, csv, io, os, tempfile, datetime, decimal, re\n"
        "open('notes.txt', 'w').write('hi')\n"
        "with tempfile.NamedTemporaryFile('w', delete=False) as f: f.write('there')\n"
        "print(json.dumps([math.sqrt(16), statistics.mean([1, 3])]), open('notes.txt').read(), open(f.name).read())"
    )
    assert run_code(code=code).endswith("Output:\n[4.0, 2] hi there")


def test_errors_report_the_end_of_the_traceback(run_code):
    observation = run_code(code="1 / 0")
    assert observation.startswith("The code failed (exit status 1).")
    assert observation.endswith("ZeroDivisionError: division by zero")


def test_each_run_starts_with_an_empty_scratch_folder():
    assert run("open('left.txt', 'w').write('x')").exit == 0
    result = run("import os\nprint(sorted(os.listdir('.')), os.getcwd())")
    assert result.stdout.split() == ["[]", "/tmp"]


# --- Escapes: files --------------------------------------------------------------------------


def test_the_audit_hook_trick_from_the_issue_reaches_nothing():
    result = run(
        "import sys, os\n"
        "frame = sys._getframe(1)\n"
        "hook = frame.f_locals.get('hook')\n"
        "if hook is not None:\n"
        "    hook.__code__ = (lambda e, x: None).__code__\n"
        "for path in ('/etc/passwd', 'var/db.sqlite3', '../var/db.sqlite3'):\n"
        "    try:\n"
        "        print('ESCAPED', path, len(open(path, 'rb').read()))\n"
        "    except OSError as exc:\n"
        "        print(type(exc).__name__)\n"
    )
    assert_contained(result)
    assert result.stdout.split() == ["FileNotFoundError"] * 3


def test_dir_fd_and_chdir_reach_nothing(settings):
    project = str(django_settings.BASE_DIR)
    result = run(
        "import os\n"
        "root = os.open('/', os.O_RDONLY)\n"
        "os.chdir('/tmp')\n"
        f"for rel in ('../../../../etc/passwd', '..{project}/manage.py', '../../..{project}/var/db.sqlite3'):\n"
        "    try:\n"
        "        fd = os.open(rel, os.O_RDONLY, dir_fd=root)\n"
        "        print('ESCAPED', rel, os.read(fd, 100))\n"
        "    except OSError as exc:\n"
        "        print(type(exc).__name__)\n"
    )
    assert_contained(result)
    assert result.stdout.split() == ["FileNotFoundError"] * 3


@pytest.mark.parametrize(
    "path",
    [
        "/etc/passwd",
        "/etc/shadow",
        "/proc/self/root/etc/passwd",
        "/proc/1/environ",
        "/root/.ssh",
        "/home",
        "/var/run",
        "/run",
        "/sys/kernel",
    ],
)
def test_host_paths_do_not_exist_inside(path):
    result = run(f"import os\nprint('ESCAPED' if os.path.exists({path!r}) else 'absent')")
    assert_contained(result)
    assert result.stdout.strip() == "absent"


def test_the_project_folder_var_and_the_parents_process_are_out_of_reach():
    paths = [
        str(django_settings.BASE_DIR),
        str(django_settings.VAR_DIR),
        str(django_settings.MEDIA_ROOT),
        str(Path(django_settings.BASE_DIR) / "chatproject" / "settings.py"),
        f"/proc/{os.getpid()}/environ",
        f"/proc/{os.getppid()}/environ",
        "/proc/self/environ",
    ]
    result = run(
        f"import os\nfor p in {paths!r}:\n    print('ESCAPED ' + p if os.path.exists(p) else 'absent')\n"
        "print(sorted(os.listdir('/')))"
    )
    assert_contained(result)
    *absent, listing = result.stdout.strip().splitlines()
    assert absent == ["absent"] * len(paths)
    # Only what Python needs: no etc, home, var, proc, sys, run, srv, opt, mnt or work.
    assert set(eval(listing)) <= {
        "bin",
        "dev",
        "lib",
        "lib32",
        "lib64",
        "libx32",
        "root",
        "sandbox",
        "sbin",
        "tmp",
        "usr",
    }


def test_ctypes_open_and_socket_reach_nothing():
    with LocalServer(lambda request: Reply.json({"secret": True})) as server:
        port = int(server.url.rsplit(":", 1)[1].split("/")[0])
        result = run(
            "import ctypes, ctypes.util, socket, struct\n"
            "libc = ctypes.CDLL(None, use_errno=True)\n"
            f"for path in (b'/etc/passwd', {str(django_settings.BASE_DIR / 'manage.py').encode()!r}):\n"
            "    fd = libc.open(path, 0)\n"
            "    print('ESCAPED' if fd >= 0 else 'closed')\n"
            "s = libc.socket(socket.AF_INET, socket.SOCK_STREAM, 0)\n"
            f"addr = struct.pack('!HH4s8x', socket.AF_INET, {port}, socket.inet_aton('127.0.0.1'))\n"
            "addr = struct.pack('=H', socket.AF_INET) + addr[2:]\n"
            "print('ESCAPED' if libc.connect(s, addr, len(addr)) == 0 else 'refused', ctypes.get_errno())\n"
        )
    assert_contained(result)
    assert result.stdout.split()[:3] == ["closed", "closed", "refused"]
    assert server.requests == []


def test_symlinks_and_dotdot_stay_inside_the_scratch_folder():
    result = run(
        "import os\n"
        "os.symlink('/', 'up')\n"
        "os.symlink('../../../../../../etc/passwd', 'pw')\n"
        f"os.symlink({str(django_settings.BASE_DIR)!r}, 'proj')\n"
        "for path in ('up/etc/passwd', 'pw', 'proj/manage.py', '/tmp/../../etc/passwd', 'up/proc/1/environ'):\n"
        "    print('ESCAPED ' + path if os.path.exists(path) else 'absent')\n"
    )
    assert_contained(result)
    assert result.stdout.split() == ["absent"] * 5


def test_nothing_outside_the_scratch_folder_can_be_written(tmp_path):
    target = tmp_path / "planted.txt"
    result = run(
        "import os\n"
        f"for path in ('/planted.txt', '/usr/planted.txt', '/sandbox/launcher.py', '/dev/planted', {str(target)!r}):\n"
        "    try:\n"
        "        open(path, 'w').write('x')\n"
        "        print('ESCAPED', path)\n"
        "    except OSError as exc:\n"
        "        print(type(exc).__name__)\n"
    )
    assert_contained(result)
    assert len(result.stdout.split()) == 5
    assert not target.exists()
    assert "x" not in (Path(sandbox.LAUNCHER).read_text()[-5:])


def test_the_scratch_folder_is_bounded(settings):
    settings.CODE_SCRATCH_BYTES = 4 * 1024 * 1024
    result = run(
        "n = 0\n"
        "try:\n"
        "    while True:\n"
        "        open(f'f{n}', 'wb').write(b'x' * 500_000); n += 1\n"
        "except OSError as exc:\n"
        "    print(n, type(exc).__name__)\n"
    )
    written, error = result.stdout.split()
    assert int(written) <= 9 and error == "OSError"


# --- Escapes: network --------------------------------------------------------------------------


def test_no_network_to_the_host_or_its_services(run_code):
    with LocalServer(lambda request: Reply.json({"secret": True})) as server:
        code = (
            "import socket, urllib.request\n"
            f"try:\n    print('ESCAPED', urllib.request.urlopen({server.url!r}, timeout=2).read())\n"
            "except OSError as exc:\n    print('no', type(exc).__name__)\n"
            "for port in (5432, 6379, 8000, 80):\n"
            "    try:\n"
            "        socket.create_connection(('127.0.0.1', port), timeout=2)\n"
            "        print('ESCAPED', port)\n"
            "    except OSError:\n"
            "        print('refused')\n"
            "try:\n    socket.create_connection(('1.1.1.1', 53), timeout=2); print('ESCAPED')\n"
            "except OSError:\n    print('unreachable')\n"
        )
        observation = run_code(code=code)
    assert "ESCAPED" not in observation and "secret" not in observation
    assert observation.endswith("refused\nrefused\nrefused\nrefused\nunreachable")
    assert server.requests == []


def test_the_host_listens_are_not_reachable_through_unix_sockets():
    result = run(
        "import socket\n"
        "for name in ('/var/run/postgresql/.s.PGSQL.5432', '/tmp/.s.PGSQL.5432', '\\0/tmp/.X11-unix/X0'):\n"
        "    s = socket.socket(socket.AF_UNIX)\n"
        "    try:\n"
        "        s.connect(name); print('ESCAPED', name)\n"
        "    except OSError:\n"
        "        print('no')\n"
    )
    assert_contained(result)
    assert result.stdout.split() == ["no"] * 3


# --- Escapes: resources and processes ------------------------------------------------------------


def test_fork_bombs_stop_at_the_process_limit(run_code):
    result = run(
        "import os, time\n"
        "n = 0\n"
        "try:\n"
        "    for _ in range(1000):\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(5); os._exit(0)\n"
        "        n += 1\n"
        "except OSError as exc:\n"
        "    print(n, exc.errno)\n"
    )
    forked, errno = result.stdout.split()
    assert int(forked) < 16 and errno == "11", result


def test_infinite_loops_are_stopped_by_the_cpu_limit(run_code):
    assert run_code(code="while True:\n    pass").startswith("Stopped: the code used more than 2 s of CPU.")


def test_sleeping_forever_is_stopped_by_the_wall_clock(run_code):
    assert run_code(code="import time\ntime.sleep(60)").startswith("Stopped: the code ran longer than 4 s.")


def test_memory_bombs_run_out_of_memory(run_code):
    observation = run_code(code="x = 'a' * (10 ** 10)")
    assert "It ran out of memory (the limit is 256 MB)." in observation
    growing = run_code(code="chunks = []\nwhile True:\n    chunks.append(bytearray(10 ** 7))")
    assert "It ran out of memory" in growing


def test_large_files_are_refused(run_code):
    observation = run_code(code="open('big.bin', 'wb').write(b'x' * (5 * 1024 * 1024))")
    assert "File too large" in observation


def _sandbox_processes() -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if sandbox.INNER_LAUNCHER.encode() in cmdline:
            found.append(entry.name)
    return found


def test_no_process_outlives_its_run():
    result = run(
        "import os, sys, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        time.sleep(60)\n"
        "    os._exit(0)\n"
        "print('parent done')\n"
    )
    assert result.stdout.strip() == "parent done" and result.seconds < 3
    assert _sandbox_processes() == []


def test_no_process_outlives_a_timed_out_run():
    result = run("import os, time\nos.fork()\nos.fork()\ntime.sleep(60)")
    assert result.timed_out
    assert _sandbox_processes() == []


def test_it_runs_as_nobody_without_capabilities_or_privileges():
    result = run(
        "import os\n"
        "print(os.getuid(), os.geteuid(), os.getgid(), os.getgroups())\n"
        "try:\n    os.setuid(0); print('ESCAPED')\n"
        "except PermissionError:\n    print('denied')\n"
    )
    assert result.stdout.split("\n")[:2] == ["65534 65534 65534 []", "denied"]


def test_the_server_environment_is_not_inherited(run_code, monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "do-not-leak")
    monkeypatch.setenv("DATABASE_URL", "postgres://secret@db/x")
    observation = run_code(code="import os, sys\nprint(sorted(os.environ), sys.flags.isolated)")
    assert "do-not-leak" not in observation and "SECRET_KEY" not in observation and "DATABASE_URL" not in observation
    assert observation.endswith(" 1")


def test_the_server_is_unaffected_after_an_attack(run_code):
    run_code(code="import os\nwhile True:\n    os.fork()")
    run_code(code="x = bytearray(10 ** 10)")
    assert run_code(code="print('still here')").endswith("Output:\nstill here")


@pytest.mark.skipif(not Path("/usr/bin/python3").exists(), reason="needs a Python under /usr for another uid")
def test_a_server_that_is_not_root_gets_the_same_containment():
    """The shipped Docker image runs the worker as a plain user: then bubblewrap makes a user
    namespace too. Run that command line as uid nobody, with Debian's Python under /usr."""
    runuser = shutil.which("runuser")
    if runuser is None or os.geteuid() != 0:
        pytest.skip("needs root to become another user")
    command = sandbox.bwrap_command(sandbox.bwrap_binary(), as_root=False, interpreter=("/usr/bin/python3", "/usr"))
    code = (
        "import os, time\n"
        "print(os.getuid(), os.path.exists('/etc/passwd'), os.path.exists('/proc/1'))\n"
        "n = 0\n"
        "try:\n"
        "    for _ in range(200):\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(3); os._exit(0)\n"
        "        n += 1\n"
        "except OSError:\n"
        "    print('forks stopped at', n)\n"
    )
    result = subprocess.run(
        [runuser, "-u", "nobody", "--", *command], input=code.encode(), capture_output=True, timeout=20, check=False
    )
    lines = result.stdout.decode().splitlines()
    assert lines[0] == "65534 False False", result
    assert lines[1].startswith("forks stopped at") and int(lines[1].split()[-1]) < 16


# --- Fail closed and the other modes -----------------------------------------------------------


@pytest.mark.parametrize("binary", ["/nonexistent/bwrap", "/bin/false", "/bin/true"])
def test_without_working_isolation_no_code_runs(run_code, settings, tmp_path, binary):
    settings.CODE_SANDBOX_BWRAP = binary
    marker = tmp_path / "ran.txt"
    assert run_code(code=f"open({str(marker)!r}, 'w').write('x')\nprint('ran')") == UNAVAILABLE
    assert not marker.exists()
    status = sandbox.sandbox_status()
    assert not status.active and status.mode == "bwrap"
    with pytest.raises(sandbox.SandboxUnavailable):
        sandbox.run_sandboxed("print(1)")


def test_turned_off_no_code_runs(run_code, settings):
    settings.CODE_SANDBOX = "off"
    assert run_code(code="print('ran')") == UNAVAILABLE
    assert sandbox.sandbox_status().as_dict() == {
        "mode": "off",
        "active": False,
        "detail": "code execution is turned off (CODE_SANDBOX=off)",
    }


def test_the_unsafe_mode_is_only_an_audit_hook(run_code, settings):
    settings.CODE_SANDBOX = "unsafe-process"
    assert sandbox.sandbox_status().detail.startswith("UNSAFE")
    assert run_code(code="print(6 * 7)").endswith("Output:\n42")
    observation = run_code(code="print(open('/etc/passwd').read())")
    assert "blocked in the sandbox" in observation and "root:" not in observation


# --- Input -----------------------------------------------------------------------------------


def test_output_is_capped(run_code, settings):
    settings.CODE_OUTPUT_CHARS = 100
    observation = run_code(code="print('x' * 100000)")
    assert "x" * 100 + "\n… (output cut at 100 characters)" in observation
    assert "x" * 101 not in observation


@pytest.mark.parametrize(
    ("code", "said"),
    [("", "there is no code to run"), ("   ", "there is no code to run"), ("x" * (MAX_CODE_CHARS + 1), "limited to")],
)
def test_bad_input_is_an_observation(run_code, code, said):
    assert said in run_code(code=code)


def test_code_is_taken_from_fences_or_after_a_colon():
    assert extract_code("run this:\n```python\nprint(1)\n```\nthanks") == "print(1)"
    assert extract_code("run this Python: print(sum(range(10)))") == "print(sum(range(10)))"
    assert extract_code("print(2)") == "print(2)"


def test_a_listening_port_on_the_host_sees_no_connection_attempt():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    try:
        result = run(
            f"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
            "    print('ESCAPED')\nexcept OSError as exc:\n    print(exc.errno)"
        )
        assert_contained(result)
        with pytest.raises(TimeoutError):
            listener.accept()
    finally:
        listener.close()

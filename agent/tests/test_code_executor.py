"""The sandbox, attacked the ways people attack it. Every run is a real subprocess."""

import os
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from agent.tools import ToolContext
from agent.tools.code_executor import MAX_CODE_CHARS, extract_code, make_code_executor, run_python

from .local_http import LocalServer, Reply


@pytest.fixture
def run_code():
    return make_code_executor(ToolContext())


@pytest.fixture(autouse=True)
def _short_limits(settings):
    settings.CODE_CPU_SECONDS, settings.CODE_WALL_SECONDS = 2, 4
    settings.CODE_MEMORY_BYTES = 256 * 1024 * 1024


def test_runs_code_and_returns_its_output(run_code):
    assert run_code(code="print(sum(range(10)))") == "The code ran successfully.\nOutput:\n45"


def test_common_standard_library_modules_work(run_code):
    code = "import json, math, statistics, collections\nprint(json.dumps([math.sqrt(16), statistics.mean([1, 3])]))"
    assert run_code(code=code).endswith("Output:\n[4.0, 2]")


def test_errors_report_the_end_of_the_traceback(run_code):
    observation = run_code(code="1 / 0")
    assert observation.startswith("The code failed (exit status 1).")
    assert observation.endswith("ZeroDivisionError: division by zero")


def test_files_outside_its_folder_cannot_be_read(run_code):
    for target in ("/etc/passwd", str(Path(django_settings.BASE_DIR) / "chatproject" / "settings.py")):
        observation = run_code(code=f"print(open({target!r}).read())")
        assert "blocked in the sandbox: reading or writing" in observation, observation
        assert "It tried something the sandbox refuses" in observation
        assert "Output:" not in observation


def test_its_own_folder_is_usable_and_thrown_away(run_code):
    result = run_python("import os\nopen('notes.txt', 'w').write('hi')\nprint(os.getcwd(), open('notes.txt').read())")
    folder, content = str(result["stdout"]).split()
    assert (result["exit"], content) == (0, "hi")
    assert not os.path.exists(folder)


def test_no_network(run_code):
    with LocalServer(lambda request: Reply.json({"secret": True})) as server:
        code = f"import urllib.request\nprint(urllib.request.urlopen({server.url!r}).read())"
        observation = run_code(code=code)
        raw_socket = run_code(code="import socket\nsocket.create_connection(('127.0.0.1', 80))")
    assert "blocked in the sandbox: socket" in observation and "secret" not in observation
    assert "blocked in the sandbox: socket" in raw_socket
    assert server.requests == []


def test_no_processes(run_code):
    for code in (
        "import os\nwhile True:\n    os.fork()",
        "import subprocess\nsubprocess.run(['id'])",
        "import os\nos.system('id')",
    ):
        observation = run_code(code=code)
        assert "blocked in the sandbox" in observation, (code, observation)


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


def test_output_is_capped(run_code, settings):
    settings.CODE_OUTPUT_CHARS = 100
    observation = run_code(code="print('x' * 100000)")
    assert "x" * 100 + "\n… (output cut at 100 characters)" in observation
    assert "x" * 101 not in observation


def test_the_server_environment_is_not_inherited(run_code, monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "do-not-leak")
    observation = run_code(code="import os, sys\nprint(sorted(os.environ), sys.flags.isolated)")
    assert "do-not-leak" not in observation and "SECRET_KEY" not in observation
    assert observation.endswith(" 1")


def test_the_server_is_unaffected_after_an_attack(run_code):
    run_code(code="import os\nwhile True:\n    os.fork()")
    run_code(code="x = bytearray(10 ** 10)")
    assert run_code(code="print('still here')").endswith("Output:\nstill here")


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

"""Processes to profile: real Python processes doing known work, and what a recording must hold."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest

# The busy process's hot function: the recordings must name it.
HOT_FUNCTION = "spin_for_the_profiler"
SPIN = f"""
import sys
def {HOT_FUNCTION}():
    while True:
        sum(range(1000))
sys.stdout.write("ready\\n"); sys.stdout.flush()
{HOT_FUNCTION}()
"""
# Prints the pid of a grandchild that outlives its parent: reparented, it is no longer ours.
DETACHED = """
import os, sys, time
pid = os.fork()
if pid == 0:
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    time.sleep(60)
    os._exit(0)
sys.stdout.write(f"{pid}\\n")
"""


@pytest.fixture
def busy_child():
    """A child Python process burning CPU in HOT_FUNCTION (a descendant of this one: ours)."""
    child = subprocess.Popen([sys.executable, "-c", SPIN], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline() == "ready\n"
    yield child
    child.kill()
    child.wait(timeout=10)


def detached_process(*extra_args: str) -> int:
    """The pid of a sleeping Python process that is not a descendant of this one (its parent exited)."""
    result = subprocess.run([sys.executable, "-c", DETACHED, *extra_args], capture_output=True, text=True, check=True)
    return int(result.stdout.strip())


@pytest.fixture
def detached():
    pids: list[int] = []

    def start(*extra_args: str) -> int:
        pids.append(detached_process(*extra_args))
        return pids[-1]

    yield start
    import os
    import signal

    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def wait_for(predicate, *, timeout: float = 90, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out waiting")


def flamegraph_frames(data: bytes) -> list[str]:
    """The frame titles of py-spy's SVG flame graph (it must parse as XML, with an <svg> root)."""
    root = ET.fromstring(data)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return [title.text or "" for title in root.iter("{http://www.w3.org/2000/svg}title")]


def speedscope_frames(data: bytes) -> list[str]:
    """The frame names of a speedscope document, after checking its shape."""
    document = json.loads(data)
    assert document["$schema"] == "https://www.speedscope.app/file-format-schema.json"
    frames = document["shared"]["frames"]
    assert frames and all("name" in frame for frame in frames)
    assert document["profiles"] and all(profile["type"] == "sampled" for profile in document["profiles"])
    assert any(profile["samples"] for profile in document["profiles"])
    return [frame["name"] for frame in frames]

"""``manage.py profile``: the same recordings as the API, from the shell, with clear exit codes."""

from __future__ import annotations

import os
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from dashboard.models import Profile

from .conftest import HOT_FUNCTION, flamegraph_frames, speedscope_frames

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("profile", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_a_flame_graph_of_a_process_to_a_file(busy_child, tmp_path):
    target = tmp_path / "out.svg"
    out, err = run("--target", str(busy_child.pid), "--seconds", "1", "--output", str(target))
    assert out.startswith(f"{target}\t") and "profile " in out
    assert f"Recording process {busy_child.pid} for 1 s (flamegraph)." in err
    assert "recording (s): 1/1" in err  # the progress, as plain lines when not on a terminal
    assert any(HOT_FUNCTION in frame for frame in flamegraph_frames(target.read_bytes()))
    profile = Profile.objects.get()
    assert profile.status == "done" and profile.requested_by is None


def test_speedscope_of_this_process_stays_in_the_profiles_folder():
    out, _ = run("--target", "web", "--seconds", "1", "--format", "speedscope")
    path = Path(out.split("\t")[0])
    assert path.suffix == ".json" and path.parent.name == "profiles"
    assert "Command.handle" in speedscope_frames(path.read_bytes())  # this command, waiting
    assert Profile.objects.get().pid == os.getpid()


@pytest.mark.parametrize(
    "args",
    [["--seconds", "0"], ["--seconds", "61"], ["--format", "pdf"], ["--target", "nope"], ["--target", "1"]],
)
def test_bad_arguments_exit_2(args):
    with pytest.raises(CommandError) as error:
        run(*args)
    assert error.value.returncode == 2
    assert not Profile.objects.exists()


def test_missing_ptrace_rights_exit_1_with_what_to_grant(busy_child, settings):
    settings.PROFILING_PY_SPY = (
        f"setpriv --reuid=65534 --regid=65534 --clear-groups {Path(sys.executable).parent}/py-spy"
    )
    with pytest.raises(CommandError) as error:
        run("--target", str(busy_child.pid), "--seconds", "1")
    assert error.value.returncode == 1
    assert "cap_add: [SYS_PTRACE]" in str(error.value)

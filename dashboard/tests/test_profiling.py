"""Profiling through the API: real py-spy recordings of real processes, the permission error of a
py-spy that may not trace, which pids are ours, and who may see any of it."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from conftest import token_client
from dashboard import processes
from dashboard.models import Profile
from dashboard.services import profiles_dir
from threads.tests.factories import make_user

from .conftest import HOT_FUNCTION, flamegraph_frames, speedscope_frames, wait_for

PY_SPY = str(Path(sys.executable).parent / "py-spy")
AS_NOBODY = f"setpriv --reuid=65534 --regid=65534 --clear-groups {PY_SPY}"


@pytest.fixture
def staff_api(db):
    return token_client(make_user("root", is_staff=True))


def finished(api, profile_id):
    """Poll the profile until it is no longer running; its last metadata."""

    def done():
        data = api.get(f"/api/profiling/{profile_id}/").json()
        return data if data["status"] != "running" else None

    return wait_for(done)


@pytest.mark.django_db(transaction=True)
def test_a_flame_graph_of_a_running_process(staff_api, busy_child):
    response = staff_api.post(
        "/api/profiling/", {"target": busy_child.pid, "seconds": 1, "format": "flamegraph"}, format="json"
    )
    assert response.status_code == 202, response.content
    started = response.json()
    assert started["status"] == "running" and started["pid"] == busy_child.pid and started["target"] == "pid"
    assert started["data_url"] is None

    done = finished(staff_api, started["id"])
    assert done["status"] == "done", done
    assert done["error"] == "" and done["size"] > 0
    assert done["data_url"] == f"/api/profiling/{started['id']}/data/"

    download = staff_api.get(done["data_url"])
    assert download.status_code == 200
    assert download["Content-Type"] == "image/svg+xml"
    assert download["Content-Disposition"] == f'attachment; filename="profile-{started["id"]}.svg"'
    data = b"".join(download.streaming_content)
    assert len(data) == done["size"]
    frames = flamegraph_frames(data)
    assert any(HOT_FUNCTION in frame for frame in frames), frames[:20]

    listed = staff_api.get("/api/profiling/").json()
    assert listed["count"] == 1 and listed["results"][0]["id"] == started["id"]
    assert listed["results"][0]["size"] == done["size"]


@pytest.mark.django_db(transaction=True)
def test_speedscope_of_the_web_process_is_this_process(staff_api):
    response = staff_api.post("/api/profiling/", {"target": "web", "seconds": 1, "format": "speedscope"}, format="json")
    assert response.status_code == 202, response.content
    assert response.json()["pid"] == os.getpid() and response.json()["target"] == "web"

    done = finished(staff_api, response.json()["id"])
    assert done["status"] == "done", done
    download = staff_api.get(done["data_url"], HTTP_ACCEPT="application/json")
    assert download["Content-Type"] == "application/json"
    frames = speedscope_frames(b"".join(download.streaming_content))
    # This test's own thread was waiting in wait_for while it was recorded (idle threads included).
    assert "wait_for" in frames, frames[:30]


@pytest.mark.django_db(transaction=True)
def test_the_worker_is_this_process_when_tasks_run_in_process(staff_api):
    response = staff_api.post(
        "/api/profiling/", {"target": "worker", "seconds": 1, "format": "flamegraph"}, format="json"
    )
    assert response.status_code == 202, response.content
    assert response.json()["pid"] == os.getpid() and response.json()["target"] == "worker"
    assert finished(staff_api, response.json()["id"])["status"] == "done"


@pytest.mark.django_db(transaction=True)
def test_a_py_spy_without_ptrace_rights_gets_a_clear_error(staff_api, busy_child, settings):
    # py-spy really runs as nobody here, and the kernel really refuses it a root-owned process.
    settings.PROFILING_PY_SPY = AS_NOBODY
    response = staff_api.post(
        "/api/profiling/", {"target": busy_child.pid, "seconds": 1, "format": "flamegraph"}, format="json"
    )
    assert response.status_code == 409, response.content
    body = response.json()
    assert body["code"] == "ptrace_denied"
    assert f"may not read process {busy_child.pid}" in body["detail"]
    assert "cap_add: [SYS_PTRACE]" in body["detail"] and "CAP_SYS_PTRACE" in body["detail"]
    assert not Profile.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_only_one_recording_at_a_time(staff_api, busy_child):
    first = staff_api.post(
        "/api/profiling/", {"target": busy_child.pid, "seconds": 2, "format": "speedscope"}, format="json"
    )
    assert first.status_code == 202
    second = staff_api.post("/api/profiling/", {"target": "web", "seconds": 1, "format": "flamegraph"}, format="json")
    assert second.status_code == 409
    assert second.json()["code"] == "profiling_busy" and "already running" in second.json()["detail"]
    # While it records there is no file to download yet.
    early = staff_api.get(f"/api/profiling/{first.json()['id']}/data/")
    assert early.status_code == 409 and early.json()["code"] == "profile_not_ready"
    assert finished(staff_api, first.json()["id"])["status"] == "done"
    assert Profile.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"target": "web", "seconds": 0, "format": "flamegraph"}, {"seconds"}),
        ({"target": "web", "seconds": 61, "format": "flamegraph"}, {"seconds"}),
        ({"target": "web", "seconds": 1.5, "format": "flamegraph"}, {"seconds"}),
        ({"target": "web", "seconds": True, "format": "flamegraph"}, {"seconds"}),
        ({"target": "web", "seconds": "ten", "format": "flamegraph"}, {"seconds"}),
        ({"target": "web", "seconds": 5, "format": "pdf"}, {"format"}),
        ({"target": "web", "seconds": 5, "format": None}, {"format"}),
        ({"target": "db", "seconds": 5, "format": "flamegraph"}, {"target"}),
        ({"target": -3, "seconds": 5, "format": "flamegraph"}, {"target"}),
        ({"target": 0, "seconds": 5, "format": "flamegraph"}, {"target"}),
        ({"target": True, "seconds": 5, "format": "flamegraph"}, {"target"}),
        ({"target": [1], "seconds": 5, "format": "flamegraph"}, {"target"}),
        ({"target": "web", "seconds": 99, "format": "svg"}, {"seconds", "format"}),
        ({}, {"target", "seconds", "format"}),
    ],
)
def test_bad_input_names_each_field(staff_api, body, fields):
    response = staff_api.post("/api/profiling/", body, format="json")
    assert response.status_code == 400, response.content
    assert set(response.json()) == fields
    assert not Profile.objects.exists()


def test_seconds_out_of_range_says_the_range(staff_api):
    response = staff_api.post(
        "/api/profiling/", {"target": "web", "seconds": 61, "format": "flamegraph"}, format="json"
    )
    assert response.json() == {"seconds": ["A whole number of seconds from 1 to 60."]}


@pytest.mark.parametrize("pid", [1, 2**31 - 1, 4_000_000])
def test_a_pid_that_is_not_ours_is_refused(staff_api, pid):
    response = staff_api.post("/api/profiling/", {"target": pid, "seconds": 1, "format": "flamegraph"}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["target"]
    assert "is not one of this server's" in response.json()["target"][0] or "No process" in response.json()["target"][0]
    assert not Profile.objects.exists()


def test_a_python_process_of_someone_else_is_refused(staff_api, detached):
    # Same user, a Python process, but neither a descendant nor one of our entry points.
    pid = detached()
    response = staff_api.post("/api/profiling/", {"target": pid, "seconds": 1, "format": "flamegraph"}, format="json")
    assert response.status_code == 400
    assert f"Process {pid} is not one of this server's" in response.json()["target"][0]


def test_which_processes_are_ours(detached):
    assert processes.check_profilable(os.getpid()) is None
    # Not a descendant, but a Celery worker of our app by its command line: ours.
    worker_like = detached("celery", "-A", "chatproject", "worker")
    assert processes.check_profilable(worker_like) is None
    assert processes.check_profilable(detached("celery", "-A", "otherproject", "worker")) is not None
    assert processes.check_profilable(detached("daphne", "otherproject.asgi:application")) is not None
    assert processes.check_profilable(detached("daphne", "chatproject.asgi:application")) is None
    assert processes.check_profilable(1) is not None


def test_a_child_that_is_not_python_gets_py_spys_reason(staff_api):
    child = subprocess.Popen(["sleep", "30"])
    try:
        response = staff_api.post(
            "/api/profiling/", {"target": str(child.pid), "seconds": 1, "format": "flamegraph"}, format="json"
        )
    finally:
        child.kill()
        child.wait()
    assert response.status_code == 400
    assert response.json()["target"][0].startswith(f"py-spy cannot read process {child.pid}:")


def test_no_py_spy_is_a_clear_error(staff_api, settings):
    settings.PROFILING_PY_SPY = "/nonexistent/py-spy"
    response = staff_api.post("/api/profiling/", {"target": "web", "seconds": 1, "format": "flamegraph"}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "profiler_unavailable" and "PROFILING_PY_SPY" in response.json()["detail"]


@pytest.fixture
def recorded(db):
    """A finished flame graph and a failed recording, as rows with (for the first) a file."""
    done = Profile.objects.create(target="web", pid=os.getpid(), seconds=1, format="flamegraph", status="done")
    done.filename = f"{done.pk}.svg"
    (profiles_dir() / done.filename).write_text('<svg xmlns="http://www.w3.org/2000/svg"><title>f</title></svg>')
    done.size = (profiles_dir() / done.filename).stat().st_size
    done.save()
    failed = Profile.objects.create(
        target="worker", pid=os.getpid(), seconds=5, format="speedscope", status="failed", error="Error: no"
    )
    return done, failed


def test_only_staff_see_profiles(anon_api, api, staff_api, recorded):
    done, _ = recorded
    urls = ["/api/profiling/", f"/api/profiling/{done.pk}/", f"/api/profiling/{done.pk}/data/"]
    for url in urls:
        assert anon_api.get(url).status_code == 401, url
        forbidden = api.get(url)
        assert forbidden.status_code == 403, url
        assert b"<svg" not in forbidden.content and str(done.pk).encode() not in forbidden.content
        assert staff_api.get(url).status_code == 200, url
    body = {"target": "web", "seconds": 1, "format": "flamegraph"}
    assert anon_api.post("/api/profiling/", body, format="json").status_code == 401
    assert api.post("/api/profiling/", body, format="json").status_code == 403
    assert Profile.objects.count() == 2


def test_the_list_is_newest_first_and_paginated(staff_api, recorded, django_assert_max_num_queries):
    done, failed = recorded
    with django_assert_max_num_queries(5):
        page = staff_api.get("/api/profiling/?page_size=1").json()
    assert page["count"] == 2 and page["next"] and [p["id"] for p in page["results"]] == [str(failed.pk)]
    second = staff_api.get("/api/profiling/?page_size=1&page=2").json()
    assert [p["id"] for p in second["results"]] == [str(done.pk)]
    row = second["results"][0]
    assert set(row) == {
        "id", "target", "pid", "seconds", "format", "status", "error", "size", "created_at", "finished_at", "data_url",
    }  # fmt: skip
    assert page["results"][0]["status"] == "failed" and page["results"][0]["error"] == "Error: no"


def test_a_failed_or_unknown_profile_has_no_data(staff_api, recorded):
    _, failed = recorded
    response = staff_api.get(f"/api/profiling/{failed.pk}/data/")
    assert response.status_code == 409 and response.json()["code"] == "profile_not_ready"
    assert "failed" in response.json()["detail"]
    assert staff_api.get(f"/api/profiling/{uuid.uuid4()}/").status_code == 404
    assert staff_api.get("/api/profiling/not-a-uuid/").status_code == 404
    assert staff_api.get("/api/profiling/not-a-uuid/data/").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_starting_one_keeps_only_the_newest_profiles_and_their_files(staff_api):
    from datetime import timedelta

    from django.utils import timezone

    from dashboard.services import KEEP

    old = []
    an_hour_ago = timezone.now() - timedelta(hours=1)
    for n in range(KEEP + 2):
        profile = Profile.objects.create(target="web", pid=1, seconds=1, format="speedscope", status="done")
        profile.filename = f"{profile.pk}.json"
        (profiles_dir() / profile.filename).write_text(str(n))
        profile.save()
        Profile.objects.filter(pk=profile.pk).update(created_at=an_hour_ago + timedelta(seconds=n))
        old.append(profile)
    response = staff_api.post("/api/profiling/", {"target": "web", "seconds": 1, "format": "speedscope"}, format="json")
    assert response.status_code == 202
    kept = set(Profile.objects.exclude(pk=response.json()["id"]).values_list("pk", flat=True))
    # The two oldest went, with their files.
    assert kept == {profile.pk for profile in old[2:]}
    assert not (profiles_dir() / old[0].filename).exists() and not (profiles_dir() / old[1].filename).exists()
    assert (profiles_dir() / old[2].filename).exists()
    assert finished(staff_api, response.json()["id"])["status"] == "done"

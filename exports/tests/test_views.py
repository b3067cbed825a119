import io
import json

import pytest

from exports.tests.fixtures import open_webui_chat
from messaging.tests.factories import make_message
from threads.models import ChatThread
from threads.tests.factories import make_thread


@pytest.fixture
def browser(client, user):
    client.force_login(user)
    return client


def _file(data: bytes, name: str = "export.json") -> io.BytesIO:
    handle = io.BytesIO(data)
    handle.name = name
    return handle


def test_chat_page_and_thread_list_offer_the_export_menu(browser, user):
    thread = make_thread(user, title="Mine")
    chat = browser.get(f"/t/{thread.pk}/").content.decode()
    assert f'action="/api/export/threads/{thread.pk}/"' in chat and 'name="format"' in chat
    listing = browser.get("/").content.decode()
    assert 'action="/api/export/"' in listing and 'href="/import/"' in listing
    for value in ("json", "csv", "md", "html"):
        assert f'<option value="{value}"' in chat and f'<option value="{value}"' in listing


def test_the_menu_form_downloads_with_the_session(browser, user):
    thread = make_thread(user, title="Mine")
    make_message(thread, "hello")
    response = browser.get(f"/api/export/threads/{thread.pk}/", {"format": "md", "branches": "", "archive": "zip"})
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"


def test_import_page_imports_and_lists_the_result(browser, user):
    assert browser.get("/import/").status_code == 200
    response = browser.post("/import/", {"file": _file(json.dumps([open_webui_chat()]).encode())})
    assert response.status_code == 200
    page = response.content.decode()
    thread = ChatThread.objects.get(owner=user)
    assert "Imported 1 conversation" in page and f'href="/t/{thread.pk}/"' in page
    bad = open_webui_chat("Bad")
    bad["chat"]["history"]["messages"]["m2"]["role"] = "wizard"
    page = browser.post("/import/", {"file": _file(json.dumps([bad, open_webui_chat("Good")]).encode())}).content
    assert "Skipped 1" in page.decode() and "#0 Bad: unknown role &quot;wizard&quot;" in page.decode()


def test_import_page_shows_why_a_file_is_refused(browser, user):
    response = browser.post("/import/", {"file": _file(b"nope")})
    assert response.status_code == 400 and "The file is not valid JSON" in response.content.decode()


def test_import_page_answers_a_file_over_the_limit_with_413(browser, user, settings):
    settings.MAX_IMPORT_BYTES = 1000
    data = json.dumps([open_webui_chat()] * 5).encode()
    settings.REQUEST_MAX_BODY_PATH_OVERRIDES = {}  # the body limit not first: the file's own check answers
    response = browser.post("/import/", {"file": _file(data)})
    assert response.status_code == 413 and "The file is larger than 1000 bytes" in response.content.decode()
    assert not ChatThread.objects.filter(owner=user).exists()


def test_a_large_import_redirects_to_its_progress(browser, user, settings, django_capture_on_commit_callbacks):
    settings.IMPORT_BACKGROUND_MESSAGES = 1
    with django_capture_on_commit_callbacks() as callbacks:
        response = browser.post("/import/", {"file": _file(json.dumps([open_webui_chat()]).encode())})
    assert response.status_code == 302
    page = browser.get(response["Location"]).content.decode()
    assert 'id="import-job"' in page and 'data-status="queued"' in page and "js/import.js" in page
    for callback in callbacks:
        callback()
    page = browser.get(response["Location"]).content.decode()
    assert 'data-status="done"' in page and "Imported 1 conversation" in page


def test_import_page_lists_your_background_imports(
    browser, client, user, other_user, settings, django_capture_on_commit_callbacks
):
    settings.IMPORT_BACKGROUND_MESSAGES = 1
    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post("/import/", {"file": _file(json.dumps([open_webui_chat()]).encode(), "mine.json")})
    page = browser.get("/import/").content.decode()
    assert f'<a href="{response["Location"]}">mine.json</a>: done, 1 imported' in page
    client.force_login(other_user)
    assert "mine.json" not in client.get("/import/").content.decode()


def test_another_users_import_job_page_is_404(client, other_user, user, settings, django_capture_on_commit_callbacks):
    settings.IMPORT_BACKGROUND_MESSAGES = 1
    client.force_login(user)
    response = client.post("/import/", {"file": _file(json.dumps([open_webui_chat()]).encode())})
    client.force_login(other_user)
    assert client.get(response["Location"]).status_code == 404


def test_import_page_needs_login(client):
    assert client.get("/import/").status_code == 302


def test_a_registered_format_reaches_the_menu_and_the_api(browser, user):
    from exports.formats import FORMATS, ExportFormat, register

    @register
    class TitlesFormat(ExportFormat):
        name = "titles"
        extension = "txt"
        content_type = "text/plain; charset=utf-8"
        label = "Titles only"

        def thread(self, document, context, *, first):
            yield (document["title"] + "\n").encode()

    try:
        thread = make_thread(user, title="Mine")
        assert '<option value="titles">Titles only</option>' in browser.get("/").content.decode()
        response = browser.get(f"/api/export/threads/{thread.pk}/", {"format": "titles"})
        assert b"".join(response.streaming_content) == b"Mine\n"
        assert response["Content-Disposition"] == f'attachment; filename="mine-{str(thread.pk)[:8]}.txt"'
    finally:
        del FORMATS["titles"]


def test_staff_see_import_jobs_in_the_admin_read_only(admin_client, api, settings, django_capture_on_commit_callbacks):
    settings.IMPORT_BACKGROUND_MESSAGES = 1
    data = _file(json.dumps([open_webui_chat()]).encode(), "mine.json")
    with django_capture_on_commit_callbacks(execute=True):
        job_id = api.post("/api/import/", {"file": data}, format="multipart").json()["job"]["id"]
    listing = admin_client.get("/admin/exports/importjob/").content.decode()
    assert "mine.json" in listing and "alice" in listing
    assert admin_client.get(f"/admin/exports/importjob/{job_id}/change/").status_code == 200  # a view
    assert admin_client.get("/admin/exports/importjob/add/").status_code == 403

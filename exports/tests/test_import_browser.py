"""The import page in a real browser against a real server (and, with REDIS_URL, a real Celery
worker): a file over the limit is refused before it is sent; a large file becomes a background
import whose page follows its progress to the result; the page lists it afterwards."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from chatproject.testing import Stack
from exports.tests.fixtures import open_webui_chat

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)")


def test_the_import_page_refuses_a_large_file_at_once_and_follows_a_background_import(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    env = {"IMPORT_BACKGROUND_MESSAGES": "5", "MAX_IMPORT_BYTES": "20000"}
    with Stack(tmp_path, env=env, worker_concurrency=1) as stack, sync_playwright() as playwright:
        [person] = stack.create_users(1, threads_each=0)
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(stack.http_url(0, "/"))
            page.fill("#id_username", person["username"])
            page.fill("#id_password", person["password"])
            page.click("button[type=submit]")
            page.goto(stack.http_url(0, "/import/"))

            too_large = json.dumps([open_webui_chat(f"c{n}") for n in range(40)]).encode()
            assert len(too_large) > 20000
            file_input = page.locator("input[type=file]")
            file_input.set_input_files(
                files=[{"name": "big.json", "mimeType": "application/json", "buffer": too_large}]
            )
            page.get_by_role("button", name="Import", exact=True).click()
            expect(page.locator("#import-too-large")).to_have_text(
                f"The file is larger than 20000 bytes ({len(too_large)} given): nothing was sent."
            )
            assert page.url.endswith("/import/")

            data = json.dumps([open_webui_chat(f"Chat {n}") for n in range(3)]).encode()  # 12 messages: a job
            file_input.set_input_files(files=[{"name": "three.json", "mimeType": "application/json", "buffer": data}])
            page.get_by_role("button", name="Import", exact=True).click()
            expect(page).to_have_url(re.compile(r"/import/[0-9a-f-]{36}/$"))
            job_url = page.url
            # Polled by static/js/import.js until the job is done, then the result page.
            expect(page.get_by_role("heading", name="Imported 3 conversations")).to_be_visible(timeout=30_000)
            expect(page.locator("#import-status")).to_have_text("done")
            for n in range(3):
                expect(page.get_by_role("link", name=f"Chat {n}")).to_be_visible()

            page.goto(stack.http_url(0, "/import/"))
            listed = page.locator(".import-jobs")
            expect(listed).to_contain_text("three.json: done, 3 imported")
            assert listed.get_by_role("link", name="three.json").get_attribute("href") == job_url.removeprefix(
                stack.http_url(0, "")
            )
        finally:
            browser.close()

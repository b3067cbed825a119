"""The dashboard's Profiles panel in a real browser (Debian's Chromium, a real server): record the
server for a second, see the flame graph in the page, get a clear error for a pid not ours.
Screenshots in ``test-artifacts/``. Skipped when /usr/bin/chromium is missing."""

from __future__ import annotations

import pytest

from chatproject.testing import ROOT, Stack

from .browser import CHROMIUM, create_staff, staff_page

ARTIFACTS = ROOT / "test-artifacts"

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)")


def test_record_the_server_and_view_its_flame_graph(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    with Stack(tmp_path, env={"CODE_SANDBOX": "off"}) as stack:
        create_staff(stack)
        ARTIFACTS.mkdir(exist_ok=True)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
            try:
                page, problems = staff_page(browser, stack, height=900)
                page.goto(stack.http_url(0, "/dashboard/"))
                expect(page.locator("#table-profiles")).to_contain_text("No recordings yet.")

                # A pid that is not one of ours: the API's reason, in the panel.
                page.select_option("#profile-target", "pid")
                page.fill("#profile-pid", "1")
                page.fill("#profile-seconds", "1")
                page.click("#profile-start")
                expect(page.locator("#profile-status")).to_contain_text("is not one of this server's")

                page.select_option("#profile-target", "web")
                page.click("#profile-start")
                expect(page.locator("#profile-status")).to_contain_text("Recording process")
                row = page.locator("#table-profiles tbody tr").first
                expect(row).to_contain_text("done", timeout=60_000)
                row.locator("text=View").click()
                image = page.locator("#profile-view-img")
                expect(image).to_be_visible()
                page.wait_for_function("() => document.getElementById('profile-view-img').naturalWidth > 0")
                assert row.locator("a[download]").get_attribute("href").endswith("/data/")
                page.screenshot(path=str(ARTIFACTS / "dashboard-profiles.png"), full_page=True)
                # The refused start logged its 400 in the console; nothing else went wrong.
                assert [p for p in problems if "400" not in p] == []
            finally:
                browser.close()

"""A staff user signed in to a real server in Debian's Chromium: what the dashboard's browser tests share."""

from __future__ import annotations

from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")


def create_staff(stack) -> None:
    stack.manage(
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model\n"
        "if not get_user_model().objects.filter(username='operator').exists():\n"
        "    get_user_model().objects.create_user('operator', password='operator-password', is_staff=True)\n",
    )


def staff_page(browser, stack, *, width: int = 1200, height: int = 800):
    """A page signed in as the staff user of ``create_staff``, and the list its console errors go to."""
    page = browser.new_context(viewport={"width": width, "height": height}).new_page()
    problems: list[str] = []
    page.on("console", lambda message: message.type == "error" and problems.append(message.text))
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(stack.http_url(0, "/accounts/login/"))
    page.fill("#id_username", "operator")
    page.fill("#id_password", "operator-password")
    page.click("button[type=submit]")
    return page, problems

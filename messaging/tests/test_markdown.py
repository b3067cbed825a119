"""The chat page's Markdown renderer (static/js/markdown.js) in a real browser: Debian's Chromium.

It must never hang on hostile input, never let message content inject markup or script, and
link only to http(s) and mailto. The page loads the same files, in the same order, as chat.html.
Skipped when /usr/bin/chromium is missing (CI installs it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SCRIPTS = ["vendor/dompurify/purify.min.js", "vendor/markdown-it/markdown-it.umd.min.js", "js/markdown.js"]
# Generous: each input below renders in well under a second; the old renderer never finished.
RENDER_TIMEOUT_MS = 10_000

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser):
    page = browser.new_page()
    page.set_content('<!doctype html><html><body><div id="out"></div></body></html>')
    for script in SCRIPTS:
        page.add_script_tag(path=str(ROOT / "static" / script))
    yield page
    page.close()


def render(page, source: str) -> str:
    """The HTML the renderer makes of ``source``; fails if it takes longer than RENDER_TIMEOUT_MS.

    The render runs from a timer and the test waits for its flag: a renderer stuck in a loop
    blocks the page, and the wait's own timeout (kept by Playwright, outside the page) ends it.
    """
    page.evaluate(
        """(source) => {
            window.__rendered = false;
            setTimeout(() => {
                ChatMarkdown.renderInto(document.getElementById("out"), source);
                window.__rendered = true;
            }, 0);
        }""",
        source,
    )
    page.wait_for_function("window.__rendered === true", timeout=RENDER_TIMEOUT_MS)
    return page.inner_html("#out")


HOSTILE = {
    "a line of backticks": "`" * 100_000,
    "backtick runs of every length": " ".join("`" * n for n in range(1, 450)),
    "deeply nested emphasis": "*a **a " * 15_000 + "a",
    "emphasis that never closes": "*a" * 50_000,
    "many unclosed brackets": "[" * 100_000 + "a",
    "many unclosed links": "[a](" * 25_000,
    "mixed delimiters": "*_`[" * 25_000,
    "nested quotes": "> " * 50_000 + "a",
    "nested lists": "\n".join("  " * n + "- a" for n in range(3_000)),
    "angle brackets": "<" * 100_000,
}


@pytest.mark.parametrize("source", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_input_renders_in_time(page, source):
    html = render(page, source)
    assert page.evaluate("document.getElementById('out').textContent.length") > 0
    assert "<script" not in html


INJECTIONS = [
    '<img src=x onerror="window.__xss=1">',
    "<script>window.__xss=2</script>",
    '<a href="javascript:window.__xss=3">x</a>',
    "[click](javascript:window.__xss=4)",
    "[click](JAVASCRIPT:window.__xss=5)",
    "[click]( javascript:window.__xss=6 )",
    "[click](data:text/html;base64,PHNjcmlwdD53aW5kb3cuX194c3M9Nzwvc2NyaXB0Pg==)",
    "[click](vbscript:msgbox)",
    "[click](ftp://example.com/file)",
    "[click](//example.com/protocol-relative)",
    "[click](/admin/)",
    "<javascript:window.__xss=8>",
    "[ref]\n\n[ref]: javascript:window.__xss=9",
    "![x](https://example.com/tracker.png)",
    '<svg onload="window.__xss=10">',
    "```html\n<script>window.__xss=11</script>\n```",
    '```"><img src=x onerror=window.__xss=12>\ncode\n```',
    "<iframe src=https://example.com></iframe>",
    '<div style="position:fixed">x</div>',
]


@pytest.mark.parametrize("source", INJECTIONS)
def test_content_cannot_inject_markup_or_script(page, source):
    render(page, source)
    page.wait_for_timeout(50)  # an onerror/onload would have fired by now
    assert page.evaluate("window.__xss") is None
    out = page.locator("#out")
    assert out.locator("img, script, iframe, svg, div, [onerror], [onload], [style]").count() == 0
    hrefs = page.eval_on_selector_all("#out a", "links => links.map(a => a.getAttribute('href'))")
    assert all(href.startswith(("http://", "https://", "mailto:")) for href in hrefs), hrefs


def test_links_are_http_or_mailto_and_open_safely(page):
    render(page, "[site](https://example.com/a?b=1) <mailto:me@example.com> see http://example.org/x too")
    links = page.eval_on_selector_all(
        "#out a", "links => links.map(a => [a.getAttribute('href'), a.rel, a.target, a.textContent])"
    )
    assert links == [
        ["https://example.com/a?b=1", "noopener noreferrer nofollow", "_blank", "site"],
        ["mailto:me@example.com", "noopener noreferrer nofollow", "_blank", "mailto:me@example.com"],
        ["http://example.org/x", "noopener noreferrer nofollow", "_blank", "http://example.org/x"],
    ]


def test_tables_nested_lists_and_emphasis(page):
    source = "\n".join(
        [
            "# Title",
            "",
            "_one_ and *two* and **three**, but snake_case_name stays.",
            "",
            "| name | count |",
            "|:-----|------:|",
            "| a    | 1     |",
            "",
            "- outer",
            "  - inner",
            "    1. deepest",
            "",
            "```python",
            "print('hi')",
            "```",
            "line one",
            "line two",
        ]
    )
    render(page, source)
    out = page.locator("#out")
    assert out.locator("h3").inner_text() == "Title"
    assert out.locator("em").all_inner_texts() == ["one", "two"]
    assert out.locator("strong").inner_text() == "three"
    assert "snake_case_name" in out.inner_text()
    assert out.locator("table th").all_inner_texts() == ["name", "count"]
    assert out.locator("table td.align-right").inner_text() == "1"
    assert out.locator("ul ul ol li").inner_text() == "deepest"
    assert out.locator("pre code.language-python").inner_text() == "print('hi')\n"
    assert out.locator("p br").count() == 1  # a single newline is a line break, as people type


def test_renders_plain_text_when_the_libraries_are_missing(browser):
    page = browser.new_page()
    page.set_content('<div id="out"></div>')
    page.add_script_tag(path=str(ROOT / "static" / "js" / "markdown.js"))
    assert render(page, "**bold** <b>x</b>") == "**bold** &lt;b&gt;x&lt;/b&gt;"
    page.close()

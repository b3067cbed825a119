"""Render times of the chat page's Markdown renderer (static/js/markdown.js) in Chromium.

    python3 bench/run.py markdown [--sizes 25000,100000,400000 --repeat 5]

For each input shape (ordinary chat text, and the hostile shapes the tests use: runs of
backticks, nested and unclosed emphasis, unclosed brackets and links, mixed delimiters, big
tables) and each size in characters, the median of ``--repeat`` renders into a detached element.
Time that grows in step with the size is linear; a quadratic renderer grows 16x per 4x.
Needs Debian's Chromium at /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ["vendor/dompurify/purify.min.js", "vendor/markdown-it/markdown-it.umd.min.js", "js/markdown.js"]
PROSE = "Some *text* with `code`, a [link](https://example.com) and **bold** words.\n\n- a list item\n"

SHAPES: dict[str, Callable[[int], str]] = {
    "ordinary chat text": lambda n: (PROSE * (n // len(PROSE) + 1))[:n],
    "backticks": lambda n: "`" * n,
    "backtick runs": lambda n: " ".join("`" * k for k in range(1, int((2 * n) ** 0.5))),
    "nested emphasis": lambda n: "*a **a " * (n // 7),
    "unclosed emphasis": lambda n: "*a" * (n // 2),
    "unclosed brackets": lambda n: "[" * n,
    "unclosed links": lambda n: "[a](" * (n // 4),
    "mixed delimiters": lambda n: "*_`[" * (n // 4),
    "table rows": lambda n: "|a|b|\n|-|-|\n" + "|x|y|\n" * (n // 6),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="25000,100000,400000", help="input sizes in characters")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page()
        page.set_content("<!doctype html><div id=out></div>")
        for script in SCRIPTS:
            page.add_script_tag(path=str(ROOT / "static" / script))
        print(f"| Input | {' | '.join(f'{size:,} chars' for size in sizes)} |")
        print(f"|---|{'---|' * len(sizes)}")
        for name, make in SHAPES.items():
            cells = []
            for size in sizes:
                times = page.evaluate(
                    """([source, repeat]) => {
                        const out = document.createElement("div");
                        const times = [];
                        for (let i = 0; i < repeat; i++) {
                            const start = performance.now();
                            ChatMarkdown.renderInto(out, source);
                            times.push(performance.now() - start);
                        }
                        return times;
                    }""",
                    [make(size), args.repeat],
                )
                cells.append(f"{statistics.median(times):.0f} ms")
            print(f"| {name} | {' | '.join(cells)} |", flush=True)
        browser.close()


if __name__ == "__main__":
    main()

"""Pictures of the page in each state a newcomer meets, for reviewing its look: wide and
phone, light and dark, the empty page, a long reply with a heading, a list, a table and
code, an error, and the reconnecting banner (docs/screenshot-review-*.png).

The replies here are scripted text (scripted_server.py), chosen to show each element; the
README's own pictures (screenshots.py) are of the real model's replies.

    python -m tests.web.review_screenshots [--out DIR]
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

from infra.paths import REPO_ROOT
from tests.web.conftest import Chromium
from tests.web.scripted_server import CLOSE, ScriptedChatServer, done, reply_frames

LONG_REPLY = """## Reading a JSON file in Python

Use the standard library's `json` module. Three steps:

1. Open the file with `open()`.
2. Parse it with `json.load()`.
3. Use the result like any dictionary.

```python
import json

with open("settings.json", encoding="utf-8") as file:
    settings = json.load(file)

print(settings["theme"])
```

| Function | Reads from | Returns |
| :--- | :--- | :--- |
| `json.load` | a file | a Python object |
| `json.loads` | a string | a Python object |

> Tip: pass `encoding="utf-8"` so the file reads the same on every system.

That is all you need for most files."""

WIDE = {"viewport": {"width": 1280, "height": 900}}
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}


def script(message: dict):
    if message.get("action") != "chat":
        return []
    if message["prompt"].startswith("fail"):
        return [(0, {"type": "error", "code": "rate_limited", "message": "Rate exceeded."})]
    if message["prompt"].startswith("hold"):
        return reply_frames("Sure. Here is the first part of a longer answer, ", pause=0.01)
    # Word by word, as a model streams it.
    return reply_frames(*re.split(r"(?<= )", LONG_REPLY), end=done())


def _send(page: Page, text: str) -> None:
    page.locator("#prompt").fill(text)
    page.locator("#send").click()


def _answered(page: Page, text: str) -> None:
    _send(page, text)
    expect(page.locator(".message.reply").last).to_have_attribute("data-reason", "end")


def shoot(browser, server: ScriptedChatServer, out: Path) -> list[Path]:
    written = []

    def picture(name: str, options: dict, arrange) -> None:
        context = browser.new_context(**options)
        page = context.new_page()
        page.goto(server.http_url)
        expect(page.locator("#status")).to_have_attribute("data-state", "connected")
        arrange(page)
        page.wait_for_timeout(300)
        path = out / f"screenshot-review-{name}.png"
        page.screenshot(path=str(path))
        written.append(path)
        context.close()

    def reconnecting(page: Page) -> None:
        _answered(page, "How do I read a JSON file in Python?")
        server.refusing = True
        server.push(CLOSE)
        expect(page.locator("#reconnect")).to_be_visible()

    def streaming(page: Page) -> None:
        _answered(page, "How do I read a JSON file in Python?")
        _send(page, "hold: and a longer one?")
        expect(page.locator(".message.reply.streaming")).to_contain_text("first part")

    for scheme in ("light", "dark"):
        picture(f"empty-wide-{scheme}", {**WIDE, "color_scheme": scheme}, lambda page: None)
        picture(
            f"reply-wide-{scheme}",
            {**WIDE, "color_scheme": scheme},
            lambda page: _answered(page, "How do I read a JSON file in Python?"),
        )
        picture(
            f"reply-phone-{scheme}",
            {**PHONE, "color_scheme": scheme},
            lambda page: _answered(page, "How do I read a JSON file in Python?"),
        )
    picture("empty-phone-light", {**PHONE, "color_scheme": "light"}, lambda page: None)

    def refused(page: Page) -> None:
        _send(page, "fail: too many")
        expect(page.locator(".message.error")).to_be_visible()

    picture("error-wide-light", {**WIDE, "color_scheme": "light"}, refused)
    picture("streaming-wide-light", {**WIDE, "color_scheme": "light"}, streaming)
    picture("reconnect-wide-light", {**WIDE, "color_scheme": "light"}, reconnecting)
    server.refusing = False
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.web.review_screenshots")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs", help="default: docs/")
    args = parser.parse_args(argv)
    server = ScriptedChatServer(script, config={"model": "SmolLM2-135M-Instruct.Q4_1.gguf"})
    server.start()
    try:
        with sync_playwright() as playwright:
            browser = Chromium().launch(playwright)
            try:
                written = shoot(browser, server, args.out)
            finally:
                browser.close()
    finally:
        server.stop()
    print("wrote", ", ".join(str(path) for path in written))


if __name__ == "__main__":
    main()

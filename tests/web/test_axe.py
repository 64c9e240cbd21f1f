"""axe-core (npm, pinned in package.json) finds no accessibility violation in any of the
page's states: empty, streaming, a finished reply with headings, a list, a table and code,
an error, the settings and chats panels open, the reconnecting banner, a phone's width, and
the dark scheme. axe is added to the page by the test (the page never ships it).

The server is scripted (scripted_server.py): exact replies, not generation.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.web.dev_packages import axe_source, package_version
from tests.web.page_helpers import connected
from tests.web.scripted_server import CLOSE, done, reply_frames

pytestmark = pytest.mark.browser

RICH = """## Plan

Three steps, then [the docs](https://example.com/docs):

1. Read the **input**.
2. Parse it with `json.loads`.
3. Print the result.

- a point
- another point

| Step | Cost |
| :--- | ---: |
| read | 1 ms |
| parse | 4 ms |

> Measure before you optimise.

```python
import json
print(json.loads('{"a": 1}'))
```

---

That is all."""

PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}

RUN_AXE = """async () => {
  const { violations } = await axe.run(document, { resultTypes: ["violations"] });
  return violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map((n) => n.target.join(" ") + ": " + n.failureSummary),
  }));
}"""


def script(message: dict):
    action = message.get("action")
    if action != "chat":
        return []
    prompt = message["prompt"]
    if prompt == "stream":
        return reply_frames("Partial answer, still ", "growing with `code` and", pause=0.01)
    if prompt == "fail":
        return [(0, {"type": "error", "code": "rate_limited", "message": "Too many requests."})]
    return reply_frames(RICH, end=done())


def send(page: Page, text: str) -> None:
    """Type `text` and press Send (on a touch screen Enter is a new line)."""
    page.locator("#prompt").fill(text)
    page.locator("#send").click()


def violations(page: Page) -> list[dict]:
    if not page.evaluate("typeof window.axe === 'object'"):
        # Evaluated by the test's driver, so the page's own script policy does not apply.
        page.evaluate(axe_source())
    return page.evaluate(RUN_AXE)


def finished(page: Page, prompt: str = "show everything") -> Page:
    send(page, prompt)
    expect(page.locator(".message.reply").last).to_have_attribute("data-reason", "end")
    return page


def streaming(page: Page) -> Page:
    send(page, "stream")
    expect(page.locator(".message.reply.streaming")).to_contain_text("growing with")
    return page


def errored(page: Page) -> Page:
    send(page, "fail")
    expect(page.locator(".message.error")).to_be_visible()
    return page


def settings_open(page: Page) -> Page:
    finished(page)
    page.locator("#settings summary").click()
    expect(page.locator("#max-tokens")).to_be_visible()
    return page


def chats_open(page: Page) -> Page:
    finished(page)
    page.locator("#chats summary").click()
    expect(page.locator("#chat-list li")).to_have_count(1)
    return page


STATES = {
    "empty": ({}, lambda page, server: page),
    "streaming": ({}, lambda page, server: streaming(page)),
    "finished rich reply": ({}, lambda page, server: finished(page)),
    "error": ({}, lambda page, server: errored(page)),
    "settings open": ({}, lambda page, server: settings_open(page)),
    "chats open": ({}, lambda page, server: chats_open(page)),
    "reconnecting": ({}, lambda page, server: reconnecting(page, server)),
    "phone": (PHONE, lambda page, server: finished(page)),
    "phone settings open": (PHONE, lambda page, server: settings_open(page)),
    "dark": ({"color_scheme": "dark"}, lambda page, server: finished(page)),
    "dark streaming": ({"color_scheme": "dark"}, lambda page, server: streaming(page)),
    "dark error": ({"color_scheme": "dark"}, lambda page, server: errored(page)),
    "dark phone": ({**PHONE, "color_scheme": "dark"}, lambda page, server: finished(page)),
}


def reconnecting(page: Page, server) -> Page:
    finished(page)
    server.refusing = True
    server.push(CLOSE)
    expect(page.locator("#reconnect")).to_be_visible()
    return page


@pytest.mark.parametrize("state", list(STATES))
def test_axe_finds_no_violation(state, scripted, open_page):
    assert package_version("axe-core") == "4.14.1"
    options, arrange = STATES[state]
    server = scripted(script, config={"model": "tiny-test-model"})
    page = connected(open_page(server.http_url, **options))
    arrange(page, server)
    assert violations(page) == []

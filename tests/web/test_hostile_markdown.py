"""Hostile Markdown in a reply (hostile_markdown.py) renders safely: nothing in it runs or
loads, no unsafe link is a link, nesting stops at markdown.js's MAX_DEPTH (10,000 levels
would overflow the stream's merge and the layout), and a 100 KB table, streamed, is one
table with every row, as the same text drawn whole. What drawing costs is measured by
`python -m tests.web.hostile_markdown`, never asserted here.

The server is scripted (scripted_server.py): exact replies, not generation.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.web.hostile_markdown import HOSTILE, MEASURE, SLICE_CHARS
from tests.web.page_helpers import connected, send
from tests.web.scripted_server import answering, done, on_chat, reply_frames

pytestmark = pytest.mark.browser

SAFE = """() => ({
  pwned: window.__pwned ?? null,
  tags: [...new Set([...document.querySelectorAll("#messages *")].map((n) => n.tagName))],
  hrefs: [...document.querySelectorAll("#messages a")].map((a) => a.getAttribute("href")),
  attributes: [...new Set([...document.querySelectorAll("#messages *")]
    .flatMap((n) => [...n.attributes].map((a) => a.name)))],
})"""


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_markdown_renders_safely_whole_and_streamed(name, scripted, open_page):
    server = scripted(answering("x"))
    page = connected(open_page(server.http_url))
    figures = page.evaluate(f"async (args) => ({MEASURE})(args)", [HOSTILE[name], SLICE_CHARS])
    max_depth = page.evaluate("import('./markdown.js').then((m) => m.MAX_DEPTH)")
    assert figures["deepest"] <= max_depth + 2  # a code block's own wrapper and header


@pytest.mark.parametrize("name", ["javascript: links", "raw HTML"])
def test_links_and_markup_in_a_streamed_reply_stay_harmless(name, scripted, open_page):
    text = HOSTILE[name]
    pieces = [text[at : at + 4_000] for at in range(0, len(text), 4_000)]
    server = scripted(on_chat(reply_frames(*pieces, end=done())))
    page = connected(open_page(server.http_url))
    send(page, "hostile")
    expect(page.locator(".message.reply")).to_have_attribute("data-reason", "end", timeout=20_000)
    found = page.evaluate(SAFE)
    assert found["pwned"] is None
    assert not {"SCRIPT", "IMG", "IFRAME"} & set(found["tags"])
    assert found["hrefs"] == []  # every link there is unsafe: each stays text
    assert not [a for a in found["attributes"] if a.startswith("on") or a in {"src", "style"}]
    expect(page.locator(".message.reply .bubble")).to_contain_text(
        "[x](javascript:alert(1))" if name != "raw HTML" else "<script>window.__pwned"
    )


def test_a_100_kb_table_streamed_is_one_table_with_every_row(scripted, open_page):
    text = HOSTILE["100 KB table"] + "\nAfter the table.\n"
    pieces = [text[at : at + 700] for at in range(0, len(text), 700)]
    server = scripted(on_chat(reply_frames(*pieces, end=done())))
    page = connected(open_page(server.http_url))
    send(page, "a big table")
    reply = page.locator(".message.reply")
    expect(reply).to_have_attribute("data-reason", "end", timeout=30_000)
    assert reply.locator("table").count() == 1
    assert reply.locator("tbody tr").count() == 3_000
    expect(reply.locator("tbody tr").last.locator("td")).to_have_text(
        ["2999", "cell 2999", "more text", "c2999"]
    )
    expect(reply.locator("tbody tr").first.locator("td").first).to_have_class("align-right")
    expect(reply.locator(".bubble > p")).to_have_text("After the table.")
    # The same as the whole text drawn at once.
    same = page.evaluate(
        """async (text) => {
          const { renderMarkdown } = await import("./markdown.js");
          const whole = document.createElement("div");
          whole.append(renderMarkdown(text));
          const shown = document.querySelector(".message.reply .bubble").cloneNode(true);
          shown.querySelectorAll(".token").forEach((t) => t.replaceWith(t.textContent));
          return whole.querySelector("table").outerHTML === shown.querySelector("table").outerHTML;
        }""",
        text,
    )
    assert same

"""Replies are Markdown, rendered by markdown-it (web_client/vendor/markdown-it) into
elements made by the page: code blocks, lists, tables and links render; raw HTML, script
and unsafe links stay text; and a reply streamed in small deltas ends as the same elements
as the whole text rendered at once.

The server is scripted (scripted_server.py): exact replies, not generation.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.web.page_helpers import connected, send
from tests.web.scripted_server import answering

pytestmark = pytest.mark.browser

REPLY = """Intro with a [safe link](https://example.com/docs) and https://example.org/auto.

- one
- **two**

| Name | Score |
| :--- | ---: |
| Ada | 10 |

```js
console.log("<b>hi</b>");
```

<img src=x onerror="window.__pwned = 1"><script>window.__pwned = 2</script>

[bad](javascript:window.__pwned=3) ![pic](https://example.com/p.png)
"""


def test_code_lists_tables_and_links_render_and_html_stays_text(scripted, open_page):
    server = scripted(answering(REPLY))
    page = connected(open_page(server.http_url))
    send(page, "show me everything")
    bubble = page.locator(".message.reply .bubble")
    expect(page.locator(".message.reply")).to_have_attribute("data-reason", "end")

    links = bubble.locator("a")
    expect(links).to_have_text(["safe link", "https://example.org/auto", "pic"])
    assert [links.nth(i).get_attribute("href") for i in range(3)] == [
        "https://example.com/docs",
        "https://example.org/auto",
        "https://example.com/p.png",  # a picture is a link to it, never loaded
    ]
    assert {links.nth(i).get_attribute("rel") for i in range(3)} == {"noopener noreferrer nofollow"}
    expect(bubble.locator("ul > li")).to_have_text(["one", "two"])
    expect(bubble.locator("ul strong")).to_have_text("two")
    expect(bubble.locator("table th")).to_have_text(["Name", "Score"])
    expect(bubble.locator("table td")).to_have_text(["Ada", "10"])
    expect(bubble.locator("table td").nth(1)).to_have_class("align-right")
    expect(bubble.locator(".code-block .code-language")).to_have_text("js")
    expect(bubble.locator(".code-block code")).to_have_text('console.log("<b>hi</b>");')

    # Markup is text: shown, never made into elements, and nothing ran.
    expect(bubble).to_contain_text('<img src=x onerror="window.__pwned = 1">')
    expect(bubble).to_contain_text("<script>window.__pwned = 2</script>")
    expect(bubble).to_contain_text("[bad](javascript:window.__pwned=3)")
    assert page.locator("#messages img, #messages script, #messages b").count() == 0
    assert page.evaluate("window.__pwned") is None
    # Only the page's own attributes: no event handler, style or source from the text.
    names = page.evaluate(
        "[...new Set([...document.querySelectorAll('#messages *')]"
        ".flatMap((n) => [...n.attributes].map((a) => a.name)))]"
    )
    assert not [name for name in names if name.startswith("on") or name in {"style", "src"}]


STREAMED = [
    REPLY,
    "para\n#tag\n\n1\n2. two\n\n- a\n\n  still a\n- b\n\nend",
    "Setext\n===\n\n> quote\nlazy\n\n```\nopen fence",
    "## Two\ntext\n#### four\n\n- ### in a list\n\n# one\n###### six\nSetext\n---\n",
    # A long table streams row by row (markdown_stream.js): the same table in the end.
    "Before\n\n| n | word |\n| -: | :- |\n"
    + "".join(f"| {n} | *w{n}* |\n" for n in range(60))
    + "| short |\n| a | b | c |\n\nAfter\n\n| x |\n| - |\n"
    + "".join(f"| {n} |\n" for n in range(30))
    + "> ends it\n\n| y |\n| - |\n"
    + "".join(f"| {n} |\n" for n in range(25)),
]


def test_a_reply_streamed_in_small_deltas_ends_as_the_whole_text_renders(scripted, open_page):
    server = scripted(answering("x"))
    page = connected(open_page(server.http_url))
    same = page.evaluate(
        """async (texts) => {
          const { MarkdownStream } = await import("./markdown_stream.js");
          const { renderMarkdown } = await import("./markdown.js");
          const results = [];
          for (const text of texts) {
            const streamed = document.createElement("div");
            const stream = new MarkdownStream(streamed);
            for (let at = 0; at < text.length; at += 3) stream.append(text.slice(at, at + 3));
            stream.finish();
            const whole = document.createElement("div");
            whole.append(renderMarkdown(text));
            results.push([streamed.innerHTML, whole.innerHTML]);
          }
          return results;
        }""",
        STREAMED,
    )
    for streamed, whole in same:
        assert streamed == whole

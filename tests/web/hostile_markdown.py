"""Hostile Markdown a reply may carry, and what drawing it costs the page.

The budget: no task of the page's main thread spent drawing a reply takes more than 100 ms
(the time within which a page should answer a key or a tap), whether the reply streams in
or comes whole (a reload, a conversation opened: reply_view.js draws it in 8 KB slices, one
a task). The measure: each input streamed in slices of what 50 ms of fast tokens bring, the
longest draw; and the page reloaded on a conversation holding the input, its longest task.

    python -m tests.web.hostile_markdown    # prints each input's costs, in ms

tests/web/test_hostile_markdown.py checks that each renders safely; the figures are shown
here, never asserted by a test (a busy machine moves them).
"""

from __future__ import annotations

import json

DEPTH = 10_000

HOSTILE = {
    "javascript: links": "[x](javascript:alert(1)) <javascript:alert(1)> [y](JaVaScRiPt:alert(2)) "
    "[z](data:text/html,<script>alert(3)</script>) ![i](javascript:alert(4))\n" * 700,
    "raw HTML": '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">\n\n'
    '<iframe srcdoc="<script>parent.__pwned = 3</script>"></iframe> <a href=javascript:1>a</a>\n\n'
    * 600,
    "lists 10,000 deep": "- " * DEPTH + "deep\n",
    "quotes 10,000 deep": ">" * DEPTH + " deep\n",
    # Nested a line at a time, each line indented further: 300 deep is 90 KB already.
    "lists 300 deep, one a line": "".join("  " * i + "- x\n" for i in range(300)),
    "emphasis 10,000 deep": "*a " * DEPTH + "b" + " a*" * DEPTH,
    "100 KB table": "| n | word | more | code |\n| -: | :- | :-: | - |\n"
    + "".join(f"| {i} | cell {i} | more text | `c{i}` |\n" for i in range(3_000)),
}

# Each input drawn whole, and streamed in slices of about what 50 ms of fast tokens bring
# (reply_view.js draws a burst at most once per 50 ms), into a reply as the page has it.
MEASURE = """async ([text, slice]) => {
  const { renderMarkdown } = await import("./markdown.js");
  const { MarkdownStream } = await import("./markdown_stream.js");
  const reply = () => {
    const item = document.createElement("li");
    item.className = "message reply";
    const bubble = document.createElement("div");
    bubble.className = "bubble";
    item.append(bubble);
    document.getElementById("messages").append(item);
    return [item, bubble];
  };
  const timed = (action) => {
    const start = performance.now();
    action();
    document.body.getBoundingClientRect(); // its layout counts too
    return performance.now() - start;
  };
  let [item, bubble] = reply();
  const whole = timed(() => bubble.append(renderMarkdown(text)));
  item.remove();
  [item, bubble] = reply();
  const stream = new MarkdownStream(bubble);
  const draws = [];
  for (let at = 0; at < text.length; at += slice) {
    draws.push(timed(() => stream.append(text.slice(at, at + slice))));
  }
  draws.push(timed(() => stream.finish()));
  const depth = (node) => node.firstElementChild
    ? 1 + Math.max(...[...node.children].map(depth)) : 0;
  const deepest = depth(bubble);
  item.remove();
  return { chars: text.length, whole_ms: whole, draws: draws.length,
           worst_draw_ms: Math.max(...draws), deepest };
}"""
SLICE_CHARS = 800


# Every long task (over 50 ms) of the page, from its first script on.
LONG_TASKS = """
window.__longTasks = [];
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) window.__longTasks.push(entry.duration);
}).observe({ type: "longtask", buffered: true });
"""


def reloaded(browser, text: str) -> float:
    """The longest task of a page reloaded on a conversation whose reply is `text`, in ms."""
    from playwright.sync_api import expect

    from tests.web.scripted_server import ScriptedChatServer, answering

    server = ScriptedChatServer(answering(text))
    server.start()
    try:
        page = browser.new_page()
        page.add_init_script(LONG_TASKS)
        page.goto(server.http_url)
        expect(page.locator("#status")).to_have_attribute("data-state", "connected")
        page.locator("#prompt").fill("hostile")
        page.locator("#send").click()
        reply = page.locator(".message.reply")
        expect(reply).to_have_attribute("data-reason", "end", timeout=60_000)
        page.reload()
        expect(reply).to_have_attribute("data-reason", "end", timeout=60_000)
        page.wait_for_timeout(1500)  # the slices after
        longest = page.evaluate("Math.max(0, ...window.__longTasks)")
        page.close()
        return longest
    finally:
        server.stop()


def main() -> None:
    from playwright.sync_api import sync_playwright

    from tests.web.conftest import Chromium
    from tests.web.scripted_server import ScriptedChatServer, answering

    server = ScriptedChatServer(answering("x"))
    server.start()
    try:
        with sync_playwright() as playwright:
            browser = Chromium().launch(playwright)
            page = browser.new_page()
            page.goto(server.http_url)
            page.wait_for_function(
                "document.querySelector('#status').dataset.state === 'connected'"
            )
            for name, text in HOSTILE.items():
                figures = page.evaluate(MEASURE, [text, SLICE_CHARS])
                figures["reloaded_longest_task_ms"] = reloaded(browser, text)
                print(f"{name:32} {json.dumps({k: round(v, 1) for k, v in figures.items()})}")
            browser.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()

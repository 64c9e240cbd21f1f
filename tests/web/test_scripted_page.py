"""Page behaviour that needs replies the real model cannot be made to give on demand.

The server here is scripted (see scripted_server.py): these tests check how the page shows
what arrives, not generation.
"""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from tests.web.scripted_server import CLOSE, ScriptedChatServer

pytestmark = pytest.mark.browser

INJECTION = (
    '<img src=x onerror="window.__pwned = 1"><script>window.__pwned = 2</script>'
    "**bold** `<b>code</b>`"
)


def _eventually(check, timeout: float = 5) -> None:
    """The server runs in another thread: wait for what the page sent to arrive."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the server never saw it"
        time.sleep(0.02)


def _done(reason: str = "end") -> dict:
    return {
        "type": "done",
        "reason": reason,
        "usage": {"prompt_tokens": 5, "completion_tokens": 9},
        "timing": {"init_ms": 0, "ttft_ms": 12, "tokens_per_s": 99.5},
    }


@pytest.fixture
def server():
    def script(message: dict) -> list[tuple[float, dict]]:
        if message.get("action") != "chat":
            return []
        if message["prompt"] == "busy please":
            return [(0, {"type": "error", "code": "busy", "message": "A reply is running."})]
        return [
            (0, {"type": "status", "state": "generating"}),
            (0.05, {"type": "delta", "text": INJECTION[:40], "seq": 0}),
            (0.05, {"type": "delta", "text": INJECTION[40:], "seq": 1}),
            (0, _done()),
        ]

    server = ScriptedChatServer(script)
    server.start()
    yield server
    server.stop()


def test_markup_in_a_reply_is_shown_as_text_and_runs_nothing(server, open_page):
    page = open_page(server.http_url)
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    page.locator("#prompt").fill("say something nasty")
    page.keyboard.press("Enter")
    reply = page.locator(".message.reply").last
    expect(reply).to_have_attribute("data-reason", "end")
    expect(reply).to_contain_text('<img src=x onerror="window.__pwned = 1">')
    expect(reply).to_contain_text("<script>window.__pwned = 2</script>")
    # The safe Markdown subset still applies, as elements filled with text.
    expect(reply.locator("strong")).to_have_text("bold")
    expect(reply.locator("code")).to_have_text("<b>code</b>")
    assert page.evaluate("window.__pwned") is None
    assert page.locator("#messages img, #messages script, #messages b").count() == 0


def test_a_busy_refusal_puts_the_prompt_back_in_the_box(server, open_page):
    page = open_page(server.http_url)
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    page.locator("#prompt").fill("busy please")
    page.locator("#send").click()
    expect(page.locator(".message.error")).to_contain_text("still busy")
    expect(page.locator(".message.error")).to_contain_text("A reply is running.")
    expect(page.locator(".message.error")).to_contain_text("Your message is back in the box.")
    expect(page.locator("#prompt")).to_have_value("busy please")
    # The prompt is in one place, the box: no dimmed copy of it stays in the conversation.
    expect(page.locator(".message.prompt")).to_have_count(0)
    # Controls are back to idle: the prompt can be sent again.
    expect(page.locator("#send")).to_be_visible()
    expect(page.locator("#stop")).to_be_hidden()


def test_ws_in_the_address_overrides_config_json_and_token_is_passed_on(open_page):
    configured = ScriptedChatServer(lambda _message: [])
    chosen = ScriptedChatServer(lambda _message: [])
    configured.start()
    chosen.start()
    try:
        page = open_page(f"{configured.http_url}?ws={chosen.ws_url}&token=s3cret%2Bkey")
        expect(page.locator("#status")).to_have_attribute("data-state", "connected")
        _eventually(lambda: chosen.handshakes == [{"token": "s3cret+key"}])
        assert configured.handshakes == []
    finally:
        configured.stop()
        chosen.stop()


def test_config_json_names_the_websocket_by_default(server, open_page):
    page = open_page(server.http_url)
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    assert server.handshakes == [{}]


def test_a_cold_start_shows_model_loading_with_ticking_seconds(open_page):
    """The scripted server announces a cold start; the page must count the seconds. The
    page's clock stands still but when the test moves it, and the reply comes when the
    test pushes it: nothing here waits on real time."""

    def script(message: dict) -> list[tuple[float, dict]]:
        if message.get("action") != "chat":
            return []
        return [(0, {"type": "status", "state": "loading"})]

    server = ScriptedChatServer(script)
    server.start()
    try:
        page = open_page(server.http_url, paused_clock=True)
        expect(page.locator("#status")).to_have_attribute("data-state", "connected")
        page.locator("#prompt").fill("hi")
        page.locator("#prompt").press("Enter")
        expect(page.locator("#status")).to_have_attribute("data-state", "loading")
        expect(page.locator("#status-text")).to_have_text("Model loading (cold start)…")
        clock = page.locator("#status-clock")
        expect(clock).to_have_text("0 s")
        page.clock.run_for(999)
        expect(clock).to_have_text("0 s")  # whole seconds: 0.999 s is still 0
        page.clock.run_for(1)
        expect(clock).to_have_text("1 s")
        page.clock.run_for(1000)
        expect(clock).to_have_text("2 s")
        server.push({"type": "status", "state": "generating"})
        server.push({"type": "delta", "text": "Hello.", "seq": 0})
        server.push({**_done(), "timing": {"init_ms": 1950, "ttft_ms": 40, "tokens_per_s": 80.0}})
        expect(page.locator("#status")).to_have_attribute("data-state", "done")
        expect(page.locator(".message.reply .meta")).to_have_text(
            "model load 1.9 s · time to first token 40 ms · 80.0 tokens/s · 9 tokens"
        )
    finally:
        server.stop()


def test_a_reply_cut_off_by_a_dropped_connection_says_so(open_page):
    def script(message: dict) -> list[tuple[float, dict]]:
        if message.get("action") != "chat":
            return []
        return [
            (0, {"type": "status", "state": "generating"}),
            (0, {"type": "delta", "text": "The first half", "seq": 0}),
            (0.2, CLOSE),
        ]

    server = ScriptedChatServer(script)
    server.start()
    try:
        page = open_page(server.http_url)
        expect(page.locator("#status")).to_have_attribute("data-state", "connected")
        page.locator("#prompt").fill("hi")
        page.locator("#prompt").press("Enter")
        reply = page.locator(".message.reply")
        expect(reply).to_have_attribute("data-reason", "interrupted")
        expect(reply).to_contain_text("The first half")
        expect(reply.locator(".meta")).to_contain_text("connection dropped")
        expect(page.locator(".message.notice").first).to_contain_text("connection dropped")
        expect(page.locator(".message.notice").last).to_contain_text("Reconnected")
        expect(page.locator("#status")).to_have_attribute("data-state", "connected")
        _eventually(lambda: len(server.handshakes) == 2)
        # The half-answered prompt is not sent a second time.
        assert [m["action"] for m in server.received] == ["chat"]
    finally:
        server.stop()


def test_keyboard_alone_reaches_every_control_in_order(server, open_page):
    page = open_page(server.http_url)
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    expect(page.get_by_role("textbox", name="Message")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("Connected")
    # The box has focus from the start; backwards from it: New chat, Settings, the skip link.
    expect(page.locator("#prompt")).to_be_focused()
    page.keyboard.press("Shift+Tab")
    expect(page.get_by_role("button", name="New chat")).to_be_focused()
    page.keyboard.press("Shift+Tab")
    expect(page.locator("#settings summary")).to_be_focused()
    page.keyboard.press("Shift+Tab")
    expect(page.get_by_role("link", name="Skip to the message box")).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    expect(page.locator("#prompt")).to_be_focused()
    page.keyboard.type("hello")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Send")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator(".message.reply")).to_have_attribute("data-reason", "end")
    # Send was the focused button; focus went back to the box, not onto Stop.
    expect(page.locator("#prompt")).to_be_focused()
    # After a reply, Tab goes on to its buttons and the box's own.
    page.keyboard.press("Shift+Tab")
    expect(page.get_by_role("button", name="Regenerate the reply")).to_be_focused()
    page.locator("#prompt").focus()
    page.locator("#new-chat").focus()
    page.keyboard.press("Enter")  # New chat
    expect(page.locator("#messages > *")).to_have_count(0)
    _eventually(lambda: server.received[-1] == {"action": "reset"})


def test_a_phone_gets_one_column_without_sideways_scrolling(server, open_page):
    page = open_page(
        server.http_url, viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True
    )
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    page.locator("#prompt").fill("x" * 300)
    page.locator("#send").tap()  # on a touch screen Enter is a new line
    expect(page.locator(".message.reply")).to_have_attribute("data-reason", "end")
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    box = page.locator("#prompt").bounding_box()
    send = page.locator("#send").bounding_box()
    assert box["x"] >= 0 and send["x"] + send["width"] <= 360
    assert send["y"] + send["height"] <= 740  # the composer stays on screen


def test_dark_mode_follows_the_system_setting(server, open_page):
    light = open_page(server.http_url, color_scheme="light")
    dark = open_page(server.http_url, color_scheme="dark")
    background = "() => getComputedStyle(document.body).backgroundColor"
    assert light.evaluate(background) == "rgb(246, 245, 241)"
    assert dark.evaluate(background) == "rgb(23, 25, 28)"


def test_a_draft_survives_a_reload(server, open_page):
    page = open_page(server.http_url)
    page.locator("#prompt").fill("half a thought")
    page.reload()
    expect(page.locator("#prompt")).to_have_value("half a thought")


def test_api_gateways_own_error_frame_is_shown_and_the_prompt_kept(open_page):
    """API Gateway answers a failed route with {"message": ...} and no type."""
    gateway_error = {"message": "Internal server error", "connectionId": "c1", "requestId": "r1"}
    server = ScriptedChatServer(
        lambda message: [(0, gateway_error)] if message.get("action") == "chat" else []
    )
    server.start()
    try:
        page = open_page(server.http_url)
        expect(page.locator("#status")).to_have_attribute("data-state", "connected")
        page.locator("#prompt").fill("hello there")
        page.locator("#prompt").press("Enter")
        error = page.locator(".message.error")
        expect(error).to_contain_text("could not handle that request")
        expect(error.locator(".error-detail")).to_have_text("Internal server error")
        expect(page.locator("#prompt")).to_have_value("hello there")
        expect(page.locator("#send")).to_be_visible()
    finally:
        server.stop()


MARKDOWN_CASES = {
    # input: the rendered structure (tag names and text), as the page builds it
    "Plain <b>words</b>\nnext line": [["P", "Plain <b>words</b>\nnext line"]],
    "- one\n- `two`\n\n1. first\n2. **second**": [
        ["UL", "one|two"],
        ["OL", "first|second"],
    ],
    "```html\n<script>alert(1)</script>\n```\nafter": [
        ["DIV", "<script>alert(1)</script>"],
        ["P", "after"],
    ],
    "```\nstill streaming <img src=x>": [["DIV", "still streaming <img src=x>"]],
    "## Title <i>x</i>": [["P", "Title <i>x</i>"]],
}


def test_the_markdown_subset_builds_only_safe_elements(server, open_page):
    page = open_page(server.http_url)
    rendered = page.evaluate(
        """async (cases) => {
          const { renderMarkdown } = await import("./markdown.js");
          const out = {};
          for (const text of cases) {
            const holder = document.createElement("div");
            holder.append(renderMarkdown(text));
            out[text] = {
              blocks: [...holder.children].map((node) => [
                node.tagName,
                node.tagName.endsWith("L")
                  ? [...node.children].map((li) => li.textContent).join("|")
                  : (node.querySelector("pre > code") ?? node).textContent,
              ]),
              tags: [...new Set([...holder.querySelectorAll("*")].map((n) => n.tagName))],
              attributes: [...holder.querySelectorAll("*")].flatMap((n) =>
                [...n.attributes].map((a) => a.name)),
            };
          }
          return out;
        }""",
        list(MARKDOWN_CASES),
    )
    # A code block is a DIV: its language and Copy button (acted on by the page), then PRE.
    allowed_tags = {"P", "UL", "OL", "LI", "DIV", "SPAN", "BUTTON", "PRE", "CODE", "STRONG"}
    allowed_attributes = {"class", "start", "data-language", "type", "data-action", "aria-label"}
    for text, expected in MARKDOWN_CASES.items():
        assert rendered[text]["blocks"] == expected, text
        assert set(rendered[text]["tags"]) <= allowed_tags, text
        assert set(rendered[text]["attributes"]) <= allowed_attributes, text


# New chat during a reply, then a prompt at once. The server runs one reply at a time per
# connection: the reply left behind holds the connection until it has ended (its `done`), and
# the real server lets go of it only just after posting that `done`.
LONG = "Tell me a long story."
BUSY = {"type": "error", "code": "busy", "message": "A reply is still running."}


def _holding_script(lease: dict):
    """LONG starts a reply that only the test ends; a chat while it holds the lease is busy."""

    def script(message: dict) -> list[tuple[float, dict]]:
        action = message.get("action")
        if action == "reset":
            return [(0, {"type": "reset", "stopped": lease["held"]})]
        if action != "chat":
            return []
        if lease["held"]:
            if lease["ended"]:
                lease["held"] = False  # let go just after refusing the first chat after `done`
            return [(0, BUSY)]
        if message["prompt"] == LONG:
            lease.update(held=True, ended=False)
            return [
                (0, {"type": "status", "state": "generating"}),
                (0, {"type": "delta", "text": "Once upon a time", "seq": 0}),
            ]
        return [
            (0, {"type": "status", "state": "generating"}),
            (0, {"type": "delta", "text": "Blue.", "seq": 0}),
            (0, _done()),
        ]

    return script


def _new_chat_during_a_reply_then_a_prompt(page) -> None:
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    page.locator("#prompt").fill(LONG)
    page.locator("#prompt").press("Enter")
    expect(page.locator(".message.reply")).to_contain_text("Once upon a time")
    page.locator("#new-chat").click()
    expect(page.locator("#messages > *")).to_have_count(0)
    page.locator("#prompt").fill("Name one colour.")
    page.locator("#prompt").press("Enter")
    # The prompt is shown as queued behind the old reply, and can still be taken back.
    prompt = page.locator(".message.prompt")
    expect(prompt).to_have_class(re.compile(r"\bqueued\b"))
    expect(prompt.locator(".note")).to_contain_text("Waiting for the previous reply to end")
    expect(page.locator("#stop")).to_be_visible()
    assert page.locator(".message.reply").count() == 0


def _answered_without_a_refusal(page) -> None:
    reply = page.locator(".message.reply")
    expect(reply).to_have_attribute("data-reason", "end", timeout=20000)
    expect(reply.locator(".bubble")).to_have_text("Blue.")
    expect(page.locator(".message.prompt")).not_to_have_class(re.compile(r"\bqueued\b"))
    expect(page.locator("#status")).to_have_attribute("data-state", "done")
    assert page.locator(".message.error, .message.prompt.unsent").count() == 0
    assert "Once upon a time" not in page.locator("#messages").inner_text()


def test_a_prompt_right_after_new_chat_waits_for_the_old_reply_to_end(open_page):
    lease = {"held": False, "ended": False}
    server = ScriptedChatServer(_holding_script(lease))
    server.start()
    try:
        page = open_page(server.http_url)
        _new_chat_during_a_reply_then_a_prompt(page)
        _eventually(lambda: [m["action"] for m in server.received] == ["chat", "reset"])

        # The old reply ends. The first chat after its `done` still finds the lease held
        # (the race the real server's order allows); the page tries again and is answered.
        lease["ended"] = True
        server.push(_done("stopped"))
        _answered_without_a_refusal(page)
        assert [m.get("prompt") for m in server.received if m["action"] == "chat"] == [
            LONG,
            "Name one colour.",  # refused as busy: the old reply had not let go yet
            "Name one colour.",
        ]
    finally:
        server.stop()


@pytest.mark.parametrize("release", ["the connection drops", "the wait runs out"])
def test_an_old_reply_that_never_ends_does_not_hold_a_new_prompt_for_ever(open_page, release):
    """Its `done` never comes: a new connection, or the page's bounded wait, frees the prompt."""
    lease = {"held": False, "ended": False}
    server = ScriptedChatServer(_holding_script(lease))
    server.start()
    try:
        page = open_page(server.http_url)
        _new_chat_during_a_reply_then_a_prompt(page)
        _eventually(lambda: [m["action"] for m in server.received] == ["chat", "reset"])
        if release == "the connection drops":
            lease["held"] = False  # a new connection has no reply running
            server.push(CLOSE)
            expect(page.locator(".message.notice").last).to_contain_text("Reconnected")
        else:
            # The page stops waiting for the `done` and sends; the lease is still held, so
            # it is refused as busy and tried again until the lease lapses (a crashed reply's
            # does), here once the server has refused it once.
            _eventually(lambda: len(server.received) >= 3, timeout=15)
            lease["ended"] = True
        _answered_without_a_refusal(page)
    finally:
        server.stop()

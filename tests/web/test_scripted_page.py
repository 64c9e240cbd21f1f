"""Page behaviour that needs replies the real model cannot be made to give on demand.

The server here is scripted (see scripted_server.py): these tests check how the page shows
what arrives, not generation.
"""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from tests.web.page_helpers import connected, send
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
    connected(page)
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
    connected(page)
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
        connected(page)
        _eventually(lambda: chosen.handshakes == [{"token": "s3cret+key"}])
        assert configured.handshakes == []
    finally:
        configured.stop()
        chosen.stop()


def test_config_json_names_the_websocket_by_default(server, open_page):
    page = open_page(server.http_url)
    connected(page)
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
        connected(page)
        send(page, "hi")
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


def _drop_mid_reply(open_page):
    """A reply with one delta shown, then the connection drops and stays down."""

    def script(message: dict) -> list[tuple[float, dict]]:
        if message.get("action") != "chat":
            return []
        return [
            (0, {"type": "status", "state": "generating"}),
            (0, {"type": "delta", "text": "The first half", "seq": 0}),
        ]

    server = ScriptedChatServer(script)
    server.start()
    page = open_page(server.http_url)
    connected(page)
    send(page, "hi")
    reply = page.locator(".message.reply")
    expect(reply).to_contain_text("The first half")
    server.refusing = True
    server.push(CLOSE)
    expect(reply.locator(".meta")).to_contain_text("The reply goes on when it is back")
    return server, page, reply


def test_a_reply_goes_on_after_a_dropped_connection_without_gaps_or_repeats(open_page):
    server, page, reply = _drop_mid_reply(open_page)
    try:
        # Generated while the page was away: the server keeps it for the next attach.
        server.push({"type": "delta", "text": ", the middle", "seq": 1})
        server.refusing = False
        _eventually(lambda: server.received[-1].get("action") == "attach", timeout=20)
        assert server.received[-1]["seq"] == 0  # the last delta the page had shown
        server.push({"type": "delta", "text": " and the end.", "seq": 2})
        server.push(_done())
        expect(reply).to_have_attribute("data-reason", "end")
        expect(reply.locator(".bubble")).to_have_text("The first half, the middle and the end.")
        expect(page.locator(".message.notice")).to_have_text(
            "The connection dropped and came back. The conversation goes on."
        )
        # The half-answered prompt is not sent a second time.
        assert [m["action"] for m in server.received] == ["chat", "attach"]
    finally:
        server.stop()


def test_a_reply_the_server_cut_while_the_page_was_away_says_so(open_page):
    server, page, reply = _drop_mid_reply(open_page)
    try:
        server.push({"type": "delta", "text": " and a bit more", "seq": 1})
        server.cut_reply()  # no connection came back within the grace
        server.refusing = False
        expect(reply).to_have_attribute("data-reason", "interrupted", timeout=20000)
        expect(reply.locator(".bubble")).to_have_text("The first half and a bit more")
        expect(reply.locator(".meta")).to_contain_text("Cut off")
        expect(page.locator(".message.notice").last).to_contain_text("Cut off")
        expect(page.locator("#send")).to_be_visible()
    finally:
        server.stop()


def test_keyboard_alone_reaches_every_control_in_order(server, open_page):
    page = open_page(server.http_url)
    connected(page)
    expect(page.get_by_role("textbox", name="Message")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("Connected")
    # The box has focus from the start; backwards from it: New chat, Settings, Chats, the
    # skip link.
    expect(page.locator("#prompt")).to_be_focused()
    page.keyboard.press("Shift+Tab")
    expect(page.get_by_role("button", name="New chat")).to_be_focused()
    page.keyboard.press("Shift+Tab")
    expect(page.locator("#settings summary")).to_be_focused()
    page.keyboard.press("Shift+Tab")
    expect(page.locator("#chats summary")).to_be_focused()
    page.keyboard.press("Shift+Tab")
    expect(page.get_by_role("link", name="Skip to the message box")).to_be_focused()
    for _ in range(4):
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
    # Nothing is sent for it: the next prompt simply names no conversation.
    assert [m["action"] for m in server.received] == ["chat"]


def test_a_phone_gets_one_column_without_sideways_scrolling(server, open_page):
    page = open_page(
        server.http_url, viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True
    )
    connected(page)
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
        connected(page)
        send(page, "hello there")
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
    # A heading is one (the page's <h1> is its name: a reply's top heading is <h2>).
    "## Title <i>x</i>": [["H2", "Title <i>x</i>"]],
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
    allowed_tags = {"P", "H2", "UL", "OL", "LI", "DIV", "SPAN", "BUTTON", "PRE", "CODE", "STRONG"}
    # (Links and tables: test_markdown_rendering.py.)
    allowed_attributes = {"class", "start", "data-language", "type", "data-action", "aria-label"}
    for text, expected in MARKDOWN_CASES.items():
        assert rendered[text]["blocks"] == expected, text
        assert set(rendered[text]["tags"]) <= allowed_tags, text
        assert set(rendered[text]["attributes"]) <= allowed_attributes, text


# New chat during a reply, then a prompt at once: the next prompt starts a new conversation,
# so it never waits on the reply left behind, whose remaining text is not shown.
LONG = "Tell me a long story."


def test_a_prompt_right_after_new_chat_goes_at_once_in_a_new_conversation(open_page):
    def script(message: dict) -> list[tuple[float, dict]]:
        if message.get("action") != "chat":
            return []
        if message["prompt"] == LONG:
            return [
                (0, {"type": "status", "state": "generating"}),
                (0, {"type": "delta", "text": "Once upon a time", "seq": 0}),
            ]
        return [
            (0, {"type": "status", "state": "generating"}),
            (0.2, {"type": "delta", "text": "Blue.", "seq": 0}),
            (0, _done()),
        ]

    server = ScriptedChatServer(script)
    server.start()
    try:
        page = open_page(server.http_url)
        connected(page)
        send(page, LONG)
        expect(page.locator(".message.reply")).to_contain_text("Once upon a time")
        [old] = server.conversations
        page.locator("#new-chat").click()
        expect(page.locator("#messages > *")).to_have_count(0)
        send(page, "Name one colour.")
        # The old reply goes on in its own conversation; its text is not shown here.
        server.push({"type": "delta", "text": " there was a dragon", "seq": 1, "conversation": old})
        reply = page.locator(".message.reply")
        expect(reply).to_have_attribute("data-reason", "end")
        expect(reply.locator(".bubble")).to_have_text("Blue.")
        assert page.locator(".message.error, .message.notice, .message.prompt.queued").count() == 0
        chats = [m for m in server.received if m["action"] == "chat"]
        assert [m["prompt"] for m in chats] == [LONG, "Name one colour."]
        assert "conversation" not in chats[1]  # a new conversation, not a reset of the old
        assert len(server.conversations) == 2
        assert "reset" not in [m["action"] for m in server.received]
    finally:
        server.stop()

"""What people reach for in a chat page: a reply that streams without rebuilding itself,
copy, Regenerate, Edit, Continue, "Jump to latest", the model's name and settings, and
coloured code; at desktop and phone width, light and dark.

The server is scripted (scripted_server.py): these tests check what the page shows and
which protocol messages its buttons send, not generation.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.web.page_helpers import connected as _connected
from tests.web.page_helpers import send as _send
from tests.web.scripted_server import (
    ScriptedChatServer,
    answering,
    done,
    eventually,
    on_chat,
    reply_frames,
)

pytestmark = pytest.mark.browser

CONTINUE_PROMPT = "Continue exactly where your last reply stopped."
RESET_ANSWER = {"type": "reset", "stopped": False}


def _updates_reach(page: Page, count: int) -> None:
    page.wait_for_function(
        "count => Number(document.querySelector('#messages .reply')?.dataset.updates) >= count",
        arg=count,
    )


def _actions(server: ScriptedChatServer) -> list[str]:
    return [
        m["action"] if m["action"] != "chat" else f"chat {m['prompt']}" for m in server.received
    ]


# The reply streams without rebuilding itself.


def test_a_selection_in_a_streaming_reply_survives_the_next_deltas(scripted, open_page):
    # A reply that goes on only as the test pushes it.
    server = scripted(on_chat(reply_frames("First paragraph stays put.\n\nSecond")))
    page = _connected(open_page(server.http_url))
    _send(page, "stream slowly")
    first = page.locator(".message.reply .bubble > p").first
    expect(first).to_have_text("First paragraph stays put.")
    page.evaluate(
        """() => {
          const paragraph = document.querySelector('.message.reply .bubble > p');
          paragraph.dataset.marked = 'the same element';
          const text = paragraph.firstChild;
          const range = document.createRange();
          range.setStart(text, 6);
          range.setEnd(text, 20);
          getSelection().removeAllRanges();
          getSelection().addRange(range);
        }"""
    )
    assert page.evaluate("getSelection().toString()") == "paragraph stay"
    server.push({"type": "delta", "text": " paragraph grows", "seq": 1})
    server.push({"type": "delta", "text": "\n\n- and a list\n- of two", "seq": 2})
    _updates_reach(page, 3)
    expect(page.locator(".message.reply li")).to_have_count(2)
    assert page.evaluate("getSelection().toString()") == "paragraph stay"
    assert first.get_attribute("data-marked") == "the same element"
    # The open block grew in place as well: its text node only had text appended.
    server.push(done())
    expect(page.locator(".message.reply")).to_have_attribute("data-reason", "end")
    assert page.evaluate("getSelection().toString()") == "paragraph stay"


# Copy, and coloured code.

CODE_REPLY = "Here:\n\n```python\ndef greet(name):\n    return f'hi {name}'\n```\n\nDone."


def test_copy_a_code_block_or_a_whole_reply_and_the_code_is_coloured(scripted, open_page):
    server = scripted(answering(CODE_REPLY))
    page = _connected(open_page(server.http_url, permissions=["clipboard-read", "clipboard-write"]))
    _send(page, "code please")
    reply = page.locator(".message.reply")
    expect(reply).to_have_attribute("data-reason", "end")
    block = reply.locator(".code-block")
    expect(block.locator(".code-language")).to_have_text("python")
    # Prism's tokens, as spans built from text: keywords, a function name, a string.
    expect(block.locator("code .token.keyword").first).to_have_text("def")
    expect(block.locator("code .token.function")).to_have_text("greet")
    expect(block.locator("code")).to_have_text("def greet(name):\n    return f'hi {name}'")

    block.get_by_role("button", name="Copy python code").click()
    expect(block.get_by_role("button", name="Copy python code")).to_have_text("Copied")
    clipboard = "() => navigator.clipboard.readText()"
    assert page.evaluate(clipboard) == "def greet(name):\n    return f'hi {name}'"
    reply.get_by_role("button", name="Copy the reply").click()
    expect(reply.get_by_role("button", name="Copy the reply")).to_have_text("Copied")
    assert page.evaluate(clipboard) == CODE_REPLY
    expect(page.locator("#announcer")).to_have_text("Reply copied.")


# Regenerate, Edit, Continue: what each sends (docs/protocol.md).


def _counting_script():
    count = {"replies": 0}

    def reply(_message: dict) -> str:
        count["replies"] += 1
        return f"Answer {count['replies']}."

    return answering(reply)


def test_regenerate_replaces_the_last_reply_and_says_when_context_is_lost(scripted, open_page):
    server = scripted(_counting_script())
    page = _connected(open_page(server.http_url))
    _send(page, "Q1")
    expect(page.locator(".message.reply")).to_have_text(re.compile("Answer 1."))
    page.get_by_role("button", name="Regenerate the reply").click()
    # One exchange: `reset` then the same prompt gives exactly a new first reply.
    expect(page.locator(".message.reply .bubble").last).to_have_text("Answer 2.")
    expect(page.locator(".message")).to_have_count(2)
    assert page.locator(".message.notice").count() == 0
    assert _actions(server) == ["chat Q1", "reset", "chat Q1"]

    _send(page, "Q2")
    expect(page.locator(".message.reply").nth(1).locator(".bubble")).to_have_text("Answer 3.")
    page.get_by_role("button", name="Regenerate the reply").click()
    expect(page.locator(".message.reply .bubble").last).to_have_text("Answer 4.")
    expect(page.locator(".message.reply")).to_have_count(2)
    # The server can only forget a whole conversation: the page says the model did.
    notice = page.locator(".message.notice")
    expect(notice).to_have_text(
        "Regenerated in a fresh context: the model no longer remembers the messages above."
    )
    kinds = page.evaluate(
        "[...document.querySelectorAll('#messages > li')].map(li => li.classList[1])"
    )
    assert kinds == ["prompt", "reply", "notice", "prompt", "reply"]
    assert _actions(server)[3:] == ["chat Q2", "reset", "chat Q2"]
    # Only the last reply offers Regenerate.
    expect(page.get_by_role("button", name="Regenerate the reply")).to_have_count(1)


def test_edit_sends_the_last_prompt_again_changed_and_esc_cancels(scripted, open_page):
    server = scripted(_counting_script())
    page = _connected(open_page(server.http_url))
    _send(page, "What is 2+2?")
    expect(page.locator(".message.reply")).to_have_attribute("data-reason", "end")
    box = page.locator("#prompt")
    box.fill("a draft")

    page.get_by_role("button", name="Edit your last message").click()
    expect(box).to_have_value("What is 2+2?")
    expect(box).to_be_focused()
    expect(page.locator("#composer-hint")).to_contain_text("Editing your last message")
    box.press("Escape")
    expect(box).to_have_value("a draft")
    expect(page.locator(".message.prompt.editing")).to_have_count(0)

    page.get_by_role("button", name="Edit your last message").click()
    box.fill("What is 3+3?")
    box.press("Enter")
    expect(page.locator(".message.reply .bubble").last).to_have_text("Answer 2.")
    expect(page.locator(".message.prompt")).to_have_count(1)
    expect(page.locator(".message.prompt .bubble")).to_have_text("What is 3+3?")
    expect(page.locator(".message.reply")).to_have_count(1)
    assert _actions(server) == ["chat What is 2+2?", "reset", "chat What is 3+3?"]
    expect(box).to_have_value("")


def test_continue_after_the_length_limit_adds_to_the_same_reply(scripted, open_page):
    def script(message: dict) -> list[tuple[float, dict]]:
        if message.get("action") != "chat":
            return []
        if message["prompt"] == CONTINUE_PROMPT:
            return reply_frames("grows on.\n- two", end=done())
        return reply_frames("A story that ", end=done("length"))

    server = scripted(script)
    page = _connected(open_page(server.http_url))
    _send(page, "a long story")
    reply = page.locator(".message.reply")
    expect(reply).to_have_attribute("data-reason", "length")
    expect(reply.locator(".meta")).to_contain_text("Cut off at the length limit")
    reply.get_by_role("button", name="Continue the reply").click()
    expect(reply).to_have_attribute("data-reason", "end")
    # One reply, one paragraph: the continuation joined the text it continues.
    expect(page.locator(".message.reply")).to_have_count(1)
    expect(page.locator(".message.prompt")).to_have_count(1)
    expect(reply.locator(".bubble > p")).to_have_text("A story that grows on.")
    expect(reply.locator(".bubble li")).to_have_text("two")
    expect(reply.get_by_role("button", name="Continue the reply")).to_have_count(0)
    assert _actions(server) == ["chat a long story", f"chat {CONTINUE_PROMPT}"]


# Jump to latest.


def test_jump_to_latest_appears_when_the_reader_scrolls_up_during_a_reply(scripted, open_page):
    lines = "\n\n".join(f"Line {n} of a long reply." for n in range(1, 30))
    server = scripted(on_chat(reply_frames(lines)))
    page = _connected(open_page(server.http_url, viewport={"width": 800, "height": 600}))
    _send(page, "long")
    expect(page.locator(".message.reply")).to_contain_text("Line 29")
    jump = page.get_by_role("button", name="Jump to latest ↓")
    expect(jump).to_be_hidden()  # following the reply at the bottom

    page.locator("#conversation").evaluate("(view) => { view.scrollTop = 0; }")
    expect(jump).to_be_visible()
    server.push({"type": "delta", "text": "\n\nMore text below.", "seq": 1})
    _updates_reach(page, 2)
    assert page.locator("#conversation").evaluate("(view) => view.scrollTop") == 0  # not pulled
    jump.click()
    expect(jump).to_be_hidden()
    expect(page.locator("#prompt")).to_be_focused()
    server.push({"type": "delta", "text": "\n\nAnd the very end.", "seq": 2})
    _updates_reach(page, 3)
    expect(page.locator(".message.reply .bubble > p").last).to_be_in_viewport()


# The model's name, and settings within the stage's caps.


def test_the_model_is_named_and_settings_are_sent_within_the_caps_and_kept(scripted, open_page):
    server = scripted(
        answering("Set."),
        config={"model": "tiny-test-model", "maxTokensCap": 300, "maxTemperature": 1.5},
    )
    page = _connected(open_page(server.http_url))
    expect(page.locator("#model")).to_have_text("Model: tiny-test-model")

    _send(page, "defaults")
    expect(page.locator(".message.reply")).to_have_attribute("data-reason", "end")
    assert "options" not in server.received[-1]  # nothing set: the server's defaults

    page.locator("#settings summary").click()
    tokens, temperature = page.get_by_label("Max tokens"), page.get_by_label("Temperature")
    expect(tokens).to_have_attribute("max", "300")
    expect(tokens).to_have_attribute("placeholder", "default (256)")
    expect(page.locator("#settings-note")).to_contain_text("Max tokens 1 to 300")
    tokens.fill("999")
    tokens.press("Tab")
    expect(tokens).to_have_value("300")  # clamped to the stage's cap
    temperature.fill("0.7")
    temperature.press("Tab")
    page.locator("#prompt").focus()
    _send(page, "with settings")
    expect(page.locator(".message.reply").nth(1)).to_have_attribute("data-reason", "end")
    assert server.received[-1]["options"] == {"max_tokens": 300, "temperature": 0.7}

    page.reload()
    _connected(page)
    page.locator("#settings summary").click()
    expect(page.get_by_label("Max tokens")).to_have_value("300")
    expect(page.get_by_label("Temperature")).to_have_value("0.7")
    page.get_by_role("button", name="Use the defaults").click()
    expect(page.get_by_label("Max tokens")).to_have_value("")
    # It closes as a menu does: Escape puts focus back on its button; a click elsewhere.
    page.get_by_label("Temperature").press("Escape")
    expect(page.get_by_label("Max tokens")).to_be_hidden()
    expect(page.locator("#settings summary")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_label("Max tokens")).to_be_visible()
    page.locator("#conversation").click()
    expect(page.get_by_label("Max tokens")).to_be_hidden()


# At phone width, in dark mode.


def test_the_features_fit_a_phone_in_dark_mode(scripted, open_page):
    long_line = "x = " + "1 + " * 60 + "1"
    server = scripted(answering(f"Code:\n\n```python\n{long_line}\n```"), config={"model": "m"})
    page = _connected(
        open_page(
            server.http_url,
            viewport={"width": 360, "height": 740},
            is_mobile=True,
            has_touch=True,
            color_scheme="dark",
        )
    )
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(23, 25, 28)"
    page.locator("#prompt").tap()
    page.keyboard.type("code")
    page.locator("#send").tap()
    reply = page.locator(".message.reply")
    expect(reply).to_have_attribute("data-reason", "end")
    overflow = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    assert page.evaluate(overflow) <= 0  # the long line scrolls inside its block
    for name in ("Copy python code", "Copy the reply", "Regenerate the reply"):
        button = page.get_by_role("button", name=name)
        expect(button).to_be_in_viewport()
        box = button.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 360, name
    page.locator("#settings summary").tap()
    panel = page.locator(".settings-panel").bounding_box()
    assert panel["x"] >= 0 and panel["x"] + panel["width"] <= 360
    eventually(lambda: len(server.received) == 1)

"""Conversations that live on the server (docs/protocol.md): a reload or a reconnect comes
back to the same one, the list in this browser switches, forgets and exports them, and a
conversation taken by another tab can be taken back.

The server is scripted (scripted_server.py), speaking the protocol's conversation messages:
these tests check what the page sends and shows, not generation.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.web.page_helpers import connected, send
from tests.web.scripted_server import answering, done, eventually, on_chat, reply_frames

pytestmark = pytest.mark.browser


def _actions(server) -> list[str]:
    return [m["action"] for m in server.received if m["action"] != "ping"]


def _texts(page: Page, kind: str) -> list[str]:
    return page.locator(f".message.{kind} .bubble").all_inner_texts()


def test_a_reload_mid_reply_shows_the_whole_reply_once(scripted, open_page):
    server = scripted(on_chat(reply_frames("One, ", "two, ")))
    page = connected(open_page(server.http_url))
    send(page, "Count to five.")
    expect(page.locator(".message.reply .bubble")).to_have_text("One, two,")
    [conversation] = server.conversations

    page.reload()
    eventually(lambda: _actions(server) == ["chat", "attach"])
    # It asks for the reply after the last delta it had shown, and shows what it had.
    assert server.received[-1] == {"action": "attach", "conversation": conversation, "seq": 1}
    server.push({"type": "delta", "text": "three, ", "seq": 2})
    server.push({"type": "delta", "text": "four, five.", "seq": 3})
    server.push(done())
    reply = page.locator(".message.reply")
    expect(reply).to_have_attribute("data-reason", "end")
    expect(reply.locator(".bubble")).to_have_text("One, two, three, four, five.")
    assert _texts(page, "prompt") == ["Count to five."]

    # Finished, a reload draws it from the server's turns, and the next prompt goes on in it.
    page.reload()
    expect(page.locator(".message.reply .bubble")).to_have_text("One, two, three, four, five.")
    assert _texts(page, "prompt") == ["Count to five."]
    assert page.locator(".message.notice").count() == 0


def test_conversations_are_listed_switched_exported_and_forgotten(scripted, open_page):
    server = scripted(answering(lambda m: f"Answer to **{m['prompt']}**"))
    page = connected(open_page(server.http_url))
    send(page, "First topic\nwith a second line")
    expect(page.locator(".message.reply")).to_have_attribute("data-reason", "end")
    send(page, "More on it")
    expect(page.locator(".message.reply").nth(1)).to_have_attribute("data-reason", "end")
    page.locator("#new-chat").click()
    send(page, "Second topic")
    expect(page.locator(".message.reply")).to_have_attribute("data-reason", "end")
    first, second = server.conversations

    page.locator("#chats summary").click()
    entries = page.locator("#chat-list .chat-title")
    expect(entries).to_have_text(["Second topic", "First topic"])  # newest first, first line
    expect(page.locator('#chat-list [aria-current="true"] .chat-title')).to_have_text(
        "Second topic"
    )
    page.locator(".open-chat", has_text="First topic").click()
    eventually(lambda: server.received[-1] == {"action": "attach", "conversation": first})
    expect(page.locator(".message.reply .bubble")).to_have_text(
        ["Answer to First topic\nwith a second line", "Answer to More on it"]
    )
    # The next prompt goes on in the conversation opened.
    send(page, "And a third")
    expect(page.locator(".message.reply").nth(2)).to_have_attribute("data-reason", "end")
    assert server.received[-1]["conversation"] == first

    page.locator("#chats summary").click()
    with page.expect_download() as markdown:
        page.get_by_role("button", name="Export as Markdown").click()
    assert markdown.value.suggested_filename == "llambda-first-topic.md"
    assert Path(markdown.value.path()).read_text(encoding="utf-8") == (
        "# First topic\n\n"
        "## You\n\nFirst topic\nwith a second line\n\n"
        "## Model\n\nAnswer to **First topic\nwith a second line**\n\n"
        "## You\n\nMore on it\n\n## Model\n\nAnswer to **More on it**\n\n"
        "## You\n\nAnd a third\n\n## Model\n\nAnswer to **And a third**\n"
    )
    with page.expect_download() as exported:
        page.get_by_role("button", name="Export as JSON").click()
    transcript = json.loads(Path(exported.value.path()).read_text(encoding="utf-8"))
    assert transcript["conversation"] == first
    assert transcript["title"] == "First topic"
    # The server's own shape: what the model was asked and answered, in order.
    assert transcript["turns"] == server.conversations[first].turns

    page.get_by_role("button", name="Forget “Second topic”").click()
    eventually(lambda: server.received[-1] == {"action": "forget", "conversation": second})
    expect(entries).to_have_text(["First topic"])
    assert second not in server.conversations
    # Forgetting the one shown starts a new one.
    page.get_by_role("button", name="Forget “First topic”").click()
    expect(page.locator("#messages > *")).to_have_count(0)
    expect(page.locator("#chat-list-empty")).to_be_visible()
    assert server.conversations == {}


def test_another_tab_takes_the_conversation_and_this_one_takes_it_back(scripted, open_page):
    server = scripted(answering("Hello."))
    page = connected(open_page(server.http_url))
    send(page, "hi")
    expect(page.locator(".message.reply")).to_have_attribute("data-reason", "end")
    [conversation] = server.conversations

    # A second tab of the same browser: the same list, its own current conversation.
    other = page.context.new_page()
    other.goto(server.http_url)
    connected(other)
    other.locator("#chats summary").click()
    other.locator(".open-chat", has_text="hi").click()
    expect(other.locator(".message.reply .bubble")).to_have_text("Hello.")

    notice = page.locator(".message.notice")
    expect(notice).to_contain_text("opened in another tab")
    expect(page.locator("#status")).to_have_attribute("data-state", "detached")
    send(page, "still there?")  # waits, and says why, rather than being refused
    expect(page.locator(".message.prompt.queued .note")).to_contain_text("open in another tab")
    notice.get_by_role("button", name="Take this conversation back to this tab").click()
    expect(other.locator(".message.notice")).to_contain_text("opened in another tab")
    expect(page.locator(".message.reply").nth(1)).to_have_attribute("data-reason", "end")
    assert _texts(page, "prompt") == ["hi", "still there?"]
    chats = [m for m in server.received if m["action"] == "chat"]
    assert [m.get("conversation") for m in chats] == [None, conversation]
    assert "not_attached" not in json.dumps(server.received)


def test_a_conversation_gone_from_the_server_is_said_so_and_the_next_prompt_starts_anew(
    scripted, open_page
):
    server = scripted(answering("Fine."))
    page = connected(open_page(server.http_url))
    send(page, "remember me")
    expect(page.locator(".message.reply")).to_have_attribute("data-reason", "end")
    server.conversations.clear()  # expired while the page was closed
    page.reload()
    expect(page.locator(".message.notice")).to_contain_text("no longer on the server")
    page.locator("#chats summary").click()
    expect(page.locator("#chat-list-empty")).to_be_visible()
    page.keyboard.press("Escape")
    send(page, "again")
    expect(page.locator(".message.reply")).to_have_attribute("data-reason", "end")
    assert "conversation" not in server.received[-1]


def test_an_idle_page_pings_every_four_minutes_under_the_gateways_ten(scripted, open_page):
    def script(message: dict):
        return [(0, {"type": "pong"})] if message.get("action") == "ping" else []

    server = scripted(script)
    page = connected(open_page(server.http_url, paused_clock=True))
    page.clock.run_for(4 * 60 * 1000 - 1000)
    assert "ping" not in [m["action"] for m in server.received]
    page.clock.run_for(1000)
    eventually(lambda: [m["action"] for m in server.received] == ["ping"])
    page.clock.run_for(4 * 60 * 1000)
    eventually(lambda: [m["action"] for m in server.received] == ["ping", "ping"])
    # Answered each time, so the connection is still the first one.
    assert len(server.handshakes) == 1
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")

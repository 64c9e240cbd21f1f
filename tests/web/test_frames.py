"""API Gateway's 32 KB WebSocket frame, both ways (docs/protocol.md): the page refuses to
send a larger frame, with words that name the limit, and it joins a message the server sent
in `part`s (a long conversation's `attached`) and shows every turn of it.

The server is scripted (scripted_server.py): exact replies, not generation. It splits a
message over one frame as the real server does (llambda.contract.split_message).
"""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from llambda.contract import MAX_FRAME_BYTES, split_message
from tests.web.page_helpers import connected, send
from tests.web.scripted_server import answering, eventually

pytestmark = pytest.mark.browser

# A stage whose prompt cap, in characters, lets a prompt past the frame's bytes be typed.
ROOMY = {"maxPromptChars": 20_000}
SNOWMAN = "☃"  # three bytes in UTF-8, one character in the box


def _chats(server) -> list[str]:
    return [m["prompt"] for m in server.received if m.get("action") == "chat"]


def test_a_prompt_over_one_frame_is_refused_with_the_limit_named_and_stays(scripted, open_page):
    server = scripted(answering("Got it."), config=ROOMY)
    page = connected(open_page(server.http_url))
    too_long = SNOWMAN * 11_000  # 33,000 bytes of text: over 32 KB once in its frame
    send(page, too_long)
    error = page.locator(".message.error")
    expect(error).to_contain_text("the limit is 32 KB")
    expect(error).to_contain_text("33 KB")
    expect(page.locator("#prompt")).to_have_value(too_long)
    assert _chats(server) == []

    # The connection survived: a prompt that fits goes, whole.
    fits = SNOWMAN * 10_000
    frame = json.dumps({"action": "chat", "prompt": fits}, ensure_ascii=False).encode()
    assert len(frame) < MAX_FRAME_BYTES
    send(page, fits)
    expect(page.locator(".message.reply")).to_have_attribute("data-reason", "end")
    eventually(lambda: _chats(server) == [fits])
    assert page.locator("#status").get_attribute("data-state") in {"done", "connected"}


def _long_reply(message: dict) -> str:
    return f"Answer to {message['prompt']}: " + "word " * 2_000


def test_a_long_conversation_attached_in_parts_shows_every_turn(scripted, open_page):
    server = scripted(answering(_long_reply))
    page = connected(open_page(server.http_url))
    prompts = [f"question {n}" for n in range(1, 5)]
    for prompt in prompts:
        send(page, prompt)
        expect(page.locator(".message.reply").last).to_have_attribute("data-reason", "end")
    assert server.split == []  # each reply fit one frame so far

    page.reload()  # attaches again: the server sends the four exchanges, over 40 KB
    connected(page)
    expect(page.locator(".message.prompt")).to_have_count(4)
    assert server.split == ["attached"]
    expect(page.locator(".message.prompt .bubble")).to_have_text(prompts)
    replies = page.locator(".message.reply .bubble")
    expect(replies).to_have_count(4)
    for n, prompt in enumerate(prompts):
        expect(replies.nth(n)).to_contain_text(f"Answer to {prompt}: word word")
    # And the conversation goes on from them.
    send(page, "question 5")
    expect(page.locator(".message.reply").last).to_have_attribute("data-reason", "end")
    assert server.conversations[server.received[-1]["conversation"]].turns[-2] == {
        "role": "user",
        "content": "question 5",
    }


def test_interleaved_and_broken_part_sets_leave_the_page_working(scripted, open_page):
    server = scripted(answering("Still here."))
    page = connected(open_page(server.http_url))
    send(page, "hello")
    expect(page.locator(".message.reply")).to_have_attribute("data-reason", "end")
    # A broken set (its second part never comes), then an error split in parts, whose
    # parts interleave with those of a `pong`: the error is shown, once, whole.
    error = {"type": "error", "code": "rate_limited", "message": "slow down " + "x" * 40_000}
    broken = [
        json.loads(f) for f in split_message(json.dumps({"type": "pong", "pad": "y" * 40_000}))
    ]
    joined = [json.loads(f) for f in split_message(json.dumps(error))]
    pong = [json.loads(f) for f in split_message(json.dumps({"type": "pong", "pad": "z" * 40_000}))]
    assert len(joined) >= 2 and len(pong) >= 2
    server.push(broken[0])
    server.push({"type": "part", "id": "bad", "index": 0, "count": 1, "data": "{not json"})
    for a, b in zip(joined, pong, strict=False):
        server.push(a)
        server.push(b)
    for rest in joined[len(pong) :] + pong[len(joined) :]:
        server.push(rest)
    expect(page.locator(".message.error")).to_have_count(1)
    expect(page.locator(".message.error")).to_contain_text("a lot of messages in a short time")
    send(page, "and now?")
    expect(page.locator(".message.reply").last).to_contain_text("Still here.")

"""Every client frame the protocol accepts or refuses, and every server message."""

from __future__ import annotations

import json

import pytest

from llambda import protocol
from llambda.protocol import (
    Attach,
    Chat,
    ChatOptions,
    FetchHistory,
    Forget,
    Limits,
    Ping,
    ProtocolError,
    Reset,
    Stop,
)

LIMITS = Limits(
    max_prompt_chars=100,
    max_tokens_cap=512,
    default_max_tokens=256,
    max_temperature=2.0,
    max_stop_sequences=4,
)


def chat(prompt="hi", **options) -> str:
    body = {"action": "chat", "prompt": prompt}
    if options:
        body["options"] = options
    return json.dumps(body)


ACCEPTED = [
    ('{"action": "ping"}', Ping()),
    ('{"action": "stop", "conversation": "c-1_Z"}', Stop("c-1_Z")),
    ('{"action": "reset", "conversation": "c", "extra": 1}', Reset("c")),
    ('{"action": "attach", "conversation": "c"}', Attach("c", seq=-1)),
    ('{"action": "attach", "conversation": "c", "seq": null}', Attach("c", seq=-1)),
    ('{"action": "attach", "conversation": "c", "seq": -1}', Attach("c", seq=-1)),
    ('{"action": "attach", "conversation": "c", "seq": 7}', Attach("c", seq=7)),
    ('{"action": "history", "conversation": "c"}', FetchHistory("c")),
    ('{"action": "forget", "conversation": "c"}', Forget("c")),
    (
        '{"action": "chat", "prompt": "hi", "conversation": "' + "a" * 64 + '"}',
        Chat("hi", ChatOptions(256), conversation="a" * 64),
    ),
    ('{"action": "chat", "prompt": "hi", "conversation": null}', Chat("hi", ChatOptions(256))),
    (chat(), Chat("hi", ChatOptions(max_tokens=256))),
    ('{"action": "chat", "prompt": "hi", "options": null}', Chat("hi", ChatOptions(256))),
    (chat(max_tokens=10), Chat("hi", ChatOptions(max_tokens=10))),
    (chat(max_tokens=1), Chat("hi", ChatOptions(max_tokens=1))),  # the least
    (chat(max_tokens=100_000), Chat("hi", ChatOptions(max_tokens=512))),  # clamped
    (chat(max_tokens=None), Chat("hi", ChatOptions(max_tokens=256))),
    (chat(temperature=0), Chat("hi", ChatOptions(256, temperature=0.0))),
    (chat(seed=0), Chat("hi", ChatOptions(256, seed=0))),
    (chat(seed=2**32 - 1), Chat("hi", ChatOptions(256, seed=2**32 - 1))),
    (chat(temperature=2), Chat("hi", ChatOptions(256, temperature=2.0))),
    (chat(top_p=1), Chat("hi", ChatOptions(256, top_p=1.0))),
    (chat(top_p=0.01), Chat("hi", ChatOptions(256, top_p=0.01))),
    (chat(stop=["\n", "x" * 64]), Chat("hi", ChatOptions(256, stop=("\n", "x" * 64)))),
    (chat(stop=[]), Chat("hi", ChatOptions(256))),
    (chat(stop=["a", "b", "c", "d"]), Chat("hi", ChatOptions(256, stop=("a", "b", "c", "d")))),
    (chat("x" * 100), Chat("x" * 100, ChatOptions(256))),
    (chat("héllo ✓"), Chat("héllo ✓", ChatOptions(256))),
]


@pytest.mark.parametrize(("body", "expected"), ACCEPTED)
def test_accepted(body, expected):
    assert protocol.parse_client_message(body, limits=LIMITS) == expected


ACTIONS = "chat, attach, history, forget, stop, reset, ping"
UNICODE = "valid Unicode text"

REFUSED = [
    # (body, is_base64, code, what the message names: the field, or what to send instead)
    ("", False, "bad_json", "JSON object"),
    ("   ", False, "bad_json", "JSON object"),
    (None, False, "bad_json", "JSON object"),
    ("{not json", False, "bad_json", "not valid JSON"),
    ("[1, 2]", False, "bad_json", "JSON object"),
    ('"chat"', False, "bad_json", "JSON object"),
    ("null", False, "bad_json", "JSON object"),
    ("[" * 100_000, False, "bad_json", "not valid JSON"),
    ('{"action": "chat"', False, "bad_json", "not valid JSON"),
    ("eyJhY3Rpb24iOiAicGluZyJ9", True, "bad_request", "JSON text"),  # a binary frame
    (b'{"action": "ping"}', False, "bad_request", "JSON text"),
    ("{}", False, "unknown_action", ACTIONS),
    ('{"action": "dance"}', False, "unknown_action", ACTIONS),
    ('{"action": 1}', False, "unknown_action", ACTIONS),
    ('{"action": ["chat"]}', False, "unknown_action", ACTIONS),
    ('{"action": "CHAT", "prompt": "x"}', False, "unknown_action", ACTIONS),
    ('{"action": "stop"}', False, "bad_request", "conversation"),
    ('{"action": "reset"}', False, "bad_request", "conversation"),
    ('{"action": "attach"}', False, "bad_request", "conversation"),
    ('{"action": "history", "conversation": ""}', False, "bad_request", "conversation"),
    ('{"action": "forget", "conversation": 7}', False, "bad_request", "conversation"),
    ('{"action": "attach", "conversation": "a b"}', False, "bad_request", "conversation"),
    ('{"action": "attach", "conversation": "a/b"}', False, "bad_request", "conversation"),
    (
        '{"action": "attach", "conversation": "' + "a" * 65 + '"}',
        False,
        "bad_request",
        "conversation",
    ),
    ('{"action": "attach", "conversation": "c", "seq": -2}', False, "bad_request", "seq"),
    ('{"action": "attach", "conversation": "c", "seq": 1.5}', False, "bad_request", "seq"),
    ('{"action": "attach", "conversation": "c", "seq": true}', False, "bad_request", "seq"),
    (
        '{"action": "chat", "prompt": "hi", "conversation": ""}',
        False,
        "bad_request",
        "conversation",
    ),
    ('{"action": "chat"}', False, "bad_request", "prompt"),
    ('{"action": "chat", "prompt": null}', False, "bad_request", "prompt"),
    ('{"action": "chat", "prompt": ""}', False, "bad_request", "prompt"),
    ('{"action": "chat", "prompt": "  \\n "}', False, "bad_request", "prompt"),
    ('{"action": "chat", "prompt": 42}', False, "bad_request", "prompt"),
    ('{"action": "chat", "prompt": ["a"]}', False, "bad_request", "prompt"),
    (chat("x" * 101), False, "too_large", "prompt"),
    ('{"action": "chat", "prompt": "hi", "options": []}', False, "bad_request", "options"),
    ('{"action": "chat", "prompt": "hi", "options": "fast"}', False, "bad_request", "options"),
    (chat(max_token=5), False, "bad_request", "'max_token'"),  # unknown key
    (chat(max_tokens=0), False, "bad_request", "max_tokens"),
    (chat(max_tokens=-3), False, "bad_request", "max_tokens"),
    (chat(max_tokens=1.5), False, "bad_request", "max_tokens"),
    (chat(max_tokens="10"), False, "bad_request", "max_tokens"),
    (chat(max_tokens=True), False, "bad_request", "max_tokens"),
    (chat(temperature=-0.1), False, "bad_request", "temperature"),
    (chat(temperature=2.01), False, "bad_request", "temperature"),
    (chat(temperature="hot"), False, "bad_request", "temperature"),
    (chat(temperature=False), False, "bad_request", "temperature"),
    (
        '{"action": "chat", "prompt": "hi", "options": {"temperature": NaN}}',
        False,
        "bad_request",
        "temperature",
    ),
    (
        '{"action": "chat", "prompt": "hi", "options": {"temperature": Infinity}}',
        False,
        "bad_request",
        "temperature",
    ),
    (chat(top_p=0), False, "bad_request", "top_p"),
    (chat(top_p=1.5), False, "bad_request", "top_p"),
    (chat(top_p=True), False, "bad_request", "top_p"),
    (chat(seed=-1), False, "bad_request", "seed"),
    (chat(seed=2**32), False, "bad_request", "seed"),
    (chat(seed=1.5), False, "bad_request", "seed"),
    (chat(seed=True), False, "bad_request", "seed"),
    (chat(stop="\n"), False, "bad_request", "stop"),
    (chat(stop=[1]), False, "bad_request", "stop"),
    (chat(stop=[""]), False, "bad_request", "stop"),
    (chat(stop=["x" * 65]), False, "bad_request", "stop"),
    (chat(stop=["a", "b", "c", "d", "e"]), False, "bad_request", "stop"),
    # Valid JSON, not text: a lone surrogate is refused before any engine sees it.
    ('{"action": "chat", "prompt": "hi \\ud800"}', False, "bad_request", UNICODE),
    (
        '{"action": "chat", "prompt": "hi", "options": {"stop": ["\\udfff"]}}',
        False,
        "bad_request",
        UNICODE,
    ),
]


@pytest.mark.parametrize(("body", "is_base64", "code", "names"), REFUSED)
def test_refused(body, is_base64, code, names):
    with pytest.raises(ProtocolError) as refused:
        protocol.parse_client_message(body, is_base64=is_base64, limits=LIMITS)
    assert refused.value.code == code
    # A sentence for a person: no traceback, no Python repr.
    assert refused.value.message.endswith(".")
    assert "Traceback" not in refused.value.message
    # It says what to fix, by the name the client sends it under.
    assert names in refused.value.message
    assert str(refused.value) == refused.value.message  # as it reads in a log


def test_an_unknown_option_is_named_and_the_allowed_ones_listed():
    with pytest.raises(ProtocolError) as refused:
        protocol.parse_client_message(chat(top_k=5, max_tokens=3), limits=LIMITS)
    assert refused.value.message == (
        "Unknown option 'top_k'; allowed: max_tokens, temperature, top_p, stop, seed."
    )


def test_too_large_names_the_limit():
    with pytest.raises(ProtocolError) as refused:
        protocol.parse_client_message(chat("x" * 150), limits=LIMITS)
    assert "150" in refused.value.message and "100" in refused.value.message


def test_server_messages():
    assert protocol.status("loading") == {"type": "status", "state": "loading"}
    assert protocol.delta("abc", 3) == {"type": "delta", "text": "abc", "seq": 3}
    assert protocol.pong() == {"type": "pong"}
    assert protocol.error("busy", "Wait.") == {"type": "error", "code": "busy", "message": "Wait."}
    assert protocol.reset_done(stopped=False) == {"type": "reset", "stopped": False}
    assert protocol.conversation_started("c1") == {"type": "conversation", "id": "c1"}
    assert protocol.in_conversation(protocol.delta("a", 0), "c1") == {
        "type": "delta",
        "text": "a",
        "seq": 0,
        "conversation": "c1",
    }
    turns = [{"role": "user", "content": "hi"}]
    assert protocol.attached("c1", turns, running_prompt="go", interrupted=False) == {
        "type": "attached",
        "conversation": "c1",
        "turns": turns,
        "reply": {"prompt": "go"},
        "interrupted": False,
    }
    assert protocol.attached("c1", [], running_prompt=None, interrupted=True)["reply"] is None
    assert protocol.history("c1", turns) == {
        "type": "history",
        "conversation": "c1",
        "turns": turns,
    }
    assert protocol.forgotten("c1") == {"type": "forgotten", "conversation": "c1"}
    assert protocol.detached("c1") == {"type": "detached", "conversation": "c1"}
    assert protocol.done(
        "end", prompt_tokens=3, completion_tokens=4, init_ms=0, ttft_ms=12, tokens_per_s=40.5
    ) == {
        "type": "done",
        "reason": "end",
        "usage": {"prompt_tokens": 3, "completion_tokens": 4},
        "timing": {"init_ms": 0, "ttft_ms": 12, "tokens_per_s": 40.5},
    }
    with pytest.raises(ValueError, match="'oops'"):
        protocol.done(
            "oops", prompt_tokens=0, completion_tokens=0, init_ms=0, ttft_ms=0, tokens_per_s=0
        )


def test_encode_is_compact_utf8():
    assert protocol.encode(protocol.delta("é", 0)) == '{"type":"delta","text":"é","seq":0}'.encode()

"""The contract between the parts: the page's copy is generated from it, and a message
split into `part`s for API Gateway's 32 KB frame joins back to itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from llambda import contract
from llambda.contract import MAX_FRAME_BYTES, PartJoiner, encoded_size, split_message

REPO = Path(__file__).resolve().parent.parent
PAGE_COPY = REPO / "web_client" / "contract.js"


def test_the_pages_copy_is_generated_from_the_contract():
    assert PAGE_COPY.read_text(encoding="utf-8") == contract.page_module(), (
        "web_client/contract.js is stale: run `make contract`"
    )


def test_the_generator_writes_what_the_page_imports(tmp_path):
    out = tmp_path / "contract.js"
    run = subprocess.run(
        [sys.executable, "-m", "llambda.contract", str(out)],
        cwd=REPO / "lambda_image",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    text = out.read_text(encoding="utf-8")
    assert "export const MAX_FRAME_BYTES = 32768;" in text
    assert '"CONTEXT_LENGTH_EXCEEDED": "context_length_exceeded"' in text


def test_api_gateways_quotas_are_its_documented_figures():
    # "Quotas for configuring and running a WebSocket API in API Gateway".
    assert contract.MAX_FRAME_BYTES == 32 * 1024
    assert contract.MAX_MESSAGE_BYTES == 128 * 1024
    assert contract.IDLE_TIMEOUT_SECONDS == 600
    assert contract.MAX_CONNECTION_SECONDS == 7200


def test_every_refused_chat_code_is_an_error_code():
    assert set(contract.REFUSED_CHAT_CODES) <= set(contract.ErrorCode)
    assert contract.ErrorCode.ENGINE_ERROR not in contract.REFUSED_CHAT_CODES


def test_a_message_that_fits_is_sent_as_it_is():
    text = json.dumps({"type": "pong"})
    assert split_message(text) == [text]
    exact = '{"a":"' + "x" * (MAX_FRAME_BYTES - 8) + '"}'
    assert encoded_size(exact) == MAX_FRAME_BYTES and split_message(exact) == [exact]


def join_all(frames: list[str]) -> list[dict]:
    joiner = PartJoiner()
    return [m for m in (joiner.feed(json.loads(f)) for f in frames) if m is not None]


@settings(max_examples=60, deadline=None)
@given(
    content=st.text(min_size=0, max_size=3000),
    limit=st.integers(min_value=120, max_value=600),
)
def test_parts_each_fit_the_frame_and_join_back_to_the_message(content, limit):
    message = {"type": "history", "turns": [{"role": "user", "content": content}]}
    text = json.dumps(message, ensure_ascii=False, separators=(",", ":"))
    frames = split_message(text, limit=limit)
    assert all(encoded_size(frame) <= limit for frame in frames)
    assert join_all(frames) == [message]


def test_two_messages_whose_parts_interleave_both_join():
    first = json.dumps({"type": "history", "turns": ["a" * 5000]})
    second = json.dumps({"type": "attached", "turns": ["b" * 5000]})
    a, b = split_message(first, limit=1000), split_message(second, limit=1000)
    assert len(a) > 3 and len(b) > 3
    mixed = [frame for pair in zip(a, b, strict=False) for frame in pair]
    mixed += a[len(b) :] + b[len(a) :]
    assert sorted(join_all(mixed), key=lambda m: m["type"]) == [
        json.loads(second),
        json.loads(first),
    ]


def test_a_malformed_or_incomplete_part_set_is_dropped_never_raised():
    frames = split_message(json.dumps({"type": "history", "turns": ["c" * 3000]}), limit=500)
    joiner = PartJoiner()
    for bad in (
        {"type": "part"},
        {"type": "part", "id": "x", "index": 2, "count": 2, "data": ""},
        {"type": "part", "id": "x", "index": 0, "count": "2", "data": ""},
        {"type": "part", "id": "y", "index": 0, "count": 1, "data": "not json"},
        {"type": "part", "id": "z", "index": 0, "count": 1, "data": '{"type": "part"}'},
        {"type": "part", "id": "w", "index": 0, "count": 10**9, "data": ""},
    ):
        assert joiner.feed(bad) is None
    for frame in frames[:-1]:  # the last part never comes: nothing is made of the rest
        assert joiner.feed(json.loads(frame)) is None
    assert joiner.feed({"type": "pong"}) == {"type": "pong"}


def test_half_sent_messages_do_not_grow_the_joiner_for_ever():
    joiner = PartJoiner()
    for n in range(100):
        joiner.feed({"type": "part", "id": str(n), "index": 0, "count": 2, "data": "{"})
    assert len(joiner._pending) == PartJoiner.MAX_PENDING

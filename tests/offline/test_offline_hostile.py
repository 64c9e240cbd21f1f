"""Property: malformed and hostile messages each get the right protocol error; nothing escapes.

1,600 generated frames go through the twin (gateway, real router, moto) in 32 batches of
50 distinct frames, each batch on a fresh connection; batches may repeat each other's
frames, so about 1,250 are distinct. Every frame is built
with the error code it must earn, and is sent alone: its answer must be exactly one
protocol `error` with that code, never API Gateway's "Internal server error" (a handler
exception), and the connection must still answer `ping` after each batch. The test counts
the distinct frames it sent and fails below 1,000, and fails unless every code was earned.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter

from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from tests.offline.twin_helpers import connect, diagnostics, receive

BAD_JSON, UNKNOWN_ACTION, BAD_REQUEST, TOO_LARGE = (
    "bad_json",
    "unknown_action",
    "bad_request",
    "too_large",
)
CODES = {BAD_JSON, UNKNOWN_ACTION, BAD_REQUEST, TOO_LARGE}
PROMPT_CAP = 8000  # the Dev stage's maxPromptChars
BATCH = 50
BATCHES = 32  # 1,600 frames sent; across batches some repeat, so about 1,250 distinct
DISTINCT_FRAMES = 1000

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def tagged(strategy, code):
    """Frames paired with the error code each must earn."""
    return strategy.map(lambda frame: (frame, code))


not_json = st.text(max_size=200).filter(lambda s: not _is_json_object(s))
non_object_json = st.one_of(scalars, st.lists(json_values, max_size=4)).map(json.dumps)
wrong_action = (
    st.dictionaries(st.text(max_size=10), json_values, max_size=4)
    .map(lambda d: {**d, "action": d.get("action", 7)})
    .filter(lambda d: d["action"] not in ("chat", "stop", "reset", "ping"))
    .map(json.dumps)
)
# Over the cap, built cheaply: a run of filler (the shortest is one over the cap) and a
# generated tail, so the prompt is never blank and Hypothesis need not draw 8,000 characters.
too_long_prompts = st.builds(
    lambda extra, tail: "x" * (PROMPT_CAP + 1 + extra) + tail,
    st.integers(min_value=0, max_value=200),
    st.text(max_size=20),
)
bad_prompts = st.one_of(
    st.text(alphabet=" \t\n\r", max_size=5),  # empty or blank
    st.integers(),
    st.lists(st.text(max_size=5), max_size=3),
    st.none(),
)
bad_options = st.one_of(
    st.fixed_dictionaries(
        {"max_tokens": st.one_of(st.text(), st.floats(), st.integers(max_value=0), st.booleans())}
    ),
    st.fixed_dictionaries(
        {
            "temperature": st.one_of(
                st.text(), st.floats(min_value=2.01, max_value=1e9), st.floats(max_value=-0.01)
            )
        }
    ),
    st.fixed_dictionaries(
        {
            "top_p": st.one_of(
                st.floats(min_value=1.01, max_value=10), st.floats(max_value=0), st.text()
            )
        }
    ),
    st.fixed_dictionaries(
        {
            "stop": st.one_of(
                st.text(),
                st.lists(st.text(min_size=1, max_size=4), min_size=5, max_size=8),
                st.just([""]),
            )
        }
    ),
    st.dictionaries(
        st.text(min_size=1, max_size=8).filter(
            lambda k: k not in ("max_tokens", "temperature", "top_p", "stop")
        ),
        json_values,
        min_size=1,
        max_size=2,
    ),
    st.one_of(st.text(), st.integers(), st.lists(st.integers(), max_size=2)),
)
bad_chats = st.one_of(
    st.builds(lambda p: {"action": "chat", "prompt": p}, bad_prompts),
    st.builds(lambda o: {"action": "chat", "prompt": "hi", "options": o}, bad_options),
    st.just({"action": "chat"}),
).map(json.dumps)
too_large_chats = st.builds(lambda p: {"action": "chat", "prompt": p}, too_long_prompts).map(
    json.dumps
)
binary = st.binary(min_size=1, max_size=64)
# Valid JSON (`"\ud800"`) but not text: a lone surrogate, which `st.text` never draws, in
# a prompt or a stop sequence that would otherwise pass.
lone_surrogate_text = st.builds(
    lambda before, surrogate, after: before + surrogate + after,
    st.text(max_size=8),
    st.characters(categories=["Cs"]),
    st.text(max_size=8),
)
not_text_chats = st.one_of(
    st.builds(lambda p: {"action": "chat", "prompt": p}, lone_surrogate_text),
    st.builds(
        lambda good, bad: {"action": "chat", "prompt": "hi", "options": {"stop": [*good, bad]}},
        st.lists(st.text(min_size=1, max_size=4), max_size=3),
        lone_surrogate_text,
    ),
).map(json.dumps)

hostile = st.one_of(
    tagged(not_json, BAD_JSON),
    tagged(non_object_json, BAD_JSON),
    tagged(wrong_action, UNKNOWN_ACTION),
    tagged(bad_chats, BAD_REQUEST),
    tagged(not_text_chats, BAD_REQUEST),
    tagged(too_large_chats, TOO_LARGE),
    tagged(binary, BAD_REQUEST),
)
batches = st.lists(hostile, min_size=BATCH, max_size=BATCH, unique_by=lambda pair: pair[0])


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def test_every_hostile_message_gets_its_own_error(cloud):
    sent: Counter[str] = Counter()  # code -> distinct frames sent that must earn it
    seen: set[str | bytes] = set()

    async def exchange(frames):
        answers = []
        async with connect(cloud, max_size=None) as ws:
            for frame, _ in frames:
                await ws.send(frame)
                answers.append(await receive(ws, 60))
            await ws.send(json.dumps({"action": "ping"}))
            return answers, await receive(ws, 30)

    # No shrinking: each step would replay a batch through the live twin (a missed refusal
    # starts a real reply), and the failing frame is in the assertion message already.
    @settings(
        max_examples=BATCHES,
        deadline=None,
        database=None,
        phases=(Phase.explicit, Phase.generate),
    )
    @given(batches)
    def one_batch(frames):
        answers, pong = asyncio.run(exchange(frames))
        for (frame, code), answer in zip(frames, answers, strict=True):
            assert answer.get("type") == "error", (frame[:200], answer, diagnostics(cloud))
            assert answer["code"] == code, (frame[:200], answer)
            assert isinstance(answer["message"], str) and answer["message"]
            assert set(answer) == {"type", "code", "message"}
            if frame not in seen:
                seen.add(frame)
                sent[code] += 1
        assert pong == {"type": "pong"}

    one_batch()
    assert len(seen) >= DISTINCT_FRAMES, sent
    assert set(sent) == CODES, sent

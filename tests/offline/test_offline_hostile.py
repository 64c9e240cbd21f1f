"""Property: malformed and hostile messages each get a well-formed error; nothing escapes.

At least 1,000 generated messages go through the twin (gateway, real router, moto); each
must be answered by exactly one protocol `error`, never by API Gateway's "Internal server
error" (a handler exception), and the connection must still answer `ping` afterwards.
"""

from __future__ import annotations

import asyncio
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.offline.twin_helpers import connect, diagnostics, receive

CODES = {"bad_json", "unknown_action", "bad_request", "too_large"}
BATCH = 250

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

not_json = st.text(max_size=200).filter(lambda s: not _is_json_object(s))
non_object_json = st.one_of(scalars, st.lists(json_values, max_size=4)).map(json.dumps)
wrong_action = (
    st.dictionaries(st.text(max_size=10), json_values, max_size=4)
    .map(lambda d: {**d, "action": d.get("action", 7)})
    .filter(lambda d: d["action"] not in ("chat", "stop", "reset", "ping"))
    .map(json.dumps)
)
bad_prompts = st.one_of(
    st.just(""),
    st.text(min_size=8001, max_size=8100),
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
binary = st.binary(min_size=1, max_size=64)

hostile = st.one_of(not_json, non_object_json, wrong_action, bad_chats, binary)


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


@settings(
    max_examples=4,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(hostile, min_size=BATCH, max_size=BATCH))
def test_every_hostile_message_gets_one_well_formed_error(cloud, frames):
    async def scenario():
        async with connect(cloud, max_size=None) as ws:
            for frame in frames:
                await ws.send(frame)
            answers = [await receive(ws, 60) for _ in frames]
            await ws.send(json.dumps({"action": "ping"}))
            return answers, await receive(ws, 30)

    answers, pong = asyncio.run(scenario())
    for answer in answers:
        assert answer.get("type") == "error", (answer, diagnostics(cloud))
        assert answer["code"] in CODES, answer
        assert isinstance(answer["message"], str) and answer["message"]
        assert set(answer) == {"type", "code", "message"}
    assert pong == {"type": "pong"}

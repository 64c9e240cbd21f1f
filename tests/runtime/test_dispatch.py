"""The router → inference event: one shape, written by the router, read by the inference
and dispatch-failure functions, and shown in docs/architecture.md."""

from __future__ import annotations

import json
import re

import pytest

from infra.paths import REPO_ROOT
from llambda.dispatch import Dispatch, MalformedDispatch
from llambda.protocol import ChatOptions

DISPATCH = Dispatch(
    connection_id="c=",
    conversation_id="conv-1",
    reply_id="r1",
    request_id="api-1",
    callback_url="https://abc.execute-api.us-east-1.amazonaws.com/dev",
    prompt="Hello",
    options=ChatOptions(max_tokens=7, temperature=0.5, top_p=0.9, stop=("END",)),
    dispatched_at_ms=1764300000000,
    history=({"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}),
    epoch=2,
    attach_count=3,
)


def test_it_survives_the_trip_through_json():
    assert Dispatch.from_event(json.loads(json.dumps(DISPATCH.to_event()))) == DISPATCH


def test_the_documented_example_is_the_shape():
    doc = (REPO_ROOT / "docs" / "architecture.md").read_text()
    block = doc.split("The dispatch event (router → inference)", 1)[1]
    example = json.loads(re.search(r"```json\n(.*?)```", block, re.S).group(1))
    assert Dispatch.from_event(example).to_event() == example


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda e: e.pop("options"), "no options"),
        (lambda e: e.pop("connectionId"), "no connectionId"),
        (lambda e: e.pop("conversationId"), "no conversationId"),
        (lambda e: e.update(prompt=""), "non-empty string"),
        (lambda e: e.update(options={"max_tokens": "many"}), "invalid literal"),
        (lambda e: e.update(options=None), "not subscriptable"),
    ],
)
def test_a_malformed_event_names_what_is_wrong(change, why):
    event = DISPATCH.to_event()
    change(event)
    with pytest.raises(MalformedDispatch, match=why):
        Dispatch.from_event(event)


def test_an_event_that_is_not_an_object_is_malformed():
    with pytest.raises(MalformedDispatch):
        Dispatch.from_event(["not", "an", "object"])

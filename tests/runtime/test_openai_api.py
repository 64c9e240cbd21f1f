"""The OpenAI-compatible door's protocol: what it accepts, what it refuses with which
status and error body, and that what it builds parses as the official `openai` package's
own types with no field of ours left over (a misspelt field would be one)."""

from __future__ import annotations

import json

import pytest
from openai.types import Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import BaseModel

from llambda import openai_api
from llambda.openai_api import OpenAIError, parse_chat_completion
from llambda.protocol import ChatOptions, Limits

LIMITS = Limits(
    max_prompt_chars=100,
    max_tokens_cap=512,
    default_max_tokens=256,
    max_temperature=2.0,
    max_stop_sequences=4,
)
MODEL = "smollm2-135m"


def body(**fields) -> str:
    data = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], **fields}
    return json.dumps(data)


def parse(text):
    return parse_chat_completion(text, limits=LIMITS, model_id=MODEL)


def refusal(text) -> OpenAIError:
    with pytest.raises(OpenAIError) as refused:
        parse(text)
    shape = refused.value.body()
    assert set(shape) == {"error"}
    assert set(shape["error"]) == {"message", "type", "param", "code"}
    return refused.value


def test_a_plain_request_takes_the_stage_defaults():
    request = parse(body())
    assert request.messages == [{"role": "user", "content": "hi"}]
    assert request.options == ChatOptions(max_tokens=256)
    assert not request.stream and not request.include_usage and request.options.seed is None


def test_sampling_options_reach_the_same_chat_options_as_the_websocket_door():
    request = parse(
        body(
            max_tokens=10,
            temperature=0.5,
            top_p=0.9,
            stop="\n",
            seed=7,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert request.options == ChatOptions(
        max_tokens=10, temperature=0.5, top_p=0.9, stop=("\n",), seed=7
    )
    assert request.stream and request.include_usage


def test_max_completion_tokens_is_max_tokens_and_both_are_capped():
    assert parse(body(max_completion_tokens=12)).options.max_tokens == 12
    assert parse(body(max_tokens=100_000)).options.max_tokens == 512


def test_roles_and_text_parts():
    request = parse(
        json.dumps(
            {
                "model": MODEL,
                "messages": [
                    {"role": "developer", "content": "be brief"},
                    {"role": "user", "content": "a"},
                    {"role": "assistant", "content": "b"},
                    {
                        "role": "user",
                        "content": [{"type": "text", "text": "c"}, {"type": "text", "text": "d"}],
                    },
                ],
            }
        )
    )
    assert [m["role"] for m in request.messages] == ["system", "user", "assistant", "user"]
    assert request.messages[-1]["content"] == "cd"


@pytest.mark.parametrize(
    ("text", "status", "param", "code"),
    [
        ("", 400, None, None),
        ("{not json", 400, None, None),
        ("[1]", 400, None, None),
        (body(model="gpt-4o"), 404, "model", "model_not_found"),
        (json.dumps({"messages": [{"role": "user", "content": "x"}]}), 400, "model", None),
        (body(messages=[]), 400, "messages", None),
        (body(messages=[{"role": "tool", "content": "x"}]), 400, "messages[0].role", None),
        (body(messages=[{"role": "user", "content": 3}]), 400, "messages[0].content", None),
        (
            body(
                messages=[{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]
            ),
            400,
            "messages[1].role",
            None,
        ),
        (
            body(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]),
            400,
            "messages[0].content",
            "unsupported_value",
        ),
        (
            body(messages=[{"role": "user", "content": "x" * 101}]),
            400,
            "messages",
            "context_length_exceeded",
        ),
        (body(temperature=3), 400, "temperature", None),
        (body(top_p=0), 400, "top_p", None),
        (body(max_tokens=0), 400, "max_tokens", None),
        (body(max_tokens=True), 400, "max_tokens", None),
        (body(stop=["a", "b", "c", "d", "e"]), 400, "stop", None),
        (body(stop=[1]), 400, "stop", None),
        (body(seed="1"), 400, "seed", None),
        (body(stream="yes"), 400, "stream", None),
        (body(stream_options={"include_usage": True}), 400, "stream_options", None),
        (body(n=2), 400, "n", "unsupported_parameter"),
        (body(tools=[{"type": "function"}]), 400, "tools", "unsupported_parameter"),
        (body(logprobs=True), 400, "logprobs", "unsupported_parameter"),
        (
            body(response_format={"type": "json_object"}),
            400,
            "response_format",
            "unsupported_parameter",
        ),
        (body(frequency_penalty=0.5), 400, "frequency_penalty", "unsupported_parameter"),
        (body(bogus=1), 400, "bogus", "unknown_parameter"),
    ],
)
def test_refused_with_openais_error_shape_and_status(text, status, param, code):
    refused = refusal(text)
    assert (refused.status, refused.param, refused.code) == (status, param, code)
    assert refused.type == "invalid_request_error"
    assert refused.message


def test_neutral_and_ignored_parameters_are_accepted():
    request = parse(
        body(
            n=1,
            presence_penalty=0,
            logprobs=False,
            user="u",
            store=False,
            response_format={"type": "text"},
        )
    )
    assert request.options == ChatOptions(max_tokens=256)


def leftovers(model: BaseModel, path="") -> list[str]:
    """Fields the official type does not declare, anywhere inside `model`."""
    found = [f"{path}.{name}" for name in (model.model_extra or {})]
    for name in type(model).model_fields:
        value = getattr(model, name)
        values = value if isinstance(value, list) else [value]
        for index, item in enumerate(values):
            if isinstance(item, BaseModel):
                found += leftovers(item, f"{path}.{name}[{index}]")
    return found


def test_stream_chunks_are_openais_chunks():
    common = {"id": "chatcmpl-1", "created": 1, "model": MODEL}
    first = openai_api.chunk(**common, delta={"role": "assistant", "content": ""})
    text = openai_api.chunk(**common, delta={"content": "Hel"}, include_usage=True)
    last = openai_api.chunk(**common, reason="length")
    usage = openai_api.chunk(**common, usage=openai_api.usage(3, 4))
    for message in (first, text, last, usage):
        parsed = ChatCompletionChunk.model_validate(message)
        assert leftovers(parsed) == []
    assert ChatCompletionChunk.model_validate(text).choices[0].delta.content == "Hel"
    assert ChatCompletionChunk.model_validate(last).choices[0].finish_reason == "length"
    assert text["usage"] is None and "usage" not in first
    parsed = ChatCompletionChunk.model_validate(usage)
    assert parsed.choices == [] and parsed.usage.total_tokens == 7


def test_a_whole_completion_is_openais_completion():
    message = openai_api.completion(
        id="chatcmpl-1",
        created=1,
        model=MODEL,
        text="Hi!",
        reason="end",
        usage=openai_api.usage(3, 2),
    )
    parsed = ChatCompletion.model_validate(message)
    assert leftovers(parsed) == []
    assert parsed.choices[0].message.content == "Hi!"
    assert parsed.choices[0].finish_reason == "stop"


def test_every_engine_reason_has_an_openai_finish_reason():
    from llambda.contract import DoneReason

    assert {openai_api.finish_reason(r) for r in DoneReason} <= {"stop", "length"}
    assert openai_api.finish_reason(DoneReason.LENGTH) == "length"


def test_model_list_and_server_sent_events():
    listed = openai_api.models(MODEL, created=5)
    assert listed["object"] == "list"
    assert leftovers(Model.model_validate(listed["data"][0])) == []
    event = openai_api.sse({"a": "é"})
    assert event == 'data: {"a":"é"}\n\n'.encode()
    assert openai_api.DONE_EVENT == b"data: [DONE]\n\n"

"""End-to-end chat through the twin: real WebSocket client, real handlers, real model."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator

import pytest
import websockets

from offline.cloud import OfflineCloud
from tests.offline.twin_helpers import (
    LOCAL_ENVIRONMENT,
    act,
    attach,
    chat,
    connect,
    conversation_of,
    diagnostics,
    first_delta,
    receive,
    until_done,
)
from tests.twin_assembly import TWIN_STAGE

LONG_PROMPT = "Write a very long story about a dragon who learns to bake bread."


def run(coro):
    return asyncio.run(coro)


def items(cloud: OfflineCloud) -> list[dict]:
    return cloud.table().scan()["Items"]


def wait_for(predicate, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_a_reply_streams_in_several_deltas_in_order(cloud):
    async def scenario():
        async with connect(cloud) as ws:
            await chat(ws, "Name three colours.", max_tokens=48)
            return await until_done(ws)

    deltas, done = run(scenario())
    assert done["type"] == "done", (done, diagnostics(cloud))
    assert done["reason"] in ("end", "length")
    assert len(deltas) >= 2
    assert [d["seq"] for d in deltas] == list(range(len(deltas)))
    assert "".join(d["text"] for d in deltas).strip()
    assert done["usage"]["completion_tokens"] > 0


def test_stop_ends_a_running_reply(cloud):
    async def scenario():
        async with connect(cloud) as ws:
            await chat(ws, LONG_PROMPT, max_tokens=512)
            await first_delta(ws)
            await act(ws, "stop")
            return await until_done(ws)

    _, done = run(scenario())
    assert done["type"] == "done", (done, diagnostics(cloud))
    assert done["reason"] == "stopped"
    assert done["usage"]["completion_tokens"] < 512


def test_a_second_chat_during_a_reply_is_busy_and_the_first_completes(cloud):
    async def scenario():
        async with connect(cloud) as ws:
            await chat(ws, LONG_PROMPT, max_tokens=96)
            await first_delta(ws)
            await chat(ws, "And another thing?")
            seen = []
            while True:
                message = await receive(ws)
                seen.append(message)
                if message["type"] == "done":
                    return seen

    seen = run(scenario())
    errors = [m for m in seen if m["type"] == "error"]
    assert [e["code"] for e in errors] == ["busy"], seen
    assert seen[-1]["reason"] in ("end", "length")


def test_turns_are_kept_and_reset_forgets_them(cloud):
    async def scenario():
        async with connect(cloud) as ws:
            for prompt in ("My name is Ada.", "What is my name?"):
                await chat(ws, prompt, max_tokens=16)
                _, done = await until_done(ws)
                assert done["type"] == "done", done
            [item] = [i for i in items(cloud) if "Ada" in i.get("history", "")]
            assert item["pk"] == "conversation#" + conversation_of(ws)
            history = json.loads(item["history"])
            await act(ws, "reset")
            assert await receive(ws) == {"type": "reset", "stopped": False}
            cleared = cloud.table().get_item(Key={"pk": item["pk"]})["Item"]
            return history, json.loads(cleared["history"])

    history, after_reset = run(scenario())
    assert [t["role"] for t in history] == ["user", "assistant", "user", "assistant"]
    assert history[0]["content"] == "My name is Ada."
    assert after_reset == []


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "bad_json"),
        ("[1, 2]", "bad_json"),
        ('{"action": "dance"}', "unknown_action"),
        ('{"prompt": "no action"}', "unknown_action"),
        (b"\x00\x01binary", "bad_request"),
        ('{"action": "chat", "prompt": ""}', "bad_request"),
        ('{"action": "chat", "prompt": "' + "x" * 9000 + '"}', "too_large"),
        ('{"action": "chat", "prompt": "hi", "options": {"max_tokens": "ten"}}', "bad_request"),
        ('{"action": "chat", "prompt": "hi", "options": [1]}', "bad_request"),
    ],
)
def test_bad_input_gets_a_clear_error_and_the_connection_stays(cloud, frame, code):
    async def scenario():
        async with connect(cloud) as ws:
            await ws.send(frame)
            error = await receive(ws)
            await ws.send(json.dumps({"action": "ping"}))
            return error, await receive(ws)

    error, pong = run(scenario())
    assert error["type"] == "error", error
    assert error["code"] == code
    assert error["message"]
    assert pong == {"type": "pong"}


def test_a_prompt_under_the_character_cap_but_over_the_context_is_refused_and_the_chat_goes_on(
    cloud,
):
    """2,700 CJK characters pass the 8,000-character cap, but at ~3 tokens each not the
    model's context: the client gets `context_length_exceeded` (not `engine_error`) with
    the numbers, and the conversation answers its next message."""
    too_long = "漢" * 2700

    async def scenario():
        async with connect(cloud) as ws:
            await chat(ws, "Say hello.", max_tokens=8)
            _, first = await until_done(ws)
            # As a browser sends it: the frame's JSON is UTF-8, not \u escapes.
            frame = {"action": "chat", "prompt": too_long, "conversation": conversation_of(ws)}
            await ws.send(json.dumps(frame, ensure_ascii=False))
            deltas, refused = await until_done(ws)
            await chat(ws, "Say hello again.", max_tokens=8)
            _, after = await until_done(ws)
            return first, deltas, refused, after

    first, deltas, refused, after = run(scenario())
    assert first["type"] == "done", (first, diagnostics(cloud))
    assert deltas == []
    assert refused["type"] == "error" and refused["code"] == "context_length_exceeded", refused
    assert re.fullmatch(
        r"The message is \d+ tokens; with room for a reply the model takes at most \d+ "
        r"\(its context holds \d+\)\. .+",
        refused["message"],
    ), refused
    assert after["type"] == "done", (after, diagnostics(cloud))


def test_a_foreign_origin_is_refused_with_403(cloud):
    async def scenario():
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with connect(cloud, origin="https://evil.example"):
                pass
        return refused.value.response.status_code

    assert run(scenario()) == 403


@pytest.fixture(scope="module")
def guarded(assemblies) -> Iterator[OfflineCloud]:
    """A twin of a stage that requires a token (Prod's setting), so it has an authorizer."""
    twin = OfflineCloud(
        assembly=assemblies.get({"requireToken": True}),
        stage=TWIN_STAGE,
        environment=LOCAL_ENVIRONMENT,
    )
    twin.start()
    try:
        yield twin
    finally:
        twin.stop()


def test_no_token_is_401_a_wrong_one_403_and_the_right_one_accepted(guarded):
    async def refused_status(query: str) -> int:
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with connect(guarded, query):
                pass
        return refused.value.response.status_code

    async def scenario():
        missing, wrong = await refused_status(""), await refused_status("?token=wrong")
        # The token is the value the template's secret was generated with.
        async with connect(guarded, f"?token={guarded.secret('Authorizer/Token')}") as ws:
            await ws.send(json.dumps({"action": "ping"}))
            pong = await receive(ws)
        return missing, wrong, pong

    missing, wrong, pong = run(scenario())
    assert (missing, wrong) == (401, 403)
    assert pong == {"type": "pong"}


def test_a_secret_given_to_the_twin_replaces_the_generated_one(assemblies):
    # `make dev ARGS="--secret Authorizer/Token=..."`: the value, not the generated one.
    twin = OfflineCloud(
        assembly=assemblies.get({"requireToken": True}),
        stage=TWIN_STAGE,
        secrets={"Authorizer/Token": "chosen-token"},
    )
    with twin:

        async def scenario():
            async with connect(twin, "?token=chosen-token") as ws:
                await ws.send(json.dumps({"action": "ping"}))
                return await receive(ws)

        assert run(scenario()) == {"type": "pong"}


def test_a_stage_without_required_token_has_no_authorizer(cloud):
    # Dev deploys no authorizer (see infra/stateless_stack.py): any token, or none, connects.
    async def scenario():
        async with connect(cloud, "?token=anything") as ws:
            await ws.send(json.dumps({"action": "ping"}))
            return await receive(ws)

    assert run(scenario()) == {"type": "pong"}


def kept_replies(inference) -> list[dict]:
    """The inference function's "reply ended with no client attached" records, oldest first."""
    return [
        json.loads(line)
        for line in list(inference.output)
        if '"reply ended with no client attached"' in line
    ]


def test_a_reply_goes_on_when_its_client_leaves_and_is_kept_whole(cloud):
    inference = cloud.function("Inference")
    kept_before = len(kept_replies(inference))

    async def leave_mid_reply():
        async with connect(cloud) as ws:
            await chat(ws, LONG_PROMPT, max_tokens=96)
            first = await first_delta(ws)
            connection_id = cloud.connections.ids()[-1]
            return conversation_of(ws), first, connection_id

    conversation, first, connection_id = run(leave_mid_reply())
    # The connection is gone; the conversation stays.
    assert wait_for(lambda: connection_id not in cloud.connections.ids())
    # The reply ran to its end with nobody attached and was saved, not dropped.
    assert wait_for(lambda: len(kept_replies(inference)) > kept_before, timeout=120), diagnostics(
        cloud
    )
    assert kept_replies(inference)[-1]["tokens"] > 1

    async def come_back():
        async with connect(cloud) as ws:
            return await attach(ws, conversation, seq=first["seq"])

    attached = run(come_back())
    assert attached["reply"] is None and attached["interrupted"] is False
    assert [t["role"] for t in attached["turns"]] == ["user", "assistant"]
    assert attached["turns"][1]["content"].startswith(first["text"])


def test_a_dropped_reply_resumes_on_another_connection_without_gaps_or_duplicates(cloud):
    async def scenario():
        async with connect(cloud) as ws:
            await chat(ws, LONG_PROMPT, max_tokens=400)
            seen = [await first_delta(ws)]
            seen.append(await receive(ws))  # a second delta: the client has seq 0 and 1
            conversation = conversation_of(ws)
        # The drop: the reply goes on. A new connection attaches with what it has.
        async with connect(cloud) as ws:
            answer = await attach(ws, conversation, seq=seen[-1]["seq"])
            rest, done = await until_done(ws)
            return conversation, seen, answer, rest, done

    conversation, seen, answer, rest, done = run(scenario())
    assert seen[1]["type"] == "delta", seen
    assert done["type"] == "done", (done, diagnostics(cloud))
    assert done["conversation"] == conversation
    # 400 tokens take seconds; the reconnect takes milliseconds.
    assert answer["reply"] == {"prompt": LONG_PROMPT}, answer
    deltas = seen + rest
    assert [d["seq"] for d in deltas] == list(range(len(deltas)))
    assert all(d["conversation"] == conversation for d in deltas)
    saved = json.loads(
        cloud.table().get_item(Key={"pk": "conversation#" + conversation})["Item"]["history"]
    )
    assert saved[-1]["content"] == "".join(d["text"] for d in deltas)


def test_the_gateways_age_cut_mid_reply_is_survived_by_attaching_again(cloud):
    # API Gateway closes every connection at 2 hours; the twin's limit is shrunk to the
    # length of a reply's start, and put back before the client reconnects.
    default_age = cloud.limits.max_connection_seconds

    async def scenario():
        cloud.limits.max_connection_seconds = 3.0
        try:
            async with connect(cloud) as ws:
                await chat(ws, LONG_PROMPT, max_tokens=500)
                seen = [await first_delta(ws)]
                try:
                    while True:
                        message = await receive(ws)
                        if message["type"] == "delta":
                            seen.append(message)
                except websockets.ConnectionClosed as closed:
                    cut = closed.rcvd
        finally:
            cloud.limits.max_connection_seconds = default_age
        conversation = conversation_of(ws)
        async with connect(cloud) as ws:
            answer = await attach(ws, conversation, seq=seen[-1]["seq"])
            rest, done = await until_done(ws)
        return conversation, cut, seen, answer, rest, done

    conversation, cut, seen, answer, rest, done = run(scenario())
    assert (cut.code, cut.reason) == (1001, "Going away")
    assert answer["reply"] == {"prompt": LONG_PROMPT}, answer  # still running at the cut
    assert done["type"] == "done", (done, diagnostics(cloud))
    deltas = seen + rest
    assert [d["seq"] for d in deltas] == list(range(len(deltas)))
    saved = cloud.table().get_item(Key={"pk": "conversation#" + conversation})["Item"]
    assert json.loads(saved["history"])[-1]["content"] == "".join(d["text"] for d in deltas)


def test_the_newest_attach_wins_and_the_older_connection_is_told(cloud):
    async def scenario():
        async with connect(cloud) as first, connect(cloud) as second:
            await chat(first, "Say hi.", max_tokens=8)
            await until_done(first)
            conversation = conversation_of(first)
            await attach(second, conversation)
            told = await receive(first)
            await chat(first, "Still here?", max_tokens=8)
            refused = await receive(first)
            await chat(second, "Say bye.", max_tokens=8)
            _, done = await until_done(second)
            return conversation, told, refused, done

    conversation, told, refused, done = run(scenario())
    assert told == {"type": "detached", "conversation": conversation}
    assert refused["type"] == "error" and refused["code"] == "not_attached"
    assert done["type"] == "done"


def test_history_forget_and_an_unknown_conversation(cloud):
    async def scenario():
        async with connect(cloud) as ws:
            await chat(ws, "My name is Ada.", max_tokens=8)
            await until_done(ws)
            await act(ws, "history")
            history = await receive(ws)
            await act(ws, "forget")
            forgotten = await receive(ws)
            await act(ws, "history")
            after = await receive(ws)
            await chat(ws, "What is my name?")
            chat_after = await receive(ws)
            return conversation_of(ws), history, forgotten, after, chat_after

    conversation, history, forgotten, after, chat_after = run(scenario())
    assert history["type"] == "history" and history["conversation"] == conversation
    assert history["turns"][0] == {"role": "user", "content": "My name is Ada."}
    assert forgotten == {"type": "forgotten", "conversation": conversation}
    assert after["type"] == "error" and after["code"] == "not_found"
    assert chat_after["type"] == "error" and chat_after["code"] == "not_found"
    assert not any(i["pk"] == "conversation#" + conversation for i in items(cloud))


def test_eight_clients_at_once_each_get_only_their_own_reply(cloud):
    prompts = [f"Client {n}: name a fruit that starts with {c}." for n, c in enumerate("ABCDEFGH")]
    inference = cloud.function("Inference")
    all_done = asyncio.Barrier(len(prompts) + 1)
    all_idle = asyncio.Event()

    async def one(prompt):
        async with connect(cloud) as ws:
            await chat(ws, prompt, max_tokens=24)
            deltas, done = await until_done(ws, timeout=180)
            # What the server saved for this prompt, read while the connection still lives
            saved = await asyncio.to_thread(saved_history, prompt)
            await all_done.wait()
            await all_idle.wait()
            # Every reply has ended and no instance is generating: nothing more can be on its
            # way to this client, so the next thing it hears must be the answer to this ping.
            await ws.send(json.dumps({"action": "ping"}))
            after = await receive(ws)
            stray = None if after == {"type": "pong"} else after
            return prompt, deltas, done, stray, saved

    def saved_history(prompt):
        for item in items(cloud):
            history = json.loads(item.get("history", "[]"))
            if history and history[0]["content"] == prompt:
                return history
        return None

    async def scenario():
        clients = [asyncio.create_task(one(p)) for p in prompts]
        async with asyncio.timeout(240):  # a failed client fails the test, not hangs it
            await all_done.wait()
        assert await asyncio.to_thread(wait_for, lambda: inference.busy == 0, 60)
        all_idle.set()
        return await asyncio.gather(*clients)

    for _prompt, deltas, done, stray, saved in run(scenario()):
        assert done["type"] == "done", (done, diagnostics(cloud))
        assert [d["seq"] for d in deltas] == list(range(len(deltas)))
        assert stray is None
        # The reply saved for this client's prompt is exactly the text this client got.
        assert saved is not None and len(saved) == 2
        assert saved[1]["content"].strip() == "".join(d["text"] for d in deltas).strip()

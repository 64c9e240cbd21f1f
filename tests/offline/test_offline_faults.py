"""Faults injected through the real local servers: the reply survives or the client is told."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.offline.twin_helpers import chat, connect, diagnostics, receive


async def one_reply(cloud, prompt="Say hi.", max_tokens=16, after_first_delta=None):
    """One chat to its end and a ping after it; `after_first_delta()` runs mid-reply.

    Returns (deltas, the final done or error, the pong, the value `after_first_delta`'s
    probe read when the reply ended, and (with `after_first_delta`) the connection item once
    the reply's lease is released, read before `$disconnect` deletes it; else Nones)."""
    probe = None
    async with connect(cloud) as ws:
        await chat(ws, prompt, max_tokens=max_tokens)
        deltas = []
        while True:
            message = await receive(ws, 90)
            if message.get("type") == "delta":
                deltas.append(message)
                if len(deltas) == 1 and after_first_delta is not None:
                    probe = after_first_delta()
            elif message.get("type") in ("done", "error"):
                end = message
                break
        seen_at_end = probe() if probe is not None else None
        await ws.send(json.dumps({"action": "ping"}))
        pong = await receive(ws)
        item = await released_item(cloud, prompt) if after_first_delta else None
        return deltas, end, pong, seen_at_end, item


async def released_item(cloud, prompt, timeout=60.0):
    """The item whose history starts with `prompt`, once no reply holds its lease (a
    generous bound to wait on state, never a timing assertion); None if none appears."""
    async with asyncio.timeout(timeout):
        while True:
            for item in cloud.table().scan()["Items"]:
                turns = json.loads(item.get("history", "[]"))
                ours = turns and turns[0] == {"role": "user", "content": prompt}
                if ours and "replyId" not in item:
                    return item
            await asyncio.sleep(0.05)


def fault_the_inference_writes(cloud, kind):
    """After the first delta only the inference function calls DynamoDB (lease renewal,
    the history save before `done`, the lease release): fault its next two UpdateItems."""

    def inject():
        assert cloud.faults.aws.injected == 0  # nothing faulted before the reply streamed
        cloud.faults.aws.fail_dynamodb(2, kind, operation="UpdateItem")
        return lambda: cloud.faults.aws.injected

    return inject


def assert_reply_saved(cloud, prompt, deltas, done, item):
    """The reply completed in order, and its turn was saved and its lease released."""
    assert done["type"] == "done", (done, diagnostics(cloud))
    assert [d["seq"] for d in deltas] == list(range(len(deltas)))
    assert json.loads(item["history"]) == [
        {"role": "user", "content": prompt},
        {"role": "assistant", "content": "".join(d["text"] for d in deltas)},
    ], diagnostics(cloud)


@pytest.mark.parametrize("fault", ["throttle", "server_error"])
def test_dynamodb_faults_during_the_reply_are_retried_and_the_turn_saved(cloud, fault):
    prompt = f"Say hi. ({fault} during the reply)"
    deltas, done, pong, injected_by_done, item = asyncio.run(
        one_reply(cloud, prompt, 32, fault_the_inference_writes(cloud, fault))
    )
    # The history save precedes `done`: both faults hit the reply's own writes.
    assert injected_by_done == 2, diagnostics(cloud)
    assert_reply_saved(cloud, prompt, deltas, done, item)
    assert pong == {"type": "pong"}


def test_a_failed_delta_post_at_cloud_latency_is_retried_and_nothing_is_lost(cloud):
    prompt = "Name three colours. (a failed post)"
    cloud.faults.connections.latency_ms = 40  # every @connections call, as over the internet

    def fail_the_next_post():
        cloud.faults.connections.fail_status = 500
        cloud.faults.connections.fail_next = 1
        return lambda: cloud.faults.connections.fail_next

    deltas, done, pong, left_by_done, item = asyncio.run(
        one_reply(cloud, prompt, 32, fail_the_next_post)
    )
    assert left_by_done == 0  # a post after the first delta failed, and was retried
    assert_reply_saved(cloud, prompt, deltas, done, item)  # every delta arrived, in order
    assert pong == {"type": "pong"}


def test_a_throttled_dispatch_tells_the_client_and_the_connection_stays_usable(cloud):
    cloud.faults.invoke.throttle_next = 10  # more than the router's SDK retries
    _, error, pong, _, _ = asyncio.run(one_reply(cloud))
    assert error["type"] == "error", error
    assert error["code"] == "unavailable"
    assert pong == {"type": "pong"}
    cloud.faults.invoke.throttle_next = 0
    _, done, _, _, _ = asyncio.run(one_reply(cloud))
    assert done["type"] == "done", (done, diagnostics(cloud))


def test_a_dispatch_too_old_goes_to_the_failure_handler_and_the_client_is_told(cloud):
    cloud.faults.invoke.expire_next = 1
    _, error, pong, _, _ = asyncio.run(one_reply(cloud))
    assert error["type"] == "error", error
    assert error["code"] == "unavailable", (error, diagnostics(cloud))
    assert pong == {"type": "pong"}
    # The lease was released: the next chat is served at once, not refused as busy.
    _, done, _, _, _ = asyncio.run(one_reply(cloud))
    assert done["type"] == "done", (done, diagnostics(cloud))

"""Faults injected through the real local servers: the reply survives or the client is told."""

from __future__ import annotations

import asyncio
import json

from tests.offline.twin_helpers import chat, connect, diagnostics, receive, until_done


async def one_reply(cloud, prompt="Say hi.", max_tokens=16):
    async with connect(cloud) as ws:
        await chat(ws, prompt, max_tokens=max_tokens)
        deltas, end = await until_done(ws)
        await ws.send(json.dumps({"action": "ping"}))
        pong = await receive(ws)
        return deltas, end, pong


def test_dynamodb_throttling_is_retried_and_the_reply_completes(cloud):
    cloud.faults.aws.fail_dynamodb(2, "throttle")
    deltas, done, _ = asyncio.run(one_reply(cloud))
    assert cloud.faults.aws.injected == 2
    assert done["type"] == "done", (done, diagnostics(cloud))
    assert [d["seq"] for d in deltas] == list(range(len(deltas)))


def test_a_dynamodb_5xx_is_retried_and_the_reply_completes(cloud):
    cloud.faults.aws.fail_dynamodb(1, "server_error", operation="UpdateItem")
    _, done, _ = asyncio.run(one_reply(cloud))
    assert cloud.faults.aws.injected == 1
    assert done["type"] == "done", (done, diagnostics(cloud))


def test_a_failed_connections_post_is_retried_and_nothing_is_lost(cloud):
    cloud.faults.connections.fail_next = 1
    cloud.faults.connections.fail_status = 500
    deltas, done, pong = asyncio.run(one_reply(cloud, max_tokens=32))
    assert cloud.faults.connections.fail_next == 0
    assert done["type"] == "done", (done, diagnostics(cloud))
    assert [d["seq"] for d in deltas] == list(range(len(deltas)))
    assert pong == {"type": "pong"}


def test_streaming_at_cloud_latency_still_completes_in_order(cloud):
    cloud.faults.connections.latency_ms = 40
    deltas, done, _ = asyncio.run(one_reply(cloud, max_tokens=48))
    assert done["type"] == "done"
    assert [d["seq"] for d in deltas] == list(range(len(deltas)))


def test_a_throttled_dispatch_tells_the_client_and_the_connection_stays_usable(cloud):
    cloud.faults.invoke.throttle_next = 10  # more than the router's SDK retries
    _, error, pong = asyncio.run(one_reply(cloud))
    assert error["type"] == "error", error
    assert error["code"] == "unavailable"
    assert pong == {"type": "pong"}
    cloud.faults.invoke.throttle_next = 0
    _, done, _ = asyncio.run(one_reply(cloud))
    assert done["type"] == "done", (done, diagnostics(cloud))


def test_a_dispatch_too_old_goes_to_the_failure_handler_and_the_client_is_told(cloud):
    cloud.faults.invoke.expire_next = 1
    _, error, pong = asyncio.run(one_reply(cloud))
    assert error["type"] == "error", error
    assert error["code"] == "unavailable", (error, diagnostics(cloud))
    assert pong == {"type": "pong"}
    # The lease was released: the next chat is served at once, not refused as busy.
    _, done, _ = asyncio.run(one_reply(cloud))
    assert done["type"] == "done", (done, diagnostics(cloud))

"""API Gateway's 32 KB WebSocket frame, both ways, as the twin enforces it, and the server's
`part` messages that keep every message it sends under it (docs/protocol.md)."""

from __future__ import annotations

import asyncio
import json
import secrets

import boto3
import pytest
import websockets

from llambda.contract import (
    CLOSE_MESSAGE_TOO_BIG,
    MAX_FRAME_BYTES,
    MessageType,
    PartJoiner,
)
from llambda.conversations import ConversationStore
from offline.cloud import DEFAULT_REGION, TWIN_CREDENTIALS
from terminal_client.client import ChatClient
from tests.offline.twin_helpers import connect, origin_of, receive


def padded_ping(size: int) -> str:
    """A `ping` frame of exactly `size` bytes (the router ignores keys it does not know)."""
    frame = json.dumps({"action": "ping", "pad": ""})
    return json.dumps({"action": "ping", "pad": "x" * (size - len(frame))})


async def close_code_after(ws, frame: str) -> int | None:
    await ws.send(frame)
    with pytest.raises(websockets.ConnectionClosed):
        await receive(ws, 10)
    return ws.close_code


def test_a_client_frame_of_32_kb_is_taken_and_one_byte_more_closes_with_1009(cloud):
    async def scenario():
        async with connect(cloud) as ws:
            await ws.send(padded_ping(MAX_FRAME_BYTES))
            answer = await receive(ws)
            # A browser sends a message as one frame: this is what the page cannot send.
            code = await close_code_after(ws, padded_ping(MAX_FRAME_BYTES + 1))
        return answer, code

    answer, code = asyncio.run(scenario())
    assert answer == {"type": "pong"}
    assert code == CLOSE_MESSAGE_TOO_BIG == 1009


def test_a_post_over_the_frame_closes_the_client_with_1009(cloud):
    client = boto3.client(
        "apigatewaymanagementapi", endpoint_url=cloud.connections_url, region_name=DEFAULT_REGION
    )
    head, tail = '{"type":"pong","pad":"', '"}'
    fits = head + "y" * (MAX_FRAME_BYTES - len(head) - len(tail)) + tail

    async def scenario():
        async with connect(cloud) as ws:
            connection_id = cloud.connections.ids()[-1]
            await asyncio.to_thread(
                client.post_to_connection, ConnectionId=connection_id, Data=fits.encode()
            )
            delivered = await ws.recv()
            # The post's frame closes the connection: the post itself finds it gone.
            with pytest.raises(client.exceptions.GoneException):
                await asyncio.to_thread(
                    client.post_to_connection,
                    ConnectionId=connection_id,
                    Data=b"z" * (MAX_FRAME_BYTES + 1),
                )
            with pytest.raises(websockets.ConnectionClosed):
                await receive(ws, 10)
            return connection_id, delivered, ws.close_code

    connection_id, delivered, code = asyncio.run(scenario())
    assert len(delivered.encode()) == MAX_FRAME_BYTES
    assert code == 1009
    with pytest.raises(client.exceptions.GoneException):  # the connection is gone after it
        client.get_connection(ConnectionId=connection_id)


def store_of(cloud) -> ConversationStore:
    (table_name,) = cloud.tables.values()
    db = boto3.client(
        "dynamodb", endpoint_url=cloud.moto_url, region_name=cloud.region, **TWIN_CREDENTIALS
    )
    return ConversationStore(db, table_name)


def a_conversation_over_the_frame(cloud) -> tuple[str, list[dict[str, str]]]:
    """A conversation whose turns take about 100 KB as JSON (4-byte characters, quotes
    and newlines that JSON escapes), saved through the runtime's own store."""
    store = store_of(cloud)
    conversation, reply = secrets.token_urlsafe(24), "r-" + secrets.token_hex(4)
    turns = []
    for n in range(6):
        turns.append({"role": "user", "content": f'question {n}: "why?"\n' + "😀" * 3000})
        turns.append({"role": "assistant", "content": f"answer {n}: " + "文字" * 2000})
    store.start(conversation, "nobody", reply, prompt="x", lease_seconds=60, ttl_seconds=3600)
    saved = store.finish_reply(
        conversation, reply, turns, epoch=0, max_chars=10**6, ttl_seconds=3600
    )
    assert saved.saved
    return conversation, turns


def test_a_message_over_32_kb_arrives_in_parts_each_within_the_frame(cloud):
    conversation, turns = a_conversation_over_the_frame(cloud)
    assert len(json.dumps(turns, ensure_ascii=False).encode()) > 3 * MAX_FRAME_BYTES

    async def scenario():
        async with connect(cloud) as ws:
            await ws.send(json.dumps({"action": "history", "conversation": conversation}))
            frames = []
            joiner = PartJoiner()
            while True:
                raw = await asyncio.wait_for(ws.recv(), 30)
                frames.append(raw)
                whole = joiner.feed(json.loads(raw))
                if whole is not None:
                    return frames, whole

    frames, whole = asyncio.run(scenario())
    assert len(frames) >= 4
    assert all(len(frame.encode()) <= MAX_FRAME_BYTES for frame in frames)
    assert {json.loads(frame)["type"] for frame in frames} == {MessageType.PART}
    assert whole == {"type": "history", "conversation": conversation, "turns": turns}


def test_the_terminal_client_joins_the_parts_of_a_large_attached(cloud):
    conversation, turns = a_conversation_over_the_frame(cloud)
    with ChatClient(cloud.ws_url, origin=origin_of(cloud)) as client:
        attached = client.attach(conversation)
        assert attached["type"] == "attached"
        assert attached["turns"] == turns
        assert client.history() == turns
        client.ping()  # the connection is still open and answering

"""The local @connections API answers the real boto3 client the way API Gateway does."""

from __future__ import annotations

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ReadTimeoutError


def test_post_reaches_the_peer(connections):
    peer = connections.connect("conn-post=")
    client = connections.client()
    client.post_to_connection(ConnectionId="conn-post=", Data=b'{"type": "pong"}')
    client.post_to_connection(ConnectionId="conn-post=", Data=b"second")
    assert peer.texts == ['{"type": "pong"}', "second"]


def test_post_to_unknown_id_is_gone(connections):
    client = connections.client()
    with pytest.raises(client.exceptions.GoneException) as caught:
        client.post_to_connection(ConnectionId="nobody", Data=b"x")
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 410


def test_post_to_a_vanished_peer_is_gone(connections):
    peer = connections.connect("conn-vanish")
    peer.closed = True  # the socket died but the gateway has not noticed yet
    client = connections.client()
    with pytest.raises(client.exceptions.GoneException):
        client.post_to_connection(ConnectionId="conn-vanish", Data=b"x")
    assert connections.registry.get("conn-vanish") is None


def test_post_over_128_kb_is_refused(connections):
    peer = connections.connect("conn-big")
    client = connections.client()
    with pytest.raises(client.exceptions.PayloadTooLargeException):
        client.post_to_connection(ConnectionId="conn-big", Data=b"x" * (128 * 1024 + 1))
    assert peer.texts == []


def test_get_describes_the_connection(connections):
    peer = connections.connect("conn-get")
    answer = connections.client().get_connection(ConnectionId="conn-get")
    assert answer["Identity"] == {"SourceIp": "127.0.0.1", "UserAgent": "pytest"}
    assert abs(answer["ConnectedAt"].timestamp() - peer.connected_at) < 0.01
    assert abs(answer["LastActiveAt"].timestamp() - peer.last_active_at) < 0.01


def test_get_unknown_is_gone(connections):
    client = connections.client()
    with pytest.raises(client.exceptions.GoneException):
        client.get_connection(ConnectionId="nobody")


def test_delete_closes_and_forgets(connections):
    peer = connections.connect("conn-del")
    client = connections.client()
    answer = client.delete_connection(ConnectionId="conn-del")
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert peer.closed
    with pytest.raises(client.exceptions.GoneException):
        client.delete_connection(ConnectionId="conn-del")
    with pytest.raises(client.exceptions.GoneException):
        client.post_to_connection(ConnectionId="conn-del", Data=b"x")


def test_fail_next_fails_that_many_calls(connections):
    peer = connections.connect("conn-fault")
    # One attempt per call (botocore's `max_attempts` counts retries; this counts all).
    client = boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=connections.endpoint,
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )
    connections.faults.fail_status = 429
    connections.faults.fail_next = 2
    try:
        for _ in range(2):
            with pytest.raises(client.exceptions.LimitExceededException):
                client.post_to_connection(ConnectionId="conn-fault", Data=b"x")
        client.post_to_connection(ConnectionId="conn-fault", Data=b"ok")
    finally:
        connections.faults.fail_status = 500
    assert peer.texts == ["ok"]


def test_latency_is_added_to_each_call(connections):
    # No clock read: a client that waits 1 s for an answer gives up on a call delayed 3 s
    # (a slow machine only delays it more), and gets its answer once the delay is gone.
    peer = connections.connect("conn-slow")
    impatient = boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=connections.endpoint,
        region_name="us-east-1",
        config=Config(read_timeout=1, retries={"total_max_attempts": 1}),
    )
    connections.faults.latency_ms = 3000
    with pytest.raises(ReadTimeoutError):
        impatient.post_to_connection(ConnectionId="conn-slow", Data=b"late")
    connections.faults.latency_ms = 0
    impatient.post_to_connection(ConnectionId="conn-slow", Data=b"x")
    assert "x" in peer.texts  # ("late" may still land after it: the server sleeps on)

"""The gateway's events, routes and limits, on a twin whose router records every event."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import re
import time
from pathlib import Path

import boto3
import pytest
import websockets

from offline.cloud import DEFAULT_REGION as REGION
from offline.cloud import OfflineCloud
from offline.events import Api
from offline.gateway import GatewayConfig, GatewayLimits, WebSocketGateway
from tests.offline.twin_helpers import REPO, SAMPLE, connect, receive
from tests.twin_assembly import TWIN_STAGE


def every_handler(handler: str):
    """Run each function of the stage as `handler` (test code, so the repo is on its path)."""

    def rewrite(spec):
        return dataclasses.replace(spec, handler=handler, code_paths=(str(REPO), *spec.code_paths))

    return rewrite


ID = re.compile(r"^[A-Za-z0-9]{15}=$")


@pytest.fixture(scope="module")
def recording(tmp_path_factory, assemblies):
    record_dir = tmp_path_factory.mktemp("events")
    twin = OfflineCloud(
        # A stage that requires a token has the REQUEST authorizer, whose event is recorded too.
        assembly=assemblies.get({"requireToken": True}),
        stage=TWIN_STAGE,
        rewrite_function=every_handler(f"{SAMPLE}.record"),
        limits=GatewayLimits(idle_timeout_seconds=1.5, max_connection_seconds=4),
        environment={"RECORD_DIR": str(record_dir)},
    )
    twin.start()
    yield twin, record_dir
    twin.stop()


def recorded(record_dir: Path, kind: str, connection_id: str, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in sorted(record_dir.glob(f"*-{kind}-{connection_id}.json")):
            return json.loads(path.read_text())
        time.sleep(0.05)
    raise AssertionError(f"no {kind} event for {connection_id}")


def test_events_have_api_gateways_shape(recording):
    twin, record_dir = recording

    async def scenario():
        async with connect(twin, "?token=t1&a=1&a=2", user_agent_header="pytest-agent") as ws:
            await ws.send(json.dumps({"action": "chat", "prompt": "hi"}))
            message = await receive(ws, 10)
            await ws.send(b"\x00\xff")
            binary = await receive(ws, 10)
        return message, binary

    message, binary = asyncio.run(scenario())
    context = message["requestContext"]
    connection_id = context["connectionId"]
    assert ID.match(connection_id)
    assert context["eventType"] == "MESSAGE"
    assert context["routeKey"] == "$default"
    assert context["stage"] == "dev"
    assert context["messageDirection"] == "IN"
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert ID.match(context["messageId"]) and ID.match(context["requestId"])
    assert context["extendedRequestId"] == context["requestId"]
    assert context["domainName"] == f"127.0.0.1:{twin.port}"
    assert context["apiId"] and isinstance(context["connectedAt"], int)
    assert isinstance(context["requestTimeEpoch"], int)
    assert context["authorizer"]["principalId"] == "tester"
    assert context["authorizer"]["plan"] == "free"
    assert message["body"] == json.dumps({"action": "chat", "prompt": "hi"})
    assert message["isBase64Encoded"] is False
    assert binary["isBase64Encoded"] is True
    assert base64.b64decode(binary["body"]) == b"\x00\xff"

    authorizer = recorded(record_dir, "REQUEST", connection_id)
    assert authorizer["type"] == "REQUEST"
    assert authorizer["methodArn"].endswith("/dev/$connect")
    assert authorizer["queryStringParameters"] == {"token": "t1", "a": "2"}
    assert authorizer["multiValueQueryStringParameters"]["a"] == ["1", "2"]

    connect_event = recorded(record_dir, "CONNECT", connection_id)
    assert connect_event["requestContext"]["routeKey"] == "$connect"
    assert connect_event["headers"]["User-Agent"] == "pytest-agent"
    assert connect_event["headers"]["Origin"] == twin.http_url.rstrip("/")
    assert connect_event["multiValueHeaders"]["Host"] == [f"127.0.0.1:{twin.port}"]
    assert connect_event["queryStringParameters"]["token"] == "t1"
    assert connect_event["requestContext"]["authorizer"]["quota"] == 3

    disconnect = recorded(record_dir, "DISCONNECT", connection_id)
    assert disconnect["requestContext"]["routeKey"] == "$disconnect"
    assert disconnect["requestContext"]["disconnectStatusCode"] == 1000


def test_a_deny_refuses_with_403_and_connect_status_is_passed_on(recording):
    twin, _ = recording

    async def status_of(query):
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with connect(twin, query):
                pass
        return refused.value.response.status_code

    assert asyncio.run(status_of("?token=t&deny=1")) == 403
    assert asyncio.run(status_of("?token=t&status=401")) == 401
    # No token at all: API Gateway answers 401 before any authorizer runs.
    assert asyncio.run(status_of("")) == 401


def test_idle_and_maximum_duration_close_with_1001(recording):
    """Each close is told apart by the reason the gateway gives `$disconnect`, not by
    timing it: a silent client idles out; one active throughout reaches the maximum."""
    twin, record_dir = recording

    async def idle():
        async with connect(twin, "?token=t") as ws:
            await ws.send(json.dumps({"action": "ping"}))
            connection_id = (await receive(ws, 10))["requestContext"]["connectionId"]
            with pytest.raises(websockets.ConnectionClosed):
                await receive(ws, 30)
            return ws.close_code, connection_id

    async def busy_but_too_long():
        exchanged = 0
        async with connect(twin, "?token=t") as ws:
            with pytest.raises(websockets.ConnectionClosed):
                while True:  # active: a message every 0.5 s keeps it from idling out
                    await ws.send(json.dumps({"action": "ping"}))
                    event = await receive(ws, 30)
                    exchanged += 1
                    await asyncio.sleep(0.5)
            return ws.close_code, event["requestContext"]["connectionId"], exchanged

    def reason(connection_id):
        disconnect = recorded(record_dir, "DISCONNECT", connection_id)
        assert disconnect["requestContext"]["disconnectStatusCode"] == 1001
        return disconnect["requestContext"]["disconnectReason"]

    code, connection_id = asyncio.run(idle())
    assert code == 1001
    assert reason(connection_id) == "Going away (idle timeout)"
    code, connection_id, exchanged = asyncio.run(busy_but_too_long())
    assert code == 1001
    assert exchanged >= 2
    assert reason(connection_id) == "Going away (maximum connection duration)"


def test_connections_api_get_delete_and_gone(cloud):
    client = boto3.client(
        "apigatewaymanagementapi", endpoint_url=cloud.connections_url, region_name=REGION
    )

    async def scenario():
        async with connect(cloud, user_agent_header="probe") as ws:
            connection_id = cloud.connections.ids()[-1]
            info = await asyncio.to_thread(client.get_connection, ConnectionId=connection_id)
            await asyncio.to_thread(
                client.post_to_connection, ConnectionId=connection_id, Data=b'{"hi": 1}'
            )
            posted = await receive(ws)
            await asyncio.to_thread(client.delete_connection, ConnectionId=connection_id)
            with pytest.raises(websockets.ConnectionClosed):
                await receive(ws, 5)
            return connection_id, info, posted

    connection_id, info, posted = asyncio.run(scenario())
    assert info["Identity"]["SourceIp"] == "127.0.0.1"
    assert info["Identity"]["UserAgent"] == "probe"
    assert posted == {"hi": 1}
    with pytest.raises(client.exceptions.GoneException):
        client.get_connection(ConnectionId=connection_id)
    with pytest.raises(client.exceptions.GoneException):
        client.post_to_connection(ConnectionId=connection_id, Data=b"x")


def test_route_selection_uses_the_action_and_falls_back_to_default():
    api = Api(api_id="a", stage="dev", region=REGION, account_id="123456789012")
    gateway = WebSocketGateway(
        GatewayConfig(api=api, routes={"$default": "d", "chat": "c", "$connect": "x"}),
        invoke=None,  # type: ignore[arg-type]
        registry=None,  # type: ignore[arg-type]
    )
    assert gateway._select_route('{"action": "chat"}') == "chat"
    assert gateway._select_route('{"action": "ping"}') == "$default"
    assert gateway._select_route('{"action": "$connect"}') == "$default"
    assert gateway._select_route('{"action": 3}') == "$default"
    assert gateway._select_route("not json") == "$default"
    assert gateway._select_route(b'{"action": "chat"}') == "$default"


def test_stage_throttling_refuses_beyond_the_burst(assemblies):
    # The stage's throttling comes from the template's DefaultRouteSettings.
    twin = OfflineCloud(
        assembly=assemblies.get({"throttleRateLimit": 0.5, "throttleBurstLimit": 2}),
        stage=TWIN_STAGE,
        rewrite_function=every_handler(f"{SAMPLE}.echo"),
    )
    with twin:

        async def scenario():
            statuses = []
            for _ in range(3):
                try:
                    async with connect(twin):
                        statuses.append(101)
                except websockets.InvalidStatus as refused:
                    statuses.append(refused.response.status_code)
            return statuses

        assert asyncio.run(scenario()) == [101, 101, 429]


def test_the_web_client_and_its_config_are_served(cloud):
    import urllib.request

    with urllib.request.urlopen(cloud.http_url + "config.json") as response:
        config = json.loads(response.read())
    # The twin's own address, and the Dev stage's limits (as the deployed site gets them).
    assert config.pop("websocketUrl") == cloud.ws_url
    model = config.pop("model", "stage model")
    assert isinstance(model, str) and model
    assert config == {
        "maxPromptChars": 8000,
        "maxTokensCap": 512,
        "defaultMaxTokens": 256,
        "maxTemperature": 2,
    }

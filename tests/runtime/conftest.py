"""Real local servers for the runtime tests: @connections, moto (DynamoDB, Secrets
Manager) and a recording Lambda Invoke endpoint, each on a free loopback port."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import boto3
import pytest
from aiohttp import web

from offline.connections_api import ConnectionRegistry, ConnectionsFaults, add_connections_routes
from offline.serving import Server

STAGE = "dev"


class AppServer:
    """An aiohttp application on a free port, served from its own thread and loop."""

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._server = Server("127.0.0.1")

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._server.loop

    @property
    def port(self) -> int:
        return self._server.port

    async def _setup(self, _: web.Application) -> None:
        await self._server.serve_app(self._app, 0, main=True)

    def start(self) -> AppServer:
        self._server.start(self._setup, timeout=10)
        return self

    def stop(self) -> None:
        self._server.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class RecordingPeer:
    """A connected client as the gateway holds it: records what the server sends."""

    def __init__(self, connection_id: str, registry: ConnectionRegistry | None = None) -> None:
        self.connection_id = connection_id
        self.source_ip = "127.0.0.1"
        self.user_agent = "pytest"
        self.connected_at = time.time()
        self.last_active_at = self.connected_at
        self.closed = False
        self.texts: list[str] = []
        self._registry = registry
        self._cond = threading.Condition()
        # Called (on the server's loop) with each message; may close the peer.
        self.on_message: Callable[[dict], None] | None = None

    async def send_text(self, text: str) -> None:
        if self.closed:
            raise ConnectionResetError("closed")
        with self._cond:
            self.texts.append(text)
            self._cond.notify_all()
        if self.on_message is not None:
            self.on_message(json.loads(text))

    async def close(self) -> None:
        self.vanish()

    def vanish(self) -> None:
        """The client goes away: later posts to it answer 410."""
        self.closed = True
        if self._registry is not None:
            self._registry.remove(self.connection_id)

    @property
    def messages(self) -> list[dict]:
        with self._cond:
            return [json.loads(t) for t in self.texts]

    def wait_for(self, predicate: Callable[[list[dict]], bool], timeout: float = 30) -> list[dict]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                msgs = [json.loads(t) for t in self.texts]
                if predicate(msgs):
                    return msgs
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out; got {msgs}")
                self._cond.wait(left)

    def wait_type(self, type_: str, timeout: float = 30) -> list[dict]:
        return self.wait_for(lambda ms: any(m["type"] == type_ for m in ms), timeout)


@dataclass
class ConnectionsServer:
    server: AppServer
    registry: ConnectionRegistry
    faults: ConnectionsFaults

    @property
    def endpoint(self) -> str:
        return f"{self.server.url}/{STAGE}"

    def connect(self, connection_id: str) -> RecordingPeer:
        peer = RecordingPeer(connection_id, self.registry)
        self.registry.add(peer)
        return peer

    def client(self):
        return boto3.client(
            "apigatewaymanagementapi", endpoint_url=self.endpoint, region_name="us-east-1"
        )


@pytest.fixture(scope="session")
def connections_server() -> Iterator[ConnectionsServer]:
    registry = ConnectionRegistry()
    faults = ConnectionsFaults()
    app = web.Application(client_max_size=4 * 1024 * 1024)
    add_connections_routes(app, registry, stage=STAGE, faults=faults)
    server = AppServer(app).start()
    yield ConnectionsServer(server, registry, faults)
    server.stop()


@pytest.fixture
def connections(connections_server: ConnectionsServer) -> Iterator[ConnectionsServer]:
    """The session's @connections server, with faults reset around each test."""
    connections_server.faults.latency_ms = 0
    connections_server.faults.fail_next = 0
    yield connections_server
    connections_server.faults.latency_ms = 0
    connections_server.faults.fail_next = 0


# moto (DynamoDB, Secrets Manager) ----------------------------------------------------


@dataclass
class Moto:
    url: str

    def client(self, service: str):
        return boto3.client(service, endpoint_url=self.url, region_name="us-east-1")


@pytest.fixture(scope="session")
def moto_server() -> Iterator[Moto]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield Moto(f"http://{host}:{port}")
    server.stop()


TABLE = "connections"


@pytest.fixture(scope="session")
def table(moto_server: Moto) -> str:
    moto_server.client("dynamodb").create_table(
        TableName=TABLE,
        AttributeDefinitions=[{"AttributeName": "connectionId", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "connectionId", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return TABLE


@pytest.fixture
def store(moto_server: Moto, table: str):
    from llambda.connections import ConnectionStore

    return ConnectionStore(moto_server.client("dynamodb"), table)


def new_id() -> str:
    import uuid

    return uuid.uuid4().hex[:12] + "="


# A recording Lambda Invoke endpoint ---------------------------------------------------


@dataclass
class InvokeRecorder:
    server: AppServer
    calls: list[dict] = field(default_factory=list)
    fail_next: int = 0

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="session")
def invoke_server() -> Iterator[InvokeRecorder]:
    app = web.Application()
    recorder: InvokeRecorder | None = None

    async def invoke(request: web.Request) -> web.Response:
        assert recorder is not None
        if recorder.fail_next > 0:
            recorder.fail_next -= 1
            return web.json_response(
                {"message": "Rate exceeded"},
                status=429,
                headers={"x-amzn-ErrorType": "TooManyRequestsException"},
            )
        recorder.calls.append(
            {
                "function": request.match_info["name"],
                "invocation_type": request.headers.get("X-Amz-Invocation-Type"),
                "payload": json.loads(await request.read()),
            }
        )
        return web.Response(status=202)

    app.router.add_post("/2015-03-31/functions/{name}/invocations", invoke)
    server = AppServer(app).start()
    recorder = InvokeRecorder(server)
    yield recorder
    server.stop()


@pytest.fixture
def invokes(invoke_server: InvokeRecorder) -> Iterator[InvokeRecorder]:
    invoke_server.calls.clear()
    invoke_server.fail_next = 0
    yield invoke_server
    invoke_server.fail_next = 0


# The handlers' environment, as the stack (and offline/) give it ----------------------


@pytest.fixture
def lambda_env(monkeypatch, moto_server, table, connections, invokes):
    """Every variable a handler reads, pointing at the local servers; caches cleared."""
    from infra.config import DEV
    from llambda.handlers import aws

    env = {
        **DEV.router_environment(table_name=table, inference_function="inference:live"),
        **DEV.inference_environment(table_name=table, access_key_secret_arn=None),
        "ALLOWED_ORIGINS": "",
        "AWS_ENDPOINT_URL_DYNAMODB": moto_server.url,
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": moto_server.url,
        "AWS_ENDPOINT_URL_LAMBDA": invokes.url,
        "AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI": connections.endpoint,
        "LLAMA_THREADS": "1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    def clear():
        for cached in (aws.settings, aws.dynamodb, aws.lambda_client, aws.secretsmanager):
            cached.cache_clear()
        aws._management_api.cache_clear()

    clear()
    yield env
    clear()


# The real tiny model, loaded once ----------------------------------------------------


@pytest.fixture(scope="session")
def llama_engine():
    from llambda.engines.llamacpp_engine import LlamaCppEngine
    from offline.default_model import default_model_path

    # One thread: on a shared 2-core runner, llama.cpp's spinning threads slow each other.
    return LlamaCppEngine.load(str(default_model_path()), n_threads=1)


@dataclass
class Context:
    """The bits of a Lambda context object Powertools reads."""

    function_name: str = "test"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test"
    aws_request_id: str = "req-1"


@pytest.fixture
def context() -> Context:
    return Context()

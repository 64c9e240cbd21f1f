"""Real local servers for the runtime tests, from the twin's parts: @connections, moto
(DynamoDB, Secrets Manager) with the stack's own table, and Lambda's Invoke API with a
function that records its events, each on a free loopback port."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import boto3
import pytest
from aiohttp import web

from offline import blueprint
from offline.cloud import ACCOUNT_ID
from offline.connections_api import ConnectionRegistry, ConnectionsFaults, add_connections_routes
from offline.invoke_api import FunctionRegistry, add_invoke_routes
from offline.lambda_function import FunctionSpec, LambdaFaults
from offline.lambda_worker import LambdaContext
from offline.moto_process import MotoProcess
from offline.serving import Server
from offline.template import Resolver, StageAssembly
from tests.twin_assembly import TWIN_STAGE

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


# moto (DynamoDB, Secrets Manager) and the stack's own table --------------------------


@dataclass
class Moto:
    url: str

    def client(self, service: str):
        return boto3.client(service, endpoint_url=self.url, region_name="us-east-1")


@pytest.fixture(scope="session")
def moto_server() -> Iterator[Moto]:
    server = MotoProcess()
    server.start()
    yield Moto(server.url)
    server.stop()


@pytest.fixture(scope="session")
def table(moto_server: Moto, assemblies) -> str:
    """The stack's table as the synthesized stage declares it (key schema, TTL)."""
    assembly = StageAssembly.load(assemblies.get(), TWIN_STAGE)
    resolver = Resolver(assembly, region="us-east-1", account_id=ACCOUNT_ID)
    tables, _ = blueprint.data_plans(assembly, resolver)
    [plan] = tables
    moto_server.client("dynamodb").create_table(**plan.create_table)
    return plan.create_table["TableName"]


@pytest.fixture
def conversations(moto_server: Moto, table: str):
    from llambda.conversations import ConversationStore

    return ConversationStore(moto_server.client("dynamodb"), table)


def new_id() -> str:
    import uuid

    return uuid.uuid4().hex[:12] + "="


# Lambda's Invoke API (the twin's), with a function that records its events -----------


class RecordedFunction:
    """Registered in the twin's Invoke API in place of a real function: routing by name,
    alias or ARN, payload limits and injected throttles are the twin's; the asynchronous
    events it is sent are kept in `calls` instead of run."""

    def __init__(self, name: str, alias: str) -> None:
        self.spec = FunctionSpec(
            name=name, handler="-", environment={}, timeout_seconds=1, aliases={alias: 0}
        )
        self.arn = f"arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:{name}"
        self.calls: list[dict] = []

    def submit_event(
        self, payload: bytes, *, invoked_arn: str | None = None, expire: bool = False
    ) -> str:
        self.calls.append({"invoked_arn": invoked_arn, "payload": json.loads(payload)})
        return uuid.uuid4().hex


INFERENCE_NAME, INFERENCE_ALIAS = "inference", "live"


@dataclass
class InvokeRecorder:
    server: AppServer
    function: RecordedFunction
    faults: LambdaFaults

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def calls(self) -> list[dict]:
        return self.function.calls


@pytest.fixture(scope="session")
def invoke_server() -> Iterator[InvokeRecorder]:
    registry = FunctionRegistry(region="us-east-1", account_id=ACCOUNT_ID)
    function = RecordedFunction(INFERENCE_NAME, INFERENCE_ALIAS)
    registry.add(function)  # type: ignore[arg-type]
    faults = LambdaFaults()
    app = web.Application()
    add_invoke_routes(app, registry, faults=faults)
    server = AppServer(app).start()
    yield InvokeRecorder(server, function, faults)
    server.stop()


@pytest.fixture
def invokes(invoke_server: InvokeRecorder) -> Iterator[InvokeRecorder]:
    invoke_server.calls.clear()
    invoke_server.faults.throttle_next = 0
    yield invoke_server
    invoke_server.faults.throttle_next = 0


# The handlers' environment, as the stack (and offline/) give it ----------------------


def reset_handlers() -> None:
    """Each handler builds its dependencies once per instance from the environment; a test
    that changes the environment has them built again (as a new instance would)."""
    from llambda.handlers import authorizer, dispatch_failure, inference, router

    for module in (authorizer, dispatch_failure, inference, router):
        module.DEPS.reset()


@pytest.fixture
def lambda_env(monkeypatch, moto_server, table, connections, invokes):
    """Every variable the handlers read, pointing at the local servers."""
    from infra.config import DEV

    env = {
        **DEV.router_environment(
            table_name=table, inference_function=f"{INFERENCE_NAME}:{INFERENCE_ALIAS}"
        ),
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
    reset_handlers()
    yield env
    reset_handlers()


# The real tiny model, loaded once ----------------------------------------------------


@pytest.fixture(scope="session")
def llama_engine():
    from llambda.engines.llamacpp_engine import LlamaCppEngine
    from offline.default_model import default_model_path

    # One thread: on a shared 2-core runner, llama.cpp's spinning threads slow each other.
    return LlamaCppEngine.load(str(default_model_path()), n_threads=1)


@pytest.fixture
def context() -> LambdaContext:
    """The context object the twin's workers give a handler."""
    return LambdaContext(
        request_id="req-1",
        deadline_ms=int(time.time() * 1000) + 60_000,
        function_arn=f"arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:test",
    )


# What Powertools emits: CloudWatch embedded metric format (EMF) records on stdout ------


def emitted_metrics(output: str) -> list[tuple[str, dict[str, str]]]:
    """Each metric in the EMF records of `output`: its name and the record's dimensions."""
    found: list[tuple[str, dict[str, str]]] = []
    for line in output.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict) or "_aws" not in record:
            continue
        for directive in record["_aws"]["CloudWatchMetrics"]:
            dimensions = {d: record[d] for group in directive["Dimensions"] for d in group}
            found.extend((metric["Name"], dimensions) for metric in directive["Metrics"])
    return found


def counted_error_codes(output: str) -> list[str]:
    """The `code` of each `Errors` metric in `output`."""
    from llambda import contract

    return [
        dims["code"] for name, dims in emitted_metrics(output) if name == contract.METRIC_ERRORS
    ]

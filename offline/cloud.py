"""`OfflineCloud`: the whole local twin in one object, used by `make dev` and by tests.

One aiohttp server on one port serves the web client (`/`, `/config.json`), the
WebSocket API (`/dev`), its `@connections` API (`/dev/@connections/{id}`) and Lambda's
Invoke API (`/2015-03-31/functions/...`). Behind it: moto's server (DynamoDB, Secrets
Manager) in its own process, reached through a fault-injecting proxy, and a pool of
worker processes per function running the real handlers with the environment the stack
gives them (`infra.config`), pointed at these local endpoints.

    cloud = OfflineCloud(port=0)
    cloud.start()
    ... cloud.ws_url, cloud.http_url, cloud.faults ...
    cloud.stop()
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import secrets
import threading
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import boto3
from aiohttp import web

from infra.config import DEV, StageConfig
from offline import events
from offline.connections_api import ConnectionRegistry, ConnectionsFaults, add_connections_routes
from offline.default_model import default_model_path
from offline.fault_proxy import AwsFaults, create_proxy_app
from offline.gateway import GatewayConfig, GatewayLimits, WebSocketGateway
from offline.invoke_api import FunctionRegistry, add_invoke_routes
from offline.lambda_pool import (
    REPO_ROOT,
    FunctionPool,
    FunctionSpec,
    InvokeResult,
    LambdaFaults,
    Throttled,
)
from offline.moto_process import MotoProcess
from offline.static_site import add_static_routes

log = logging.getLogger("offline")

T = TypeVar("T")

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
API_ID = "offline01"
TABLE_NAME = "llambda-connections"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


@dataclass(frozen=True, kw_only=True)
class Handlers:
    """The entry point of each function (tests may swap in their own)."""

    router: str = "llambda.handlers.router.handler"
    inference: str = "llambda.handlers.inference.handler"
    authorizer: str = "llambda.handlers.authorizer.handler"
    dispatch_failure: str = "llambda.handlers.dispatch_failure.handler"


@dataclass(frozen=True, kw_only=True)
class FunctionNames:
    router: str = "llambda-router"
    inference: str = "llambda-inference"
    authorizer: str = "llambda-authorizer"
    dispatch_failure: str = "llambda-dispatch-failure"
    inference_alias: str = "live"


@dataclass
class Faults:
    """Every fault knob of the twin, mutable while it runs."""

    connections: ConnectionsFaults = field(default_factory=ConnectionsFaults)
    aws: AwsFaults = field(default_factory=AwsFaults)
    invoke: LambdaFaults = field(default_factory=LambdaFaults)

    def reset(self, *, post_latency_ms: float = 0) -> None:
        self.connections.latency_ms = post_latency_ms
        self.connections.fail_next = 0
        self.aws.reset()
        self.invoke.throttle_next = 0
        self.invoke.expire_next = 0


class OfflineCloud:
    """The local twin of API Gateway (WebSocket + @connections), Lambda and DynamoDB."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        config: StageConfig = DEV,
        engine: str = "llamacpp",
        model_path: str | Path | None = None,
        access_key: str | None = None,
        post_latency_ms: float = 0,
        token: str | None = None,
        authorizer: bool | None = None,
        handlers: Handlers | None = None,
        limits: GatewayLimits | None = None,
        web_root: Path | None = None,
        llama_threads: int = 1,
        router_instances: int = 4,
        extra_functions: Sequence[FunctionSpec] = (),
        environment: Mapping[str, str] | None = None,
    ) -> None:
        self.host = host
        self._requested_port = port
        self.port = 0
        self.config = config
        self.engine = engine
        self.model_path = str(model_path) if model_path else None
        self.access_key = access_key
        self.token = token or secrets.token_urlsafe(24)
        # Like the stack: the $connect authorizer exists where the stage requires a token.
        self.use_authorizer = config.require_token if authorizer is None else authorizer
        self.handlers = handlers or Handlers()
        self.names = FunctionNames()
        self.limits = limits or GatewayLimits(
            throttle_rate=config.throttle_rate_limit, throttle_burst=config.throttle_burst_limit
        )
        self.web_root = web_root or REPO_ROOT / "web_client"
        self.llama_threads = llama_threads
        self.router_instances = router_instances
        self.extra_functions = tuple(extra_functions)
        # Added to every function's environment (e.g. LLAMA_N_CTX, or test settings)
        self.environment = dict(environment or {})
        self.stage_path = config.stage_name.lower()
        self.faults = Faults(connections=ConnectionsFaults(latency_ms=post_latency_ms))
        self.connections = ConnectionRegistry()
        self.functions = FunctionRegistry(region=REGION, account_id=ACCOUNT_ID)
        self.token_secret_arn = ""
        self.access_key_secret_arn: str | None = None
        self._moto = MotoProcess(host)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._runners: list[web.AppRunner] = []
        self._gateway: WebSocketGateway | None = None
        self._sweeper: asyncio.Task | None = None
        self.proxy_url = ""

    # -- addresses --------------------------------------------------------------------
    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/{self.stage_path}"

    @property
    def connections_url(self) -> str:
        """The `@connections` endpoint, as boto3's `endpoint_url`."""
        return f"http://{self.host}:{self.port}/{self.stage_path}"

    @property
    def moto_url(self) -> str:
        """moto's server directly (no faults): for inspecting state in tests."""
        return self._moto.url

    @property
    def inference_arn(self) -> str:
        return (
            f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:"
            f"{self.names.inference}:{self.names.inference_alias}"
        )

    def table(self) -> Any:
        """The connection table (boto3 resource, straight to moto, no injected faults)."""
        return boto3.resource(
            "dynamodb", endpoint_url=self.moto_url, region_name=REGION, **_boto_credentials()
        ).Table(TABLE_NAME)

    def pool(self, name: str) -> FunctionPool:
        return self.functions.get(name)

    # -- lifecycle --------------------------------------------------------------------
    def start(self, timeout: float = 60) -> OfflineCloud:
        self._moto.start()
        try:
            self._create_resources()
            self._thread = threading.Thread(target=self._run, daemon=True, name="offline")
            self._thread.start()
            if not self._ready.wait(timeout):
                raise RuntimeError("the offline twin did not start in time")
            if self._start_error is not None:
                raise RuntimeError("the offline twin failed to start") from self._start_error
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop everything: connections, workers, servers, moto. Safe to call twice."""
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive() and loop.is_running():
            future = asyncio.run_coroutine_threadsafe(self._astop(), loop)
            try:
                future.result(30)
            except Exception:
                log.exception("error while stopping the twin")
            loop.call_soon_threadsafe(loop.stop)
            thread.join(30)
        self._loop = self._thread = None
        self._moto.stop()

    def __enter__(self) -> OfflineCloud:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def run(self, coro: Awaitable[T], timeout: float = 60) -> T:
        """Run a coroutine on the twin's loop from another thread (tests)."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)  # type: ignore[arg-type]

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._astart())
        except BaseException as exc:
            self._start_error = exc
            loop.run_until_complete(self._astop())
            loop.close()
            self._ready.set()
            return
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    async def _astart(self) -> None:
        # The fault proxy in front of moto, on its own free port
        proxy = web.AppRunner(create_proxy_app(self.moto_url, self.faults.aws), access_log=None)
        await proxy.setup()
        self._runners.append(proxy)
        proxy_site = web.TCPSite(proxy, self.host, 0)
        await proxy_site.start()
        self.proxy_url = f"http://{self.host}:{_bound_port(proxy_site)}"

        app = web.Application(client_max_size=8 * 1024 * 1024)
        api = events.Api(api_id=API_ID, stage=self.stage_path, region=REGION, account_id=ACCOUNT_ID)
        routes = {
            "$connect": self.names.router,
            "$disconnect": self.names.router,
            "$default": self.names.router,
        }
        self._gateway = WebSocketGateway(
            GatewayConfig(
                api=api,
                routes=routes,
                authorizer=self.names.authorizer if self.use_authorizer else None,
                limits=self.limits,
            ),
            invoke=self._invoke_json,
            registry=self.connections,
        )
        add_connections_routes(
            app, self.connections, stage=self.stage_path, faults=self.faults.connections
        )
        add_invoke_routes(app, self.functions, faults=self.faults.invoke)
        self._gateway.add_routes(app)
        add_static_routes(app, self.web_root, site_config=lambda: {"websocketUrl": self.ws_url})
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2)
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(runner, self.host, self._requested_port)
        await site.start()
        self.port = _bound_port(site)

        for spec in self._function_specs():
            self.functions.add(
                FunctionPool(
                    spec, region=REGION, account_id=ACCOUNT_ID, on_failure=self._on_failure
                )
            )
        self._sweeper = asyncio.ensure_future(self._sweep())

    async def _astop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._gateway is not None:
            await self._gateway.close_all()
            await self._gateway.drain()
        await asyncio.gather(
            *(pool.close() for pool in self.functions.pools()), return_exceptions=True
        )
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            for pool in self.functions.pools():
                pool.expire_old_events()

    # -- functions ----------------------------------------------------------------------
    async def _invoke_json(self, name: str, event: dict[str, Any]) -> InvokeResult:
        """API Gateway's synchronous call of an integration or authorizer."""
        try:
            return await self.functions.get(name).invoke(json.dumps(event).encode())
        except Throttled:
            error = {"errorMessage": "Rate Exceeded.", "errorType": "TooManyRequestsException"}
            return InvokeResult(json.dumps(error).encode(), "Unhandled")

    async def _on_failure(self, spec: FunctionSpec, record: dict[str, Any]) -> None:
        """Lambda's on-failure destination: an asynchronous invoke with the record."""
        assert spec.on_failure is not None
        condition = record["requestContext"]["condition"]
        log.warning("%s: event failed (%s); sent to %s", spec.name, condition, spec.on_failure)
        self.functions.get(spec.on_failure).submit_event(json.dumps(record).encode())

    def _local_environment(self) -> dict[str, str]:
        return {
            **FAKE_CREDENTIALS,
            "AWS_ENDPOINT_URL_DYNAMODB": self.proxy_url,
            # The SDK derives the name from the service id "Secrets Manager".
            "AWS_ENDPOINT_URL_SECRETS_MANAGER": self.proxy_url,
            "AWS_ENDPOINT_URL_LAMBDA": f"http://{self.host}:{self.port}",
            "AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI": self.connections_url,
            **self.environment,
        }

    def stage_config(self) -> StageConfig:
        """The stage config with this twin's own page origins allowed (any port)."""
        config = self.config
        if config.allowed_origins and self.port:
            own = (f"http://127.0.0.1:{self.port}", f"http://localhost:{self.port}")
            origins = tuple(dict.fromkeys((*config.allowed_origins, *own)))
            config = dataclasses.replace(config, allowed_origins=origins)
        return config

    def _function_specs(self) -> list[FunctionSpec]:
        config, names, local = self.stage_config(), self.names, self._local_environment()
        model = self.model_path or str(default_model_path())
        router_env = config.router_environment(
            table_name=TABLE_NAME, inference_function=self.inference_arn
        )
        inference_env = config.inference_environment(
            table_name=TABLE_NAME, access_key_secret_arn=self.access_key_secret_arn
        )
        inference_env.update(
            {"ENGINE": self.engine, "MODEL_PATH": model, "LLAMA_THREADS": str(self.llama_threads)}
        )
        failure_env = config.dispatch_failure_environment(table_name=TABLE_NAME)
        specs = [
            FunctionSpec(
                name=names.router,
                handler=self.handlers.router,
                environment={**router_env, **local},
                timeout_seconds=config.router_timeout_seconds,
                memory_mb=config.router_memory_mb,
                local_cap=self.router_instances,
            ),
            FunctionSpec(
                name=names.inference,
                handler=self.handlers.inference,
                environment={**inference_env, **local},
                timeout_seconds=config.inference_timeout_seconds,
                memory_mb=config.inference_memory_mb,
                reserved_concurrency=config.reserved_concurrency,
                aliases=(names.inference_alias,),
                max_event_age_seconds=config.dispatch_max_event_age_seconds,
                max_retry_attempts=0,
                on_failure=names.dispatch_failure,
            ),
            FunctionSpec(
                name=names.dispatch_failure,
                handler=self.handlers.dispatch_failure,
                environment={**failure_env, **local},
                timeout_seconds=config.router_timeout_seconds,
                memory_mb=config.router_memory_mb,
                local_cap=2,
            ),
        ]
        if self.use_authorizer:
            specs.append(
                FunctionSpec(
                    name=names.authorizer,
                    handler=self.handlers.authorizer,
                    environment={
                        **config.authorizer_environment(token_secret_arn=self.token_secret_arn),
                        **local,
                    },
                    timeout_seconds=config.router_timeout_seconds,
                    memory_mb=config.router_memory_mb,
                    local_cap=2,
                )
            )
        for spec in self.extra_functions:
            specs.append(dataclasses.replace(spec, environment={**local, **spec.environment}))
        return specs

    # -- AWS resources ------------------------------------------------------------------
    def _create_resources(self) -> None:
        """The connection table and the secrets, as the stack creates them."""
        session = boto3.Session(region_name=REGION, **_boto_credentials())
        dynamodb = session.client("dynamodb", endpoint_url=self.moto_url)
        dynamodb.create_table(
            TableName=TABLE_NAME,
            KeySchema=[{"AttributeName": "connectionId", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "connectionId", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        dynamodb.update_time_to_live(
            TableName=TABLE_NAME,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiresAt"},
        )
        secretsmanager = session.client("secretsmanager", endpoint_url=self.moto_url)
        stage = self.config.stage_name
        self.token_secret_arn = secretsmanager.create_secret(
            Name=f"llambda/{stage}/connect-token", SecretString=self.token
        )["ARN"]
        if self.access_key:
            self.access_key_secret_arn = secretsmanager.create_secret(
                Name=f"llambda/{stage}/picovoice-access-key", SecretString=self.access_key
            )["ARN"]


def _boto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "aws_session_token": FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
    }


def _bound_port(site: web.TCPSite) -> int:
    server = site._server
    assert server is not None and server.sockets
    return server.sockets[0].getsockname()[1]

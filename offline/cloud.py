"""`OfflineCloud`: the local twin of one synthesized stage, used by `make dev` and tests.

It reads the stage from `cdk.out` (`offline.blueprint`) and runs it on one aiohttp server
on one port: the stage's page (`/`), its WebSocket API (`/{stage}`), the `@connections`
API (`/{stage}/@connections/{id}`) and Lambda's Invoke API (`/2015-03-31/functions/...`).
Behind it: moto's server (DynamoDB, Secrets Manager) in its own process, reached through
a proxy that enforces each caller's IAM role and can inject faults, and per function a
pool of isolated worker processes running the code CDK staged for it.

    cloud = OfflineCloud(assembly=Path("cdk.out"), stage="Beta", port=0)
    cloud.start()
    ... cloud.ws_url, cloud.http_url, cloud.faults, cloud.function("Orders/Handler") ...
    cloud.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import boto3
from aiohttp import web

from offline import blueprint, events
from offline.access import AccessControl
from offline.connections_api import ConnectionRegistry, ConnectionsFaults, add_connections_routes
from offline.fault_proxy import AwsFaults, create_proxy_app
from offline.function_url import FunctionUrl
from offline.gateway import FrameHook, GatewayConfig, GatewayLimits, WebSocketGateway
from offline.iam import connections_target
from offline.image import build_image
from offline.invoke_api import FunctionRegistry, add_invoke_routes
from offline.lambda_function import (
    FunctionSpec,
    InvokeResult,
    LambdaFaults,
    LocalFunction,
    Throttled,
)
from offline.moto_process import MotoProcess
from offline.runtimes import Runtimes
from offline.serving import Server
from offline.static_site import add_static_routes
from offline.template import Resolver, StageAssembly
from offline.trace import Trace

log = logging.getLogger("offline")

T = TypeVar("T")

DEFAULT_REGION = "us-east-1"
FUNCTION = "AWS::Lambda::Function"
SECRET = "AWS::SecretsManager::Secret"
TABLE = "AWS::DynamoDB::Table"
PARAMETER = "AWS::SSM::Parameter"
ACCOUNT_ID = "123456789012"
# What the twin's own calls to moto sign with (moto accepts any credentials).
TWIN_CREDENTIALS = {
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
    "aws_session_token": "testing",
}
# Where laid-out images keep their expensive layers (pip installs) between runs.
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "offline-twin"


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
        self.invoke.latency_ms = 0


class OfflineCloud:
    """The local twin of a stage's API Gateway (WebSocket + @connections), Lambda and data."""

    def __init__(
        self,
        *,
        assembly: Path,
        stage: str,
        host: str = "127.0.0.1",
        port: int = 0,
        environment: Mapping[str, str] | None = None,
        secrets: Mapping[str, str] | None = None,
        limits: GatewayLimits | None = None,
        post_latency_ms: float = 0,
        enforce_iam: bool = True,
        local_cap: int = 4,
        extra_functions: Sequence[FunctionSpec] = (),
        rewrite_function: Callable[[FunctionSpec], FunctionSpec] | None = None,
        on_frame: FrameHook | None = None,
        trace: Trace | None = None,
        cache_dir: Path = CACHE_DIR,
    ) -> None:
        self.assembly_dir = Path(assembly)
        self.stage_id = stage
        self.host = host
        self._requested_port = port
        self.port = 0
        # Local knobs added to every function's environment (e.g. a thread count).
        self.environment = dict(environment or {})
        # Secret values to use instead of the template's (by construct path or logical id).
        self.secret_overrides = dict(secrets or {})
        self.limits = limits or GatewayLimits()
        self.local_cap = local_cap
        self.extra_functions = tuple(extra_functions)
        self.rewrite_function = rewrite_function
        # Told of every frame sent to a client (the console's reply log, tests).
        self.on_frame = on_frame or (lambda connection_id, text: None)
        # Timestamped spans of what the twin does (the bench's first-token waterfall).
        self.trace = trace
        self.cache_dir = cache_dir
        self.faults = Faults(connections=ConnectionsFaults(latency_ms=post_latency_ms))
        self.access = AccessControl(enforce=enforce_iam)
        self.connections = ConnectionRegistry()
        self.secrets: dict[str, str] = {}  # construct path -> value, as created
        self.tables: dict[str, str] = {}  # construct path -> table name
        self.parameters: dict[str, str] = {}  # construct path -> SSM parameter name
        self.not_emulated: list[blueprint.Skipped] = []
        self.functions: FunctionRegistry | None = None
        self.api: blueprint.ApiPlan | None = None
        # Function URLs: the template's address → this twin's (http://host:port/).
        self.function_urls: dict[str, str] = {}
        self._url_plans: list[blueprint.UrlPlan] = []
        self.url_servers: dict[str, FunctionUrl] = {}
        self._assembly: StageAssembly | None = None
        self._resolver: Resolver | None = None
        self._moto = MotoProcess(host)
        self._runtimes = Runtimes()
        self._layouts = Path(tempfile.mkdtemp(prefix="twin-images-"))
        self._server = Server(host)
        self._site: dict[str, bytes | Path] = {}  # filled once the twin's URLs are known
        self._gateway: WebSocketGateway | None = None
        self._sweeper: asyncio.Future | None = None
        self.proxy_url = ""

    # -- addresses --------------------------------------------------------------------
    @property
    def http_url(self) -> str:
        return self._server.url()

    @property
    def stage_path(self) -> str:
        assert self.api is not None, "start the twin first"
        return self.api.stage

    @property
    def ws_url(self) -> str:
        return self._server.url(self.stage_path, scheme="ws")

    @property
    def connections_url(self) -> str:
        """The `@connections` endpoint, as boto3's `endpoint_url`."""
        return self._server.url(self.stage_path)

    @property
    def moto_url(self) -> str:
        """moto's server directly (no IAM, no faults): for inspecting state in tests."""
        return self._moto.url

    @property
    def region(self) -> str:
        assembly = self._assembly
        return (assembly.region if assembly else None) or DEFAULT_REGION

    def resource(self, reference: str, *types: str) -> Any:
        """A template resource by logical id or construct path (see `StageAssembly.find`)."""
        assert self._assembly is not None, "start the twin first"
        return self._assembly.find(reference, *types)

    def function(self, reference: str) -> LocalFunction:
        """A running function by name, logical id or construct path (e.g. "Orders")."""
        assert self.functions is not None, "start the twin first"
        with contextlib.suppress(KeyError):
            return self.functions.get(reference)
        name = self._resolver.ref(self.resource(reference, FUNCTION))  # type: ignore[union-attr]
        return self.functions.get(name)

    def secret(self, reference: str) -> str:
        """A secret's value, by logical id or construct path (e.g. "Orders/ApiKey")."""
        return self.secrets[self.resource(reference, SECRET).construct_path]

    def parameter(self, reference: str) -> str:
        """An SSM parameter's name, by logical id or construct path (e.g. "Orders/Flag")."""
        return self.parameters[self.resource(reference, PARAMETER).construct_path]

    def ssm(self) -> Any:
        """An SSM client straight to moto (no IAM, no faults), as an operator's would be."""
        return boto3.client(
            "ssm", endpoint_url=self.moto_url, region_name=self.region, **TWIN_CREDENTIALS
        )

    def table(self, reference: str = "") -> Any:
        """A table (boto3 resource, straight to moto: no IAM, no faults), by logical id or
        construct path; the stage's only table by default."""
        paths = [self.resource(reference, TABLE).construct_path] if reference else list(self.tables)
        if len(paths) != 1:
            raise KeyError(f"the stage has {len(paths)} tables: name one")
        return boto3.resource(
            "dynamodb", endpoint_url=self.moto_url, region_name=self.region, **TWIN_CREDENTIALS
        ).Table(self.tables[paths[0]])

    # -- lifecycle --------------------------------------------------------------------
    def start(self, timeout: float = 600) -> OfflineCloud:
        try:
            self._moto.start()
            self._read_stage()
            self._server.start(self._astart, timeout=timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop everything: connections, workers, servers, moto. Safe to call twice."""
        self._server.stop(self._astop)
        self._moto.stop()
        self._runtimes.close()
        shutil.rmtree(self._layouts, ignore_errors=True)

    def __enter__(self) -> OfflineCloud:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def run(self, coro: Awaitable[T], timeout: float = 60) -> T:
        """Run a coroutine on the twin's loop from another thread (tests)."""
        return self._server.run(coro, timeout)

    # -- reading the stage ----------------------------------------------------------------
    def _read_stage(self) -> None:
        """Tables and secrets first: their physical ids resolve everything else."""
        assembly = StageAssembly.load(self.assembly_dir, self.stage_id)
        resolver = Resolver(
            assembly, region=assembly.region or DEFAULT_REGION, account_id=ACCOUNT_ID
        )
        self._assembly, self._resolver = assembly, resolver
        session = boto3.Session(region_name=self.region, **TWIN_CREDENTIALS)
        dynamodb = session.client("dynamodb", endpoint_url=self.moto_url)
        tables, secret_plans = blueprint.data_plans(assembly, resolver)
        for table in tables:
            dynamodb.create_table(**table.create_table)
            if table.ttl_attribute:
                dynamodb.update_time_to_live(
                    TableName=table.create_table["TableName"],
                    TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute},
                )
            self.tables[table.resource.construct_path] = table.create_table["TableName"]
        secretsmanager = session.client("secretsmanager", endpoint_url=self.moto_url)
        overrides = {
            assembly.find(reference, SECRET): value
            for reference, value in self.secret_overrides.items()
        }
        for plan in secret_plans:
            value = overrides.get(plan.resource) or plan.value
            arn = secretsmanager.create_secret(Name=plan.name, SecretString=value)["ARN"]
            resolver.set(plan.resource, ref=arn)
            self.secrets[plan.resource.construct_path] = value
        ssm = session.client("ssm", endpoint_url=self.moto_url)
        for parameter in blueprint.parameter_plans(assembly, resolver):
            ssm.put_parameter(Name=parameter.name, Value=parameter.value, Type=parameter.type)
            resolver.set(parameter.resource, ref=parameter.name)
            self.parameters[parameter.resource.construct_path] = parameter.name
        self.api = blueprint.api_plan(assembly, resolver)
        self._plans, skipped = blueprint.function_plans(assembly, resolver)
        self._url_plans = blueprint.url_plans(assembly, resolver)
        self.not_emulated = blueprint.not_emulated(assembly, skipped)
        for role_arn, documents in blueprint.role_policies(assembly, resolver).items():
            self.access.add_role(role_arn, documents)

    def localize(self, value: str) -> str:
        """The stage's public addresses, as this twin serves them (the twin's DNS)."""
        assert self.api is not None and self._assembly is not None and self._resolver
        suffix = "amazonaws.com"
        api_host = f"{self.api.api_id}.execute-api.{self.region}.{suffix}"
        value = re.sub(rf"wss://{re.escape(api_host)}", f"ws://{self.host}:{self.port}", value)
        value = re.sub(rf"https://{re.escape(api_host)}", f"http://{self.host}:{self.port}", value)
        for url, local in self.function_urls.items():
            value = value.replace(url, local)
        for dist in self._assembly.resources("AWS::CloudFront::Distribution"):
            domain = self._resolver.get_att(dist, "DomainName")
            value = value.replace(f"https://{domain}", f"http://{self.host}:{self.port}")
        return value

    # -- serving ------------------------------------------------------------------------
    async def _astart(self, app: web.Application) -> None:
        assert self.api is not None and self._assembly is not None and self._resolver
        api = self.api
        proxy_port = await self._server.serve_app(
            create_proxy_app(
                self.moto_url,
                self.faults.aws,
                access=self.access,
                region=self.region,
                account_id=ACCOUNT_ID,
                secret_arn=self._secret_arn,
                trace=self.trace,
            )
        )
        self.proxy_url = f"http://{self.host}:{proxy_port}"
        self.functions = FunctionRegistry(region=self.region, account_id=ACCOUNT_ID)
        names = {plan.arn: plan.name for plan in self._plans}
        routes = {route.route_key: names[route.function_arn] for route in api.routes}
        authorizer = api.authorizer
        # The stage's throttling joins the limits; the gateway reads this object at each
        # check, so a test may shrink the idle or age limit of a running twin.
        self.limits = dataclasses.replace(
            self.limits, throttle_rate=api.throttle_rate, throttle_burst=api.throttle_burst
        )
        self._gateway = WebSocketGateway(
            GatewayConfig(
                api=events.Api(
                    api_id=api.api_id, stage=api.stage, region=self.region, account_id=ACCOUNT_ID
                ),
                routes=routes,
                route_selection_expression=api.route_selection_expression,
                authorizer=names[authorizer.function_arn] if authorizer else None,
                identity_sources=authorizer.identity_sources if authorizer else (),
                limits=self.limits,
            ),
            invoke=self._invoke_json,
            registry=self.connections,
            on_frame=self.on_frame,
            trace=self.trace,
        )
        add_connections_routes(
            app,
            self.connections,
            stage=api.stage,
            faults=self.faults.connections,
            authorize=self._authorize_connections,
            trace=self.trace,
        )
        add_invoke_routes(
            app, self.functions, faults=self.faults.invoke, access=self.access, trace=self.trace
        )
        self._gateway.add_routes(app)
        add_static_routes(app, self._site)
        port = await self._server.serve_app(app, self._requested_port, main=True)
        self.port = port
        self._site.update(blueprint.site_files(self._assembly, self._resolver, self.localize))
        for spec in self._function_specs():
            function = LocalFunction(
                spec,
                region=self.region,
                account_id=ACCOUNT_ID,
                cwd=Path(spec.code_paths[0]) if spec.code_paths else Path.cwd(),
                credentials=self.access.credentials_for(spec.name, spec.role_arn),
                destination=self._deliver_failure,
                trace=self.trace,
            )
            self.functions.add(function)
        await asyncio.gather(*(f.start() for f in self.functions.all()))
        for index, plan in enumerate(self._url_plans):
            target = self.functions.resolve(plan.function_arn)
            if target is None:
                raise blueprint.BlueprintError(f"{plan.resource.logical_id}: no such function")
            served = FunctionUrl(plan, target, account_id=ACCOUNT_ID)
            # Each URL has an address of its own: the ports after a fixed main port (so a
            # tool's configuration keeps working across restarts), else free ones.
            url_port = await self._server.serve_app(
                served.app(), self._requested_port + 1 + index if self._requested_port else 0
            )
            self.function_urls[plan.url] = f"http://{self.host}:{url_port}/"
            self.url_servers[plan.url] = served
        self._sweeper = asyncio.ensure_future(self._sweep())

    async def _astop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._gateway is not None:
            await self._gateway.close_all()
            await self._gateway.drain()
        if self.functions is not None:
            await asyncio.gather(*(f.close() for f in self.functions.all()), return_exceptions=True)

    async def _sweep(self) -> None:
        assert self.functions is not None
        while True:
            await asyncio.sleep(0.5)
            for function in self.functions.all():
                function.expire_old_events()

    def _secret_arn(self, name: str) -> str | None:
        assert self._assembly is not None and self._resolver is not None
        for res in self._assembly.resources(SECRET):
            arn = self._resolver.ref(res)
            if name in (arn, arn.rsplit("-", 1)[0], arn.split(":secret:", 1)[-1].rsplit("-", 1)[0]):
                return arn
        return None

    async def _authorize_connections(
        self, request: web.Request, connection_id: str
    ) -> web.Response | None:
        assert self.api is not None
        target = connections_target(
            request.method,
            self.api.api_id,
            self.api.stage,
            connection_id,
            region=self.region,
            account_id=ACCOUNT_ID,
        )
        denial = self.access.check("execute-api", request.headers, [target])
        if denial is None:
            return None
        return web.Response(status=denial.status, body=denial.body, headers=denial.headers)

    # -- functions ----------------------------------------------------------------------
    async def _invoke_json(self, name: str, event: dict[str, Any]) -> InvokeResult:
        """API Gateway's synchronous call of an integration or authorizer."""
        assert self.functions is not None
        try:
            return await self.functions.get(name).invoke(json.dumps(event).encode())
        except Throttled:
            error = {"errorMessage": "Rate Exceeded.", "errorType": "TooManyRequestsException"}
            return InvokeResult(json.dumps(error).encode(), "Unhandled")

    async def _deliver_failure(self, destination_arn: str, record: dict[str, Any]) -> None:
        """Lambda's on-failure destination: an asynchronous invoke with the record."""
        assert self.functions is not None
        function = self.functions.resolve(destination_arn)
        condition = record["requestContext"]["condition"]
        if function is None:
            log.warning(
                "event failed (%s); destination %s is not emulated", condition, destination_arn
            )
            return
        log.warning("event failed (%s); sent to %s", condition, function.spec.name)
        function.submit_event(json.dumps(record).encode(), invoked_arn=destination_arn)

    def _service_environment(self) -> dict[str, str]:
        """Where each SDK client of a function goes: this twin's endpoints."""
        return {
            "AWS_ENDPOINT_URL_DYNAMODB": self.proxy_url,
            # The SDK derives the name from the service id "Secrets Manager".
            "AWS_ENDPOINT_URL_SECRETS_MANAGER": self.proxy_url,
            "AWS_ENDPOINT_URL_SSM": self.proxy_url,
            "AWS_ENDPOINT_URL_LAMBDA": f"http://{self.host}:{self.port}",
            "AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI": self.connections_url,
        }

    def _function_specs(self) -> list[FunctionSpec]:
        services = self._service_environment()
        specs = []
        for plan in self._plans:
            spec = self._lay_out(plan)
            spec = dataclasses.replace(
                spec, environment={**spec.environment, **services, **self.environment}
            )
            specs.append(self.rewrite_function(spec) if self.rewrite_function else spec)
        runtime = str(self._runtimes.python_packages())
        for spec in self.extra_functions:
            specs.append(
                dataclasses.replace(
                    spec,
                    environment={**services, **self.environment, **spec.environment},
                    code_paths=(*spec.code_paths, runtime),
                )
            )
        return specs

    def _lay_out(self, plan: blueprint.FunctionPlan) -> FunctionSpec:
        """The function's code, layers and runtime as Lambda would put them on its path."""
        environment = {k: self.localize(v) for k, v in plan.environment.items()}
        runtime = str(self._runtimes.python_packages())
        if plan.image is not None:
            layout = build_image(
                plan.image.directory,
                dockerfile=plan.image.dockerfile,
                build_args=plan.image.build_args,
                cache_dir=self.cache_dir,
                layout_root=self._layouts / plan.name,
            )
            for line in layout.skipped:
                log.info("%s: image step not run here: %s", plan.name, line)
            handler = layout.handler
            # An ENTRYPOINT of the image's own replaces Lambda's runtime, CMD its arguments.
            entrypoint = (*layout.entrypoint, *layout.command) if layout.entrypoint else ()
            code_paths: tuple[str, ...] = (str(layout.task_root), runtime)
            environment = {
                **layout.map_environment(layout.environment),
                **layout.map_environment(environment),
            }
        else:
            assert plan.code_dir is not None and plan.handler is not None
            handler = plan.handler
            layers = []
            for arn in plan.layers:
                folder, what = self._runtimes.layer(arn)
                if folder is None:
                    log.warning("%s: layer %s is %s; it is left out", plan.name, arn, what)
                else:
                    layers.append(str(folder))
            code_paths = (str(plan.code_dir), *layers, runtime)
            entrypoint = ()
        return FunctionSpec(
            name=plan.name,
            handler=handler,
            environment=environment,
            timeout_seconds=plan.timeout_seconds,
            memory_mb=plan.memory_mb,
            code_paths=code_paths,
            reserved_concurrency=plan.reserved_concurrency,
            local_cap=self.local_cap,
            aliases=dict(plan.aliases),
            async_configs=dict(plan.async_configs),
            role_arn=plan.role_arn,
            description=plan.resource.construct_path,
            entrypoint=entrypoint,
        )

    # -- what runs ------------------------------------------------------------------------
    def describe(self) -> list[str]:
        """Lines for the startup listing: what is emulated, and what is not."""
        assert self.api is not None and self.functions is not None
        lines = [f"stage {self.stage_id} from {self.assembly_dir}"]
        for function in self.functions.all():
            spec = function.spec
            extra = []
            if spec.reserved_concurrency is not None:
                extra.append(f"reserved {spec.reserved_concurrency}")
            for alias, count in spec.aliases.items():
                extra.append(f"alias {alias}" + (f" (provisioned {count})" if count else ""))
            lines.append(
                f"  function {spec.description or spec.name}: {spec.handler}, "
                f"{spec.memory_mb} MB, {spec.timeout_seconds:g} s"
                + (f", {', '.join(extra)}" if extra else "")
            )
        for route in self.api.routes:
            lines.append(f"  route {route.route_key} ({route.authorization_type})")
        for plan in self._url_plans:
            lines.append(
                f"  function URL {self.function_urls.get(plan.url, plan.url)} → "
                f"{plan.function_arn.rsplit(':', 1)[-1]}:{plan.qualifier} "
                f"({plan.invoke_mode}, auth {plan.auth_type}"
                + (f", CORS {','.join(plan.cors.get('AllowOrigins') or [])}" if plan.cors else "")
                + ")"
            )
        for path, name in self.tables.items():
            lines.append(f"  table {path}: {name}")
        for path in self.secrets:
            lines.append(f"  secret {path}")
        for path, name in self.parameters.items():
            lines.append(f"  parameter {path}: {name}")
        lines.append(
            "  IAM: " + ("enforced from the template" if self.access.enforce else "OFF (--no-iam)")
        )
        if self.not_emulated:
            lines.append(
                "not emulated: "
                + ", ".join(
                    f"{s.logical_id} ({s.type}{'' if s.why == 'not emulated' else ', ' + s.why})"
                    for s in self.not_emulated
                )
            )
        return lines

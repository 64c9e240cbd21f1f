"""What the twin emulates, read from one stage of a synthesized CDK app (`cdk.out`).

Nothing here knows the app: every function, route, table, secret and permission comes
from the stage's CloudFormation templates and the assets CDK staged beside them. The
twin (`offline.cloud`) creates the data resources first (their physical ids then resolve
the rest), then reads the functions, the WebSocket API and the roles' policies.

Each CloudFormation type it reads, and what the twin does with it, is in
docs/architecture.md ("How the twin maps the template").
"""

from __future__ import annotations

import logging
import secrets
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from offline.event_queue import AsyncConfig
from offline.template import Resolver, Resource, StageAssembly

log = logging.getLogger("offline")

_EMULATED_TYPES = {
    "AWS::DynamoDB::Table",
    "AWS::SecretsManager::Secret",
    "AWS::SSM::Parameter",
    "AWS::Lambda::Function",
    "AWS::Lambda::Version",
    "AWS::Lambda::Alias",
    "AWS::Lambda::EventInvokeConfig",
    "AWS::Lambda::Permission",
    "AWS::Lambda::Url",
    "AWS::IAM::Role",
    "AWS::IAM::Policy",
    "AWS::ApiGatewayV2::Api",
    "AWS::ApiGatewayV2::Route",
    "AWS::ApiGatewayV2::Integration",
    "AWS::ApiGatewayV2::Authorizer",
    "AWS::ApiGatewayV2::Stage",
    "Custom::CDKBucketDeployment",
}
_INTEGRATION_URI = "/2015-03-31/functions/"


class BlueprintError(Exception):
    """The template asks for something the twin cannot run (the message says what)."""


@dataclass(frozen=True)
class TablePlan:
    resource: Resource
    create_table: dict[str, Any]  # CreateTable's arguments
    ttl_attribute: str | None


@dataclass(frozen=True)
class SecretPlan:
    resource: Resource
    name: str
    value: str


@dataclass(frozen=True)
class ParameterPlan:
    resource: Resource
    name: str
    type: str
    value: str


@dataclass(frozen=True)
class RoutePlan:
    route_key: str
    function_arn: str
    authorization_type: str


@dataclass(frozen=True)
class AuthorizerPlan:
    function_arn: str
    identity_sources: tuple[str, ...]


@dataclass(frozen=True)
class ApiPlan:
    resource: Resource
    api_id: str
    stage: str
    route_selection_expression: str
    routes: tuple[RoutePlan, ...]
    authorizer: AuthorizerPlan | None
    throttle_rate: float
    throttle_burst: int


@dataclass(frozen=True)
class FunctionPlan:
    """A function as the template says, before it is laid out on this machine."""

    resource: Resource
    name: str
    arn: str
    handler: str | None  # zip functions; an image's comes from its CMD
    code_dir: Path | None
    image: Any  # offline.template.ImageAsset for image functions
    layers: tuple[str, ...]
    environment: dict[str, str]
    memory_mb: int
    timeout_seconds: int
    reserved_concurrency: int | None
    role_arn: str | None
    aliases: dict[str, int] = field(default_factory=dict)
    async_configs: dict[str, AsyncConfig] = field(default_factory=dict)


@dataclass(frozen=True)
class UrlPlan:
    """A Function URL: the function and qualifier it invokes, and how."""

    resource: Resource
    url: str  # https://<url-id>.lambda-url.<region>.on.aws/
    function_arn: str  # unqualified
    qualifier: str  # "$LATEST" or an alias
    auth_type: str  # NONE | AWS_IAM
    invoke_mode: str  # BUFFERED | RESPONSE_STREAM
    cors: dict[str, Any] | None


@dataclass(frozen=True)
class Skipped:
    logical_id: str
    type: str
    why: str


def data_plans(assembly: StageAssembly, resolver: Resolver) -> tuple[list, list]:
    """The tables and secrets to create before anything else resolves."""
    tables = []
    for res in assembly.resources("AWS::DynamoDB::Table"):
        props = resolver.resolve(dict(res.properties), res.stack)
        create: dict[str, Any] = {
            "TableName": resolver.ref(res),
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "BillingMode": props.get("BillingMode", "PROVISIONED"),
        }
        if create["BillingMode"] == "PROVISIONED":
            create["ProvisionedThroughput"] = props.get(
                "ProvisionedThroughput", {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
            )
        for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if props.get(key):
                create[key] = props[key]
        ttl = props.get("TimeToLiveSpecification") or {}
        tables.append(
            TablePlan(res, create, ttl.get("AttributeName") if ttl.get("Enabled") else None)
        )
    secret_plans = []
    for res in assembly.resources("AWS::SecretsManager::Secret"):
        props = resolver.resolve(dict(res.properties), res.stack)
        name = props.get("Name") or resolver.physical_name(res)
        value = props.get("SecretString")
        if value is None:
            value = generate_secret(props.get("GenerateSecretString") or {})
        secret_plans.append(SecretPlan(res, name, value))
    return tables, secret_plans


def parameter_plans(assembly: StageAssembly, resolver: Resolver) -> list[ParameterPlan]:
    """The SSM parameters to create, with the template's value; one without a `Name`
    gets a generated one, as CloudFormation gives it (its Ref is its name)."""
    plans = []
    for res in assembly.resources("AWS::SSM::Parameter"):
        props = resolver.resolve(dict(res.properties), res.stack)
        name = props.get("Name") or resolver.ref(res)
        plans.append(ParameterPlan(res, name, props.get("Type", "String"), str(props["Value"])))
    return plans


def generate_secret(spec: Mapping[str, Any]) -> str:
    """A value as Secrets Manager's GenerateSecretString makes it (length 32 by default)."""
    alphabet = string.ascii_letters + string.digits
    if not spec.get("ExcludePunctuation"):
        alphabet += "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
    if spec.get("ExcludeUppercase"):
        alphabet = "".join(c for c in alphabet if not c.isupper())
    if spec.get("ExcludeLowercase"):
        alphabet = "".join(c for c in alphabet if not c.islower())
    if spec.get("ExcludeNumbers"):
        alphabet = "".join(c for c in alphabet if not c.isdigit())
    alphabet = "".join(c for c in alphabet if c not in spec.get("ExcludeCharacters", ""))
    if spec.get("IncludeSpace"):
        alphabet += " "
    password = "".join(secrets.choice(alphabet) for _ in range(int(spec.get("PasswordLength", 32))))
    template, key = spec.get("SecretStringTemplate"), spec.get("GenerateStringKey")
    if template and key:
        import json

        document = json.loads(template)
        document[key] = password
        return json.dumps(document)
    return password


def api_plan(
    assembly: StageAssembly, resolver: Resolver, *, stage_name: str | None = None
) -> ApiPlan:
    """The stage's one WebSocket API: routes, their integrations, authorizer, throttling."""
    apis = [
        r
        for r in assembly.resources("AWS::ApiGatewayV2::Api")
        if r.properties.get("ProtocolType") == "WEBSOCKET"
    ]
    if len(apis) != 1:
        raise BlueprintError(f"the twin serves one WebSocket API per stage; found {len(apis)}")
    api = apis[0]
    api_id = resolver.ref(api)

    def belongs(res: Resource) -> bool:
        return resolver.resolve(res.properties.get("ApiId"), res.stack) == api_id

    stages = [s for s in assembly.resources("AWS::ApiGatewayV2::Stage") if belongs(s)]
    if stage_name is not None:
        stages = [s for s in stages if s.properties.get("StageName") == stage_name]
    if not stages:
        raise BlueprintError(f"the WebSocket API {api.logical_id} has no stage")
    stage = stages[0]
    settings = resolver.resolve(stage.properties.get("DefaultRouteSettings") or {}, stage.stack)
    integrations = {
        resolver.ref(i): _function_arn(resolver.resolve(i.properties["IntegrationUri"], i.stack))
        for i in assembly.resources("AWS::ApiGatewayV2::Integration")
        if belongs(i)
    }
    authorizers = {
        resolver.ref(a): AuthorizerPlan(
            _function_arn(resolver.resolve(a.properties["AuthorizerUri"], a.stack)),
            tuple(a.properties.get("IdentitySource") or ()),
        )
        for a in assembly.resources("AWS::ApiGatewayV2::Authorizer")
        if belongs(a)
    }
    routes, authorizer = [], None
    for route in assembly.resources("AWS::ApiGatewayV2::Route"):
        if not belongs(route):
            continue
        props = resolver.resolve(dict(route.properties), route.stack)
        target = str(props.get("Target", ""))
        integration = target.removeprefix("integrations/")
        if integration not in integrations:
            raise BlueprintError(f"route {props['RouteKey']}: no integration {target!r}")
        auth_type = props.get("AuthorizationType", "NONE")
        if auth_type == "CUSTOM":
            authorizer = authorizers[props["AuthorizerId"]]
        elif auth_type != "NONE":
            raise BlueprintError(f"route {props['RouteKey']}: {auth_type} auth is not emulated")
        routes.append(RoutePlan(props["RouteKey"], integrations[integration], auth_type))
    return ApiPlan(
        resource=api,
        api_id=api_id,
        stage=stage.properties["StageName"],
        route_selection_expression=api.properties.get(
            "RouteSelectionExpression", "$request.body.action"
        ),
        routes=tuple(routes),
        authorizer=authorizer,
        throttle_rate=float(settings.get("ThrottlingRateLimit", 0) or 0),
        throttle_burst=int(settings.get("ThrottlingBurstLimit", 0) or 0),
    )


def _function_arn(uri: str) -> str:
    """`arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{arn}/invocations`."""
    if _INTEGRATION_URI not in uri:
        raise BlueprintError(f"only Lambda proxy integrations are emulated, not {uri}")
    return uri.split(_INTEGRATION_URI, 1)[1].removesuffix("/invocations")


def custom_resource_providers(assembly: StageAssembly, resolver: Resolver) -> dict[str, str]:
    """Functions that only serve CloudFormation custom resources (deploy-time machinery)."""
    providers: dict[str, str] = {}
    for res in assembly.resources():
        if not (
            res.type.startswith("Custom::") or res.type == "AWS::CloudFormation::CustomResource"
        ):
            continue
        token = res.properties.get("ServiceToken")
        if token is not None:
            providers[str(resolver.resolve(token, res.stack))] = res.type
    return providers


def function_plans(
    assembly: StageAssembly, resolver: Resolver
) -> tuple[list[FunctionPlan], list[Skipped]]:
    """Every Python function of the stage (zip or image), and the functions left out."""
    providers = custom_resource_providers(assembly, resolver)
    plans: dict[str, FunctionPlan] = {}
    skipped: list[Skipped] = []
    for res in assembly.resources("AWS::Lambda::Function"):
        props = res.properties
        arn = resolver.get_att(res, "Arn")
        runtime = str(props.get("Runtime", ""))
        if arn in providers:
            skipped.append(Skipped(res.logical_id, res.type, f"provider of {providers[arn]}"))
            continue
        image = props.get("PackageType") == "Image"
        if not image and not runtime.startswith("python"):
            skipped.append(Skipped(res.logical_id, res.type, f"runtime {runtime}"))
            continue
        if not image and res.asset_dir is None:
            skipped.append(Skipped(res.logical_id, res.type, "inline or external code"))
            continue
        resolved = resolver.resolve(
            {k: v for k, v in props.items() if k in ("Environment", "Layers", "Role")}, res.stack
        )
        reserved = props.get("ReservedConcurrentExecutions")
        plans[arn] = FunctionPlan(
            resource=res,
            name=resolver.ref(res),
            arn=arn,
            handler=props.get("Handler"),
            code_dir=None if image else res.asset_dir,
            image=assembly.image_asset(res) if image else None,
            layers=tuple(resolved.get("Layers") or ()),
            environment={
                k: str(v)
                for k, v in ((resolved.get("Environment") or {}).get("Variables") or {}).items()
            },
            memory_mb=int(props.get("MemorySize", 128)),
            timeout_seconds=int(props.get("Timeout", 3)),
            reserved_concurrency=None if reserved is None else int(reserved),
            role_arn=resolved.get("Role"),
        )
    for alias in assembly.resources("AWS::Lambda::Alias"):
        function = _function_by_name(plans, resolver, alias)
        pc = (alias.properties.get("ProvisionedConcurrencyConfig") or {}).get(
            "ProvisionedConcurrentExecutions", 0
        )
        function.aliases[alias.properties["Name"]] = int(pc)
    for config in assembly.resources("AWS::Lambda::EventInvokeConfig"):
        function = _function_by_name(plans, resolver, config)
        props = resolver.resolve(dict(config.properties), config.stack)
        destination = ((props.get("DestinationConfig") or {}).get("OnFailure") or {}).get(
            "Destination"
        )
        function.async_configs[props["Qualifier"]] = AsyncConfig(
            max_event_age_seconds=float(props.get("MaximumEventAgeInSeconds", 6 * 3600)),
            max_retry_attempts=int(props.get("MaximumRetryAttempts", 2)),
            on_failure=destination,
        )
    return list(plans.values()), skipped


def url_plans(assembly: StageAssembly, resolver: Resolver) -> list[UrlPlan]:
    """Every Function URL of the stage. `TargetFunctionArn` may name the function or a
    qualified ARN; `Qualifier` names an alias (a URL never targets a version number)."""
    plans = []
    for res in assembly.resources("AWS::Lambda::Url"):
        props = resolver.resolve(dict(res.properties), res.stack)
        target = str(props["TargetFunctionArn"])
        function_arn, qualifier = target, props.get("Qualifier")
        if target.count(":") == 7:  # arn:aws:lambda:region:account:function:name:alias
            function_arn, _, qualifier = target.rpartition(":")
        plans.append(
            UrlPlan(
                resource=res,
                url=resolver.get_att(res, "FunctionUrl"),
                function_arn=function_arn,
                qualifier=str(qualifier or "$LATEST"),
                auth_type=str(props["AuthType"]),
                invoke_mode=str(props.get("InvokeMode", "BUFFERED")),
                cors=props.get("Cors"),
            )
        )
    return plans


def _function_by_name(
    plans: Mapping[str, FunctionPlan], resolver: Resolver, res: Resource
) -> FunctionPlan:
    name = str(resolver.resolve(res.properties["FunctionName"], res.stack))
    for plan in plans.values():
        if name in (plan.name, plan.arn):
            return plan
    raise BlueprintError(f"{res.logical_id}: no emulated function {name}")


def role_policies(assembly: StageAssembly, resolver: Resolver) -> dict[str, list[dict]]:
    """Each role's ARN and its resolved policy documents (inline and `AWS::IAM::Policy`)."""
    roles: dict[str, list[dict]] = {}
    by_name: dict[str, str] = {}
    for role in assembly.resources("AWS::IAM::Role"):
        arn = resolver.get_att(role, "Arn")
        by_name[resolver.ref(role)] = arn
        documents = roles.setdefault(arn, [])
        for policy in role.properties.get("Policies") or []:
            documents.append(resolver.resolve(policy["PolicyDocument"], role.stack))
    for policy in assembly.resources("AWS::IAM::Policy"):
        document = resolver.resolve(policy.properties["PolicyDocument"], policy.stack)
        for name in resolver.resolve(policy.properties.get("Roles") or [], policy.stack):
            if name in by_name:
                roles[by_name[name]].append(document)
    return roles


def site_files(
    assembly: StageAssembly, resolver: Resolver, localize: Callable[[str], str]
) -> dict[str, bytes | Path]:
    """The files a `BucketDeployment` would upload, with its markers filled in."""
    files: dict[str, bytes | Path] = {}
    assets = assembly.file_assets()
    for res in assembly.resources("Custom::CDKBucketDeployment"):
        props = res.properties
        keys = props.get("SourceObjectKeys") or []
        markers = props.get("SourceMarkers") or [{} for _ in keys]
        for key, marker in zip(keys, markers, strict=False):
            source = assets.get(str(key).removesuffix(".zip"))
            if source is None or not source.is_dir():
                raise BlueprintError(f"{res.logical_id}: source {key} is not staged in cdk.out")
            values = {
                name: localize(str(resolver.resolve(value, res.stack)))
                for name, value in (marker or {}).items()
            }
            for path in sorted(p for p in source.rglob("*") if p.is_file()):
                relative = str(path.relative_to(source))
                if values:
                    data = path.read_bytes()
                    for name, value in values.items():
                        data = data.replace(name.encode(), value.encode())
                    files[relative] = data
                else:
                    files[relative] = path
    return files


def not_emulated(assembly: StageAssembly, skipped: list[Skipped]) -> list[Skipped]:
    """Every resource the twin does not run, with why, for the startup listing."""
    left = [
        Skipped(r.logical_id, r.type, "not emulated")
        for r in assembly.resources()
        if r.type not in _EMULATED_TYPES
    ]
    return sorted([*skipped, *left], key=lambda s: (s.type, s.logical_id))

"""Read one stage of a synthesized CDK cloud assembly (`cdk.out`) and resolve its intrinsics.

A local twin builds itself from the CloudFormation templates instead of restating the stacks:
`StageAssembly` lists a stage's resources (with their asset folders and image build
settings), and `Resolver` turns property values (environment variables, policy resources,
qualifiers...) into the physical names and ARNs the twin uses, the way CloudFormation would
on deploy. Nothing here names any particular app's resources.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

__all__ = [
    "ImageAsset",
    "Resolver",
    "Resource",
    "StageAssembly",
    "TemplateError",
    "UnresolvedReference",
]

_STACK = "aws:cloudformation:stack"
_NESTED_ASSEMBLY = "cdk:cloud-assembly"
_ASSET_MANIFEST = "cdk:asset-manifest"
_UNKNOWN = ("unknown-account", "unknown-region")
# CDK decides at synth what a stage holds, so its templates carry no conditions; a template
# that does would be deployed differently from how the twin would read it.
_NO_CONDITIONS = (
    "{}: the twin does not evaluate CloudFormation conditions (Fn::If, Condition); "
    "decide in the CDK app instead"
)


class TemplateError(LookupError):
    """The assembly lacks what was asked for: a stage, stack, resource or output."""


class UnresolvedReference(TemplateError):
    """An intrinsic names something that has no value here (unknown resource or attribute)."""


@dataclass(frozen=True)
class Resource:
    """One resource of a stack's template, as synthesized (nothing resolved)."""

    stack: str
    """The deployed stack name, e.g. "Beta-Backend" (not the display path)."""
    logical_id: str
    type: str = field(compare=False)
    properties: Mapping[str, Any] = field(compare=False, repr=False)
    metadata: Mapping[str, Any] = field(compare=False, repr=False)
    asset_dir: Path | None = field(compare=False, repr=False)
    """Absolute `aws:asset:path`: a folder, or a file for `file`-packaged assets."""

    @property
    def construct_path(self) -> str:
        """The CDK construct path (`aws:cdk:path`), or the logical id when absent."""
        return str(self.metadata.get("aws:cdk:path") or self.logical_id)


@dataclass(frozen=True)
class ImageAsset:
    """How CDK would build a container image asset (from `*.assets.json` `dockerImages`)."""

    hash: str
    directory: Path
    dockerfile: str = "Dockerfile"
    """Relative to `directory`."""
    build_args: Mapping[str, str] = field(default_factory=dict)
    platform: str | None = None
    target: str | None = None


@dataclass(frozen=True)
class _Stack:
    name: str
    template: dict[str, Any]
    directory: Path
    account: str | None
    region: str | None


class StageAssembly:
    """The stacks of one CDK Stage (a nested cloud assembly). Build it with `load`."""

    def __init__(
        self,
        stage: str,
        stacks: list[_Stack],
        images: Mapping[str, tuple[Path, Mapping]],
        assets: Mapping[str, Path],
    ) -> None:
        self.stage = stage
        self._stacks = {stack.name: stack for stack in stacks}
        self._images = dict(images)
        self._assets = dict(assets)
        self._resources: dict[tuple[str, str], Resource] = {}
        for stack in stacks:
            conditional = [
                f"{stack.name}/{section}/{name}"
                for section in ("Resources", "Outputs")
                for name, body in stack.template.get(section, {}).items()
                if "Condition" in body
            ]
            if stack.template.get("Conditions") or conditional:
                raise TemplateError(_NO_CONDITIONS.format(", ".join(conditional) or stack.name))
            for logical_id, body in stack.template.get("Resources", {}).items():
                metadata = body.get("Metadata") or {}
                properties = body.get("Properties") or {}
                asset = metadata.get("aws:asset:path")
                self._resources[(stack.name, logical_id)] = Resource(
                    stack=stack.name,
                    logical_id=logical_id,
                    type=body["Type"],
                    properties=MappingProxyType(properties),
                    metadata=MappingProxyType(metadata),
                    # Relative to the nested assembly's folder (assets live one level up).
                    asset_dir=(stack.directory / asset).resolve()
                    if asset
                    else _asset_by_hash(properties, assets),
                )
        self.stacks: Mapping[str, dict[str, Any]] = MappingProxyType(
            {name: stack.template for name, stack in self._stacks.items()}
        )
        self.region = _single({stack.region for stack in stacks})
        """The stacks' region when synthesized with one (None for env-agnostic stacks)."""
        self.account = _single({stack.account for stack in stacks})
        """The stacks' account when synthesized with one."""

    @classmethod
    def load(cls, out_dir: Path, stage: str) -> StageAssembly:
        """Read stage `stage` (its id, e.g. "Beta", or its `assembly-…` folder) from `out_dir`."""
        out_dir = Path(out_dir).resolve()
        manifest = _read_json(out_dir / "manifest.json", "run `cdk synth` first")
        known: list[str] = []
        for artifact_id, artifact in manifest.get("artifacts", {}).items():
            if artifact.get("type") != _NESTED_ASSEMBLY:
                continue
            props = artifact.get("properties", {})
            directory = props.get("directoryName", artifact_id)
            display = props.get("displayName", artifact_id.removeprefix("assembly-"))
            known.append(display)
            if stage in (display, directory, artifact_id):
                return cls._load_nested(out_dir / directory, display)
        raise TemplateError(
            f"no stage {stage!r} in {out_dir}; its stages: {', '.join(known) or 'none'}"
        )

    @classmethod
    def stages(cls, out_dir: Path) -> list[str]:
        """The ids of the stages (nested assemblies) in `out_dir`."""
        manifest = _read_json(Path(out_dir) / "manifest.json", "run `cdk synth` first")
        return [
            artifact.get("properties", {}).get("displayName", artifact_id.removeprefix("assembly-"))
            for artifact_id, artifact in manifest.get("artifacts", {}).items()
            if artifact.get("type") == _NESTED_ASSEMBLY
        ]

    def file_assets(self) -> dict[str, Path]:
        """Staged assets by hash (the S3 object key CDK uploads them under, less `.zip`)."""
        return dict(self._assets)

    @classmethod
    def _load_nested(cls, directory: Path, stage: str) -> StageAssembly:
        manifest = _read_json(directory / "manifest.json", "the assembly is incomplete")
        stacks: list[_Stack] = []
        images: dict[str, tuple[Path, Mapping]] = {}
        assets: dict[str, Path] = {}
        for artifact_id, artifact in manifest.get("artifacts", {}).items():
            props = artifact.get("properties", {})
            if artifact.get("type") == _STACK:
                account, region = _environment(artifact.get("environment", ""))
                template = _read_json(directory / props["templateFile"], "")
                name = props.get("stackName", artifact_id)
                stacks.append(_Stack(name, template, directory, account, region))
            elif artifact.get("type") == _ASSET_MANIFEST:
                manifest_ = _read_json(directory / props["file"], "")
                for asset_hash, image in manifest_.get("dockerImages", {}).items():
                    images[asset_hash] = (directory, image.get("source", {}))
                    if "directory" in image.get("source", {}):
                        assets[asset_hash] = (directory / image["source"]["directory"]).resolve()
                for asset_hash, file in manifest_.get("files", {}).items():
                    if "path" in file.get("source", {}):
                        assets[asset_hash] = (directory / file["source"]["path"]).resolve()
        if not stacks:
            raise TemplateError(f"stage {stage!r} ({directory}) has no stacks")
        return cls(stage, stacks, images, assets)

    def resources(self, *types: str) -> list[Resource]:
        """Every resource of the stage in template order, or only those of `types`."""
        return [r for r in self._resources.values() if not types or r.type in types]

    def get(self, stack: str, logical_id: str) -> Resource:
        """The resource `logical_id` of stack `stack` (its deployed name)."""
        if stack not in self._stacks:
            raise TemplateError(f"no stack {stack!r} in stage {self.stage}: {self._stack_list()}")
        try:
            return self._resources[(stack, logical_id)]
        except KeyError:
            raise TemplateError(f"stack {stack} has no resource {logical_id!r}") from None

    def find(self, reference: str, *types: str) -> Resource:
        """The one resource (of `types`, if given) whose logical id is `reference`, or whose
        construct path ends with it ("Orders/Handler" finds ".../Orders/Handler/Resource"),
        or failing that holds it as whole segments (among functions, "Orders" finds
        ".../Orders/Handler/Resource")."""
        candidates = self.resources(*types)
        segments = "/" + reference.strip("/")
        matches = [
            r
            for r in candidates
            if r.logical_id == reference
            or f"/{_trimmed_path(r.construct_path)}".endswith(segments)
            or f"/{r.construct_path}".endswith(segments)
        ]
        if not matches:
            # Only when nothing ends with it: a construct's children would all hold it.
            matches = [r for r in candidates if f"{segments}/" in f"/{r.construct_path}/"]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            # Construct paths exist only when synthesized with path metadata (the CLI's default).
            has_paths = any("aws:cdk:path" in r.metadata for r in self._resources.values())
            hint = "" if has_paths else " (the templates carry no aws:cdk:path metadata)"
            kind = f" of type {', '.join(types)}" if types else ""
            raise TemplateError(
                f"no resource{kind} in stage {self.stage} matches {reference!r}{hint}"
            )
        paths = ", ".join(r.construct_path for r in matches)
        raise TemplateError(f"{reference!r} is ambiguous in stage {self.stage}: {paths}")

    def image_asset(self, function: Resource) -> ImageAsset | None:
        """How to build `function`'s container image, or None when it is not an image
        built from this app (a zip function, or an image pulled from a registry)."""
        code = function.properties.get("Code")
        image_uri = code.get("ImageUri") if isinstance(code, Mapping) else None
        if image_uri is None:
            return None
        # The image tag is the asset hash, inside an Fn::Sub or Fn::Join.
        text = json.dumps(image_uri)
        matches = [h for h in self._images if h in text]
        if not matches and function.asset_dir is not None:
            matches = [
                h
                for h, (base, source) in self._images.items()
                if "directory" in source
                and (base / source["directory"]).resolve() == function.asset_dir
            ]
        if not matches:
            return None
        asset_hash = max(matches, key=len)
        base, source = self._images[asset_hash]
        if "directory" not in source:
            raise TemplateError(
                f"{function.construct_path}: image {asset_hash} is built by a command "
                f"({source.get('executable')}), not from a folder"
            )
        return ImageAsset(
            hash=asset_hash,
            directory=(base / source["directory"]).resolve(),
            dockerfile=source.get("dockerFile") or "Dockerfile",
            build_args=MappingProxyType(dict(source.get("dockerBuildArgs") or {})),
            platform=source.get("platform"),
            target=source.get("dockerBuildTarget"),
        )

    def _stack_list(self) -> str:
        return ", ".join(self._stacks)


# Per type: the property that names it, and the service's length limit for a name.
_NAMES: dict[str, tuple[str, int]] = {
    "AWS::Lambda::Function": ("FunctionName", 64),
    "AWS::Lambda::LayerVersion": ("LayerName", 140),
    "AWS::DynamoDB::Table": ("TableName", 255),
    "AWS::SecretsManager::Secret": ("Name", 512),
    "AWS::IAM::Role": ("RoleName", 64),
    "AWS::IAM::ManagedPolicy": ("ManagedPolicyName", 128),
    "AWS::SQS::Queue": ("QueueName", 80),
    "AWS::SNS::Topic": ("TopicName", 256),
    "AWS::Logs::LogGroup": ("LogGroupName", 512),
    "AWS::S3::Bucket": ("BucketName", 63),
}
# Types whose Ref is their name; for the others, how to read the name back from a Ref the
# twin `set` (so attributes derived from the name follow it).
_NAME_IS_REF = {
    "AWS::Lambda::Function",
    "AWS::DynamoDB::Table",
    "AWS::IAM::Role",
    "AWS::Logs::LogGroup",
    "AWS::S3::Bucket",
}
_NAME_FROM_REF: dict[str, Callable[[str], str]] = {
    "AWS::SQS::Queue": lambda ref: ref.rsplit("/", 1)[-1],
    "AWS::SNS::Topic": lambda ref: ref.rsplit(":", 1)[-1],
    "AWS::IAM::ManagedPolicy": lambda ref: ref.rsplit("/", 1)[-1],
}
_NO_VALUE = object()  # AWS::NoValue: the enclosing key or list item disappears
_SUB = re.compile(r"\$\{([^}]*)\}")
_UPPER = string.ascii_uppercase + string.digits
_LOWER = string.ascii_lowercase + string.digits
_MIXED = string.ascii_letters + string.digits

_Values = dict[str, Callable[[], Any]]


class Resolver:
    """Resolves CloudFormation intrinsics against the twin's own physical names.

    Values the twin did not `set` are generated deterministically, the way CloudFormation
    names things (`{StackName}-{LogicalId}-{SUFFIX}`, trimmed to the service's limit), or
    taken from the template's explicit name property. Attributes derive from the Ref, so
    setting a function's name moves its ARN, and an alias's ARN, with it.
    """

    def __init__(
        self,
        assembly: StageAssembly,
        *,
        account_id: str,
        region: str | None = None,
        partition: str = "aws",
        url_suffix: str = "amazonaws.com",
    ) -> None:
        region = region or assembly.region
        if region is None:
            raise ValueError("the stacks are environment-agnostic: pass region=")
        # Synthesized with an environment, the templates spell it out literally in ARNs;
        # resolving elsewhere would mix two regions (or accounts) in one policy.
        if assembly.region not in (None, region):
            raise ValueError(f"the templates were synthesized for {assembly.region}, not {region}")
        if assembly.account not in (None, account_id):
            raise ValueError(f"the templates were synthesized for account {assembly.account}")
        self.assembly = assembly
        self.region = region
        self.account_id = account_id
        self.partition = partition
        self.url_suffix = url_suffix
        self._set: dict[tuple[str, str], dict[str, Any]] = {}
        self._active: set[tuple[str, ...]] = set()

    # -- values of resources ------------------------------------------------------------

    def set(self, resource: Resource, *, ref: str | None = None, **attributes: str) -> None:
        """Record values a service assigned (e.g. the secret ARN moto returned)."""
        self.assembly.get(resource.stack, resource.logical_id)  # fail early on a stranger
        values = self._set.setdefault((resource.stack, resource.logical_id), {})
        if ref is not None:
            values["Ref"] = ref
        values.update(attributes)

    def ref(self, resource: Resource) -> str:
        """What `{"Ref": logical_id}` gives for `resource`."""
        return self._value(resource, "Ref")

    def get_att(self, resource: Resource, attribute: str) -> str:
        """What `{"Fn::GetAtt": [logical_id, attribute]}` gives for `resource`."""
        return self._value(resource, attribute)

    def physical_name(self, resource: Resource) -> str:
        """The resource's name (what the twin set, the template's name property, or a
        generated one); for types without a name, its physical id (Ref)."""
        if resource.type in _NAME_IS_REF or resource.type not in _NAMES:
            return self.ref(resource)
        key = (resource.stack, resource.logical_id)
        if "Ref" in self._set.get(key, {}) and resource.type in _NAME_FROM_REF:
            return _NAME_FROM_REF[resource.type](self._set[key]["Ref"])
        return self._default_name(resource)

    def output(self, stack: str, name: str) -> Any:
        """The resolved value of stack `stack`'s output `name`."""
        outputs = self._template(stack).get("Outputs", {})
        if name not in outputs:
            raise UnresolvedReference(f"stack {stack} has no output {name!r}")
        body = outputs[name]
        return self.resolve(body["Value"], stack)

    # -- intrinsics ---------------------------------------------------------------------

    def resolve(self, value: Any, stack: str) -> Any:
        """`value` (any template fragment) with every intrinsic resolved, in `stack`'s context."""
        self._template(stack)
        resolved = self._resolve(value, stack)
        return None if resolved is _NO_VALUE else resolved

    def _resolve(self, value: Any, stack: str) -> Any:
        if isinstance(value, list):
            items = (self._resolve(item, stack) for item in value)
            return [item for item in items if item is not _NO_VALUE]
        if not isinstance(value, Mapping):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self._ref(argument, stack)
            if key.startswith("Fn::"):
                function = _FUNCTIONS.get(key)
                if function is None:
                    raise UnresolvedReference(
                        f"stack {stack}: the twin does not resolve {key}; it resolves "
                        f"{', '.join(SUPPORTED_INTRINSICS)} (the intrinsics CDK emits here)"
                    )
                return function(self, argument, stack)
        resolved = {k: self._resolve(v, stack) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not _NO_VALUE}

    def _ref(self, name: str, stack: str) -> Any:
        pseudo = self._pseudo(name, stack)
        if pseudo is not None:
            return pseudo
        template = self._template(stack)
        parameter = template.get("Parameters", {}).get(name)
        if parameter is not None:
            return _parameter(stack, name, parameter)
        return self.ref(self._resource(stack, name, "Ref"))

    def _pseudo(self, name: str, stack: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        values = {
            "AWS::AccountId": self.account_id,
            "AWS::Region": self.region,
            "AWS::Partition": self.partition,
            "AWS::URLSuffix": self.url_suffix,
            "AWS::StackName": stack,
            "AWS::NotificationARNs": [],
        }
        if name == "AWS::StackId":
            stack_uuid = uuid.UUID(hashlib.sha256(stack.encode()).hexdigest()[:32])
            return self._arn("cloudformation", f"stack/{stack}/{stack_uuid}")
        return values.get(name)

    def _get_att(self, argument: Any, stack: str) -> Any:
        if isinstance(argument, str):
            logical_id, _, attribute = argument.partition(".")
        else:
            logical_id, attribute = argument[0], self._text(argument[1], stack)
        return self.get_att(self._resource(stack, logical_id, attribute), attribute)

    def _join(self, argument: Any, stack: str) -> str:
        delimiter, items = argument
        items = self._resolve(items, stack)
        if not isinstance(items, list):
            raise UnresolvedReference(f"stack {stack}: Fn::Join needs a list, got {items!r}")
        return delimiter.join(_string(item, stack, "Fn::Join") for item in items)

    def _sub(self, argument: Any, stack: str) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        values = {name: self._resolve(v, stack) for name, v in variables.items()}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):  # ${!Literal} stays as ${Literal}
                return "${" + name[1:] + "}"
            if name in values:
                value = values[name]
            elif "." in name and not name.startswith("AWS::"):
                value = self._get_att(name, stack)
            else:
                value = self._ref(name, stack)
            return _string(value, stack, f"${{{name}}}")

        return _SUB.sub(replace, text)

    def _select(self, argument: Any, stack: str) -> Any:
        index, items = argument
        index = int(self._resolve(index, stack))
        items = self._resolve(items, stack)
        if not isinstance(items, list) or not 0 <= index < len(items):
            raise UnresolvedReference(f"stack {stack}: Fn::Select {index} of {items!r}")
        return items[index]

    def _split(self, argument: Any, stack: str) -> list[str]:
        delimiter, source = argument
        return self._text(source, stack).split(delimiter)

    def _get_stack_output(self, argument: Any, stack: str) -> Any:
        target = self._text(argument["StackName"], stack)
        region = self._text(argument.get("Region", self.region), stack)
        if region != self.region:
            raise UnresolvedReference(
                f"stack {stack}: Fn::GetStackOutput reads {target} in {region}, "
                f"but the twin runs {self.region}"
            )
        if target not in self.assembly.stacks:
            raise UnresolvedReference(
                f"stack {stack}: Fn::GetStackOutput names {target}, not a stack of stage "
                f"{self.assembly.stage} ({self.assembly._stack_list()})"
            )
        return self.output(target, self._text(argument["OutputName"], stack))

    # -- defaults -----------------------------------------------------------------------

    def _value(self, resource: Resource, key: str) -> Any:
        assigned = self._set.get((resource.stack, resource.logical_id), {})
        if key in assigned:
            return assigned[key]
        values = self._defaults(resource)
        if key not in values:
            raise UnresolvedReference(
                f"stack {resource.stack}: {resource.logical_id} ({resource.type}) has no "
                f"attribute {key!r} known offline; the twin can set() it"
            )
        with self._guard(resource.stack, resource.logical_id, key):
            return values[key]()

    def _defaults(self, r: Resource) -> _Values:
        ref = lambda: self.ref(r)  # noqa: E731
        name = lambda: self.physical_name(r)  # noqa: E731
        by_type: dict[str, Callable[[], _Values]] = {
            "AWS::Lambda::Function": lambda: {
                "Arn": lambda: self._arn("lambda", f"function:{name()}"),
            },
            "AWS::Lambda::Version": lambda: {
                # One published version per function, like a fresh deploy.
                "Ref": lambda: self._function_arn(r) + ":1",
                "FunctionArn": ref,
                "Version": lambda: "1",
            },
            "AWS::Lambda::Alias": lambda: {
                "Ref": lambda: f"{self._function_arn(r)}:{self._property(r, 'Name')}",
                "AliasArn": ref,
            },
            "AWS::Lambda::Url": lambda: {
                # `https://<url-id>.lambda-url.<region>.on.aws/`, the id 32 characters.
                "FunctionUrl": lambda: (
                    f"https://{_token(r, 'url', 32, _LOWER)}.lambda-url.{self.region}.on.aws/"
                ),
                "FunctionArn": lambda: str(
                    self.resolve(self._property(r, "TargetFunctionArn"), r.stack)
                ),
            },
            "AWS::Lambda::LayerVersion": lambda: {
                "Ref": lambda: self._arn("lambda", f"layer:{name()}:1"),
                "LayerVersionArn": ref,
            },
            "AWS::DynamoDB::Table": lambda: {
                "Arn": lambda: self._arn("dynamodb", f"table/{name()}"),
                "StreamArn": lambda: self._stream_arn(r),
            },
            "AWS::SecretsManager::Secret": lambda: {
                "Ref": lambda: self._arn(
                    "secretsmanager", f"secret:{name()}-{_token(r, 'secret', 6, _MIXED)}"
                ),
                "Id": ref,
            },
            "AWS::IAM::Role": lambda: {
                "Arn": lambda: self._arn("iam", f"role{self._iam_path(r)}{name()}", global_=True),
                "RoleId": lambda: "AROA" + _token(r, "role", 17, _UPPER),
            },
            "AWS::IAM::ManagedPolicy": lambda: {
                "Ref": lambda: self._arn("iam", f"policy{self._iam_path(r)}{name()}", global_=True),
                "PolicyArn": ref,
            },
            "AWS::ApiGatewayV2::Api": lambda: {
                "Ref": lambda: _token(r, "api", 10, _LOWER),
                "ApiId": ref,
                "ApiEndpoint": lambda: self._api_endpoint(r),
            },
            "AWS::ApiGatewayV2::Stage": lambda: {"Ref": lambda: self._property(r, "StageName")},
            "AWS::ApiGatewayV2::Route": lambda: self._short_id(r, "RouteId"),
            "AWS::ApiGatewayV2::Integration": lambda: self._short_id(r, "IntegrationId"),
            "AWS::ApiGatewayV2::Authorizer": lambda: self._short_id(r, "AuthorizerId"),
            "AWS::ApiGatewayV2::Deployment": lambda: self._short_id(r, "DeploymentId"),
            "AWS::SQS::Queue": lambda: {
                "Ref": lambda: (
                    f"https://sqs.{self.region}.{self.url_suffix}/{self.account_id}/{name()}"
                ),
                "QueueUrl": ref,
                "QueueName": name,
                "Arn": lambda: self._arn("sqs", name()),
            },
            "AWS::SNS::Topic": lambda: {
                "Ref": lambda: self._arn("sns", name()),
                "TopicArn": ref,
                "TopicName": name,
            },
            "AWS::Logs::LogGroup": lambda: {
                "Arn": lambda: self._arn("logs", f"log-group:{name()}:*"),
            },
            "AWS::S3::Bucket": lambda: {
                "Arn": lambda: f"arn:{self.partition}:s3:::{name()}",
                "DomainName": lambda: f"{name()}.s3.{self.url_suffix}",
                "RegionalDomainName": lambda: f"{name()}.s3.{self.region}.{self.url_suffix}",
                "DualStackDomainName": lambda: (
                    f"{name()}.s3.dualstack.{self.region}.{self.url_suffix}"
                ),
                "WebsiteURL": lambda: f"http://{name()}.s3-website-{self.region}.amazonaws.com",
            },
            "AWS::CloudFront::Distribution": lambda: {
                "Ref": lambda: "E" + _token(r, "distribution", 13, _UPPER),
                "Id": ref,
                "DomainName": lambda: f"{ref().lower()}.cloudfront.net",
            },
            "AWS::CloudFront::OriginAccessControl": lambda: {
                "Ref": lambda: "E" + _token(r, "oac", 13, _UPPER),
                "Id": ref,
            },
        }
        values: _Values = {"Ref": lambda: self._default_name(r)}
        if r.type in by_type:
            values.update(by_type[r.type]())
        return values

    def _default_name(self, r: Resource) -> str:
        spec = _NAMES.get(r.type)
        if spec is not None and spec[0] in r.properties:
            return self._property(r, spec[0])
        limit = spec[1] if spec else 255
        fifo = r.type in ("AWS::SQS::Queue", "AWS::SNS::Topic") and _true(
            self.resolve(r.properties.get("FifoQueue", r.properties.get("FifoTopic")), r.stack)
        )
        ending = ".fifo" if fifo else ""  # FIFO queues and topics must be named so
        suffix = _token(r, "name", 12, _UPPER)
        budget = limit - len(suffix) - len(ending) - 2
        stack, logical_id = r.stack, r.logical_id
        if len(stack) + len(logical_id) > budget:
            logical_id = logical_id[: max(budget - len(stack), budget // 2)]
            stack = stack[: budget - len(logical_id)]
        generated = f"{stack}-{logical_id}-{suffix}{ending}"
        return generated.lower() if r.type == "AWS::S3::Bucket" else generated

    def _short_id(self, r: Resource, attribute: str) -> _Values:
        return {"Ref": lambda: _token(r, "id", 7, _LOWER), attribute: lambda: self.ref(r)}

    def _function_arn(self, r: Resource) -> str:
        """The unqualified ARN of the function that `r`'s FunctionName points to."""
        value = self._property(r, "FunctionName")
        if value.startswith("arn:"):
            return ":".join(value.split(":")[:7])
        parts = value.split(":")  # "name", "name:qualifier" or "account:function:name"
        function = parts[2] if len(parts) >= 3 and parts[1] == "function" else parts[0]
        return self._arn("lambda", f"function:{function}")

    def _stream_arn(self, r: Resource) -> str:
        if "StreamSpecification" not in r.properties:
            raise UnresolvedReference(
                f"stack {r.stack}: table {r.logical_id} has no stream (no StreamSpecification)"
            )
        return self.get_att(r, "Arn") + "/stream/1970-01-01T00:00:00.000"

    def _api_endpoint(self, r: Resource) -> str:
        protocol = self.resolve(r.properties.get("ProtocolType", "HTTP"), r.stack)
        scheme = "wss" if protocol == "WEBSOCKET" else "https"
        return f"{scheme}://{self.ref(r)}.execute-api.{self.region}.{self.url_suffix}"

    def _iam_path(self, r: Resource) -> str:
        return self._text(r.properties.get("Path", "/"), r.stack)

    def _arn(self, service: str, resource: str, *, global_: bool = False) -> str:
        region = "" if global_ else self.region
        return f"arn:{self.partition}:{service}:{region}:{self.account_id}:{resource}"

    # -- helpers ------------------------------------------------------------------------

    def _property(self, r: Resource, name: str) -> str:
        if name not in r.properties:
            raise UnresolvedReference(f"stack {r.stack}: {r.logical_id} has no {name}")
        return self._text(r.properties[name], r.stack)

    def _text(self, value: Any, stack: str) -> str:
        return _string(self._resolve(value, stack), stack, repr(value))

    def _template(self, stack: str) -> dict[str, Any]:
        try:
            return self.assembly.stacks[stack]
        except KeyError:
            raise TemplateError(
                f"no stack {stack!r} in stage {self.assembly.stage}: {self.assembly._stack_list()}"
            ) from None

    def _resource(self, stack: str, logical_id: str, wanted: str) -> Resource:
        try:
            return self.assembly.get(stack, logical_id)
        except TemplateError:
            raise UnresolvedReference(
                f"stack {stack}: {wanted} of {logical_id!r}, which is no resource or "
                "parameter of the stack"
            ) from None

    @contextmanager
    def _guard(self, *key: str) -> Iterator[None]:
        # A template whose values depend on each other would otherwise recurse forever.
        if key in self._active:
            raise UnresolvedReference(f"stack {key[0]}: {'/'.join(key[1:])} depends on itself")
        self._active.add(key)
        try:
            yield
        finally:
            self._active.discard(key)


_FUNCTIONS: dict[str, Callable[[Resolver, Any, str], Any]] = {
    "Fn::GetAtt": Resolver._get_att,
    "Fn::Join": Resolver._join,
    "Fn::Sub": Resolver._sub,
    "Fn::Select": Resolver._select,
    "Fn::Split": Resolver._split,
    "Fn::GetStackOutput": Resolver._get_stack_output,
}
# Conditions and the intrinsics this app's synth never emits (Fn::If, Fn::ImportValue,
# Fn::FindInMap, Fn::Base64, Fn::GetAZs...) are refused by name rather than half-done.
SUPPORTED_INTRINSICS = ("Ref", *_FUNCTIONS)


def _parameter(stack: str, name: str, parameter: Mapping[str, Any]) -> Any:
    kind = str(parameter.get("Type", "String"))
    if kind.startswith("AWS::SSM::Parameter::Value"):
        # The Default is the SSM parameter's name, not its value.
        raise UnresolvedReference(f"stack {stack}: parameter {name} is read from SSM ({kind})")
    if "Default" not in parameter:
        raise UnresolvedReference(f"stack {stack}: parameter {name} has no Default")
    default = parameter["Default"]
    if kind.startswith("List<") or kind == "CommaDelimitedList":
        return [item.strip() for item in str(default).split(",")]
    return default


def _string(value: Any, stack: str, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise UnresolvedReference(f"stack {stack}: {where} gives {value!r}, not a string")


def _true(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _token(r: Resource, purpose: str, length: int, alphabet: str) -> str:
    """A stable pseudo-random string for `r` (the same on every run, unlike CloudFormation)."""
    number = int.from_bytes(hashlib.sha256(f"{r.stack}/{r.logical_id}/{purpose}".encode()).digest())
    chars = []
    for _ in range(length):
        number, index = divmod(number, len(alphabet))
        chars.append(alphabet[index])
    return "".join(chars)


def _asset_by_hash(properties: Mapping[str, Any], assets: Mapping[str, Path]) -> Path | None:
    """The asset a resource's properties name by hash (S3Key, ImageUri), when exactly one.

    The fallback for assemblies synthesized without asset metadata.
    """
    text = json.dumps(properties)
    found = {path for asset_hash, path in assets.items() if asset_hash in text}
    return found.pop() if len(found) == 1 else None


def _trimmed_path(path: str) -> str:
    # L2 constructs put their CloudFormation resource at ".../Resource" or ".../Default".
    for leaf in ("/Resource", "/Default"):
        if path.endswith(leaf):
            return path[: -len(leaf)]
    return path


def _environment(environment: str) -> tuple[str | None, str | None]:
    account, _, region = environment.removeprefix("aws://").partition("/")
    return (
        account if account and account != _UNKNOWN[0] else None,
        region if region and region != _UNKNOWN[1] else None,
    )


def _single(values: set[str | None]) -> str | None:
    return next(iter(values)) if len(values) == 1 else None


def _read_json(path: Path, hint: str) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise TemplateError(f"{path} is missing{': ' + hint if hint else ''}") from None

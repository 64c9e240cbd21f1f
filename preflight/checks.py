"""The checks `python -m preflight` runs. Each returns findings; none writes anything.

A check gets its AWS clients from `clients(service_name)` (so tests hand it stubbed ones)
and answers with `Finding`s: what it saw and, for a problem, the command or console page
that fixes it.
"""

from __future__ import annotations

import os
import platform
import stat
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from infra.config import StageConfig
from infra.context import PipelineSettings
from infra.names import (
    ACCESS_KEY_OUTPUT,
    STATELESS,
    TOKEN_OUTPUT,
    pipeline_stage_name,
    stack_name,
)

Status = Literal["ok", "warn", "fail", "skip"]
Clients = Callable[[str], Any]
# Runs a command on this machine: (exit code, output); raises FileNotFoundError if absent.
Runner = Callable[[Sequence[str]], tuple[int, str]]

# Lambda keeps this many concurrent executions unreserved in every account and region.
MIN_UNRESERVED_CONCURRENCY = 100
# New accounts are often held at this much function memory until AWS raises it.
NEW_ACCOUNT_MEMORY_MB = 3008
# What the synthesized stacks require (their CheckBootstrapVersion rule and manifests).
MIN_BOOTSTRAP_VERSION = 6
BOOTSTRAP_STACK = "CDKToolkit"
BOOTSTRAP_VERSION_PARAMETER = "/cdk-bootstrap/hnb659fds/version"
# Lambda's limit on a container image's uncompressed size; the model is most of it.
MAX_IMAGE_BYTES = 10 * 1024**3
# What the image holds besides the model: the Lambda Python base image, the engines and
# their native libraries (about 1 GB), so the model itself must stay this far under 10 GB.
IMAGE_WITHOUT_MODEL_BYTES = 1024**3
# What CloudFront answers an account AWS has not verified yet (the stateless stack then
# rolls back as a whole).
CLOUDFRONT_UNVERIFIED = "Your account must be verified before you can add new CloudFront resources"
# Build hosts that build the linux/amd64 image under emulation (picoLLM has no Linux arm64
# build for Lambda, so the image is amd64 whatever the host).
ARM_MACHINES = ("arm64", "aarch64")
# What the runtime, the engine and a reply's context take beyond the model's own size.
RUNTIME_HEADROOM_MB = 1024
SUPPORT_CASE_URL = (
    "https://console.aws.amazon.com/support/home#/case/create?issueType=service-limit-increase"
)
ACCOUNT_CASE_URL = (
    "https://console.aws.amazon.com/support/home#/case/create?issueType=customer-service"
)
CONNECTIONS_URL = "https://console.aws.amazon.com/codesuite/settings/connections"
READ_ONLY_PREFIXES = ("Get", "Describe", "List", "Head")


@dataclass(frozen=True)
class Finding:
    status: Status
    check: str
    message: str
    fix: str = ""


@dataclass(frozen=True, kw_only=True)
class Plan:
    """What is about to be deployed: the stages' configs, the models, the pipeline."""

    configs: dict[str, StageConfig]
    models_dir: Path
    pipeline: PipelineSettings | None = None

    def deployed_names(self, stage: str) -> list[str]:
        """The stage's own name and, with a pipeline, the pipeline's copy of it."""
        return [stage, pipeline_stage_name(stage)] if self.pipeline else [stage]


class WriteRefused(RuntimeError):
    """The preflight asked AWS for something other than a read (a bug: it never should)."""


def read_only(session: Any) -> Any:
    """Make every client `session` creates refuse any call but Get*/Describe*/List*/Head*."""

    def refuse(model: Any, **_: Any) -> None:
        if not model.name.startswith(READ_ONLY_PREFIXES):
            service = model.service_model.service_name
            raise WriteRefused(f"the preflight only reads; it refused {service}:{model.name}")

    session.events.register("before-call", refuse)
    return session


def run_command(command: Sequence[str]) -> tuple[int, str]:
    """`command`'s exit code and output (a Runner for this machine)."""
    done = subprocess.run(list(command), capture_output=True, text=True, timeout=60)
    return done.returncode, (done.stdout + done.stderr).strip()


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


# Credentials ------------------------------------------------------------------------


def check_identity(clients: Clients, region: str) -> tuple[Finding, str | None]:
    """Who the credentials are; the account id, or None when there are none."""
    try:
        identity = clients("sts").get_caller_identity()
    except (BotoCoreError, ClientError) as error:
        return (
            Finding(
                "fail",
                "credentials",
                f"no usable AWS credentials ({error})",
                "aws configure (or aws sso login --profile NAME, then AWS_PROFILE=NAME)",
            ),
            None,
        )
    account = identity["Account"]
    return Finding("ok", "credentials", f"{identity['Arn']}, region {region}"), account


# CDK bootstrap ----------------------------------------------------------------------


def check_bootstrap(clients: Clients, account: str, region: str) -> list[Finding]:
    fix = f"npx cdk bootstrap aws://{account}/{region}"
    try:
        (stack,) = clients("cloudformation").describe_stacks(StackName=BOOTSTRAP_STACK)["Stacks"]
    except ClientError as error:
        if "does not exist" not in str(error):
            raise
        return [Finding("fail", "bootstrap", f"{region} is not bootstrapped for CDK", fix)]
    status = stack["StackStatus"]
    if not status.endswith("_COMPLETE") or "ROLLBACK" in status:
        return [Finding("fail", "bootstrap", f"the {BOOTSTRAP_STACK} stack is {status}", fix)]
    try:
        parameter = clients("ssm").get_parameter(Name=BOOTSTRAP_VERSION_PARAMETER)["Parameter"]
    except ClientError as error:
        if error_code(error) != "ParameterNotFound":
            raise
        return [Finding("fail", "bootstrap", f"{BOOTSTRAP_VERSION_PARAMETER} is missing", fix)]
    version = int(parameter["Value"])
    if version < MIN_BOOTSTRAP_VERSION:
        return [
            Finding(
                "fail",
                "bootstrap",
                f"bootstrap version {version}; these stacks need {MIN_BOOTSTRAP_VERSION} or later",
                fix,
            )
        ]
    return [Finding("ok", "bootstrap", f"{BOOTSTRAP_STACK} version {version}")]


# Lambda concurrency and memory ------------------------------------------------------


def _stack_functions(clients: Clients, stack: str) -> list[str]:
    """The physical names of the stack's functions, [] when the stack does not exist."""
    try:
        pages = (
            clients("cloudformation")
            .get_paginator("list_stack_resources")
            .paginate(StackName=stack)
        )
        return [
            resource["PhysicalResourceId"]
            for page in pages
            for resource in page["StackResourceSummaries"]
            if resource["ResourceType"] == "AWS::Lambda::Function"
        ]
    except ClientError as error:
        if "does not exist" in str(error):
            return []
        raise


def _reserved_now(clients: Clients, plan: Plan, stage: str) -> int:
    """Concurrency the stage's deployed functions reserve already (counted in the pool)."""
    total = 0
    for name in plan.deployed_names(stage):
        for function in _stack_functions(clients, stack_name(name, STATELESS)):
            answer = clients("lambda").get_function_concurrency(FunctionName=function)
            total += answer.get("ReservedConcurrentExecutions", 0)
    return total


def check_concurrency(clients: Clients, plan: Plan, region: str) -> list[Finding]:
    """Reserved (or provisioned) concurrency must leave 100 executions unreserved."""
    limits = clients("lambda").get_account_settings()["AccountLimit"]
    total, unreserved = limits["ConcurrentExecutions"], limits["UnreservedConcurrentExecutions"]
    needed, parts, provisioned = 0, [], []
    for stage, config in plan.configs.items():
        # Without a reservation, provisioned instances come out of the unreserved pool.
        wanted = config.reserved_concurrency or config.provisioned_concurrency
        if config.provisioned_concurrency:
            provisioned.append(stage)
        if wanted:
            parts.append(f"{stage} {wanted}")
            needed += max(wanted - _reserved_now(clients, plan, stage), 0)
    left = unreserved - needed
    where = f"this account's limit in {region} is {total}, {unreserved} unreserved"
    if needed == 0 or left >= MIN_UNRESERVED_CONCURRENCY:
        wants = ", ".join(parts) or "nothing"
        return [Finding("ok", "concurrency", f"reserves {wants}; {where}")]
    workaround = " ".join(
        ["-c reservedConcurrency=0", *(f"-c {s}.provisionedConcurrency=0" for s in provisioned)]
    )
    quota_url = (
        f"https://{region}.console.aws.amazon.com/servicequotas/home/services/lambda/"
        "quotas/L-B99A9384"
    )
    return [
        Finding(
            "fail",
            "concurrency",
            f"reserving {needed} more concurrent executions ({', '.join(parts)}) would leave "
            f"{left} unreserved; Lambda keeps at least {MIN_UNRESERVED_CONCURRENCY} ({where})",
            f"request more 'Concurrent executions' (quota L-B99A9384) at {quota_url}, "
            f"or deploy with no reservation: {workaround}",
        )
    ]


def check_memory(clients: Clients, plan: Plan, region: str) -> list[Finding]:
    """New accounts may be held at 3,008 MB; no API tells, so look for a larger function."""
    wanted = max(config.inference_memory_mb for config in plan.configs.values())
    if wanted <= NEW_ACCOUNT_MEMORY_MB:
        return [Finding("ok", "memory", f"{wanted} MB fits every account's limit")]
    largest = 0
    for page in clients("lambda").get_paginator("list_functions").paginate():
        largest = max([largest, *(f.get("MemorySize", 0) for f in page["Functions"])])
        if largest >= wanted:
            break
    if largest > NEW_ACCOUNT_MEMORY_MB:
        return [
            Finding(
                "ok", "memory", f"a function in {region} already has {largest} MB ({wanted} wanted)"
            )
        ]
    return [
        Finding(
            "warn",
            "memory",
            f"cannot confirm {wanted} MB: new accounts are often limited to "
            f"{NEW_ACCOUNT_MEMORY_MB} MB (the deploy then fails with \"'MemorySize' value failed "
            'to satisfy constraint") and no function here uses more yet',
            f"ask AWS Support for Lambda memory above {NEW_ACCOUNT_MEMORY_MB} MB in {region} "
            f"({SUPPORT_CASE_URL}), or deploy with -c inferenceMemoryMb={NEW_ACCOUNT_MEMORY_MB} "
            "and a model under about 2 GB",
        )
    ]


# API Gateway's account settings -----------------------------------------------------


def check_api_gateway_logging(clients: Clients, account: str) -> list[Finding]:
    """A WebSocket stage with access logs needs the account's CloudWatch Logs role."""
    fix = "create and set the role: docs/deploy.md, step 3 (Once per account and region)"
    role_arn = clients("apigateway").get_account().get("cloudwatchRoleArn")
    if not role_arn:
        return [
            Finding(
                "fail",
                "api-gateway-logs",
                "API Gateway has no CloudWatch Logs role here, so the stage's access logs "
                "would fail the deploy",
                fix,
            )
        ]
    try:
        clients("iam").get_role(RoleName=role_arn.rsplit("/", 1)[-1])
    except ClientError as error:
        if error_code(error) != "NoSuchEntity":
            raise
        return [Finding("fail", "api-gateway-logs", f"the account's role {role_arn} is gone", fix)]
    return [Finding("ok", "api-gateway-logs", role_arn)]


# The models and Docker on this machine -----------------------------------------------


def check_models(plan: Plan) -> list[Finding]:
    """Each stage's model: present, readable, small enough for the image and the memory."""
    findings = []
    for stage, config in plan.configs.items():
        path = plan.models_dir / config.model_file
        shown = f"lambda_image/models/{config.model_file}"
        if not path.is_file():
            findings.append(
                Finding(
                    "fail",
                    "model",
                    f"{stage}: {shown} is missing, and the image build copies it",
                    "put the model there (lambda_image/models/README.md), or name yours with "
                    "modelFile in llambda.local.json",
                )
            )
            continue
        if not os.access(path, os.R_OK):
            findings.append(
                Finding("fail", "model", f"{stage}: you cannot read {shown}", f"chmod u+r {path}")
            )
            continue
        info = path.stat()
        size_mb = info.st_size / 1024**2
        if info.st_size + IMAGE_WITHOUT_MODEL_BYTES >= MAX_IMAGE_BYTES:
            findings.append(
                Finding(
                    "fail",
                    "model",
                    f"{stage}: {shown} is {size_mb / 1024:.1f} GB, and the image adds about "
                    f"{IMAGE_WITHOUT_MODEL_BYTES / 1024**3:.0f} GB to it; a Lambda image is at "
                    "most 10 GB",
                    "choose a smaller (more compressed) model",
                )
            )
            continue
        if size_mb + RUNTIME_HEADROOM_MB > config.inference_memory_mb:
            findings.append(
                Finding(
                    "fail" if size_mb >= config.inference_memory_mb else "warn",
                    "model",
                    f"{stage}: {shown} ({size_mb:,.0f} MB) leaves under {RUNTIME_HEADROOM_MB} MB "
                    f"of inferenceMemoryMb ({config.inference_memory_mb}) for the runtime",
                    "raise inferenceMemoryMb (up to 10240) or choose a smaller model",
                )
            )
            continue
        mode = stat.S_IMODE(info.st_mode)
        note = "" if mode & stat.S_IROTH else f"; mode {mode:04o} is fine, COPY --chmod=0644"
        findings.append(Finding("ok", "model", f"{stage}: {shown} ({size_mb:,.0f} MB){note}"))
    return findings


def check_docker(run: Runner, machine: str | None = None) -> list[Finding]:
    """CDK builds the image with Docker at deploy time; COPY --chmod needs BuildKit; an
    arm64 host (`machine`, this one's by default) builds the amd64 image under emulation."""
    try:
        code, output = run(["docker", "info", "--format", "{{.ServerVersion}}"])
    except FileNotFoundError:
        return [
            Finding(
                "fail",
                "docker",
                "docker is not installed; cdk deploy builds the inference image with it",
                "install Docker (docs.docker.com/get-docker)",
            )
        ]
    if code != 0:
        return [
            Finding(
                "fail",
                "docker",
                f"the Docker daemon does not answer: {output.splitlines()[-1] if output else code}",
                "start Docker",
            )
        ]
    findings = [Finding("ok", "docker", f"Docker {output}")]
    code, _ = run(["docker", "buildx", "version"])
    if code != 0:
        findings.append(
            Finding(
                "warn",
                "docker",
                "BuildKit (docker buildx) is missing; the Dockerfile's COPY --chmod needs it",
                "use Docker 23 or later, or install the buildx plugin",
            )
        )
    machine = machine or platform.machine()
    if machine.lower() in ARM_MACHINES:
        findings.append(
            Finding(
                "warn",
                "docker",
                f"this machine is {machine}: the inference image is linux/amd64 (picoLLM has "
                "no Linux arm64 build for Lambda), so Docker builds it under emulation, "
                "which is slow (llama.cpp compiles under QEMU) and needs QEMU/binfmt "
                "(Docker Desktop has it; on Linux: docker run --privileged --rm "
                "tonistiigi/binfmt --install amd64)",
                "deploy from an x86-64 machine, or let the pipeline build the image "
                "(docs/deploy.md)",
            )
        )
    return findings


# CloudFront on a new account ----------------------------------------------------------


def check_cloudfront(clients: Clients, plan: Plan) -> list[Finding]:
    """A new account may not create a distribution until AWS verifies it; no API says
    whether it is, so look for a distribution that already exists."""
    hosted = [stage for stage, config in plan.configs.items() if config.hosting]
    if not hosted:
        return [Finding("ok", "cloudfront", "hosting=false: the stages create no CloudFront")]
    listed = clients("cloudfront").list_distributions(MaxItems="1")["DistributionList"]
    if listed.get("Quantity", 0) > 0:
        return [
            Finding(
                "ok", "cloudfront", "the account has a CloudFront distribution, so it is verified"
            )
        ]
    return [
        Finding(
            "warn",
            "cloudfront",
            f"cannot confirm CloudFront for {', '.join(hosted)}: a new account may get "
            f'"{CLOUDFRONT_UNVERIFIED}", and the whole stateless stack rolls back; the '
            "account has no distribution yet to prove otherwise",
            "ask AWS Support (an 'Account and billing' case) to verify the account for "
            f"CloudFront at {ACCOUNT_CASE_URL}, or deploy without the hosted page: "
            "-c hosting=false, and serve it from web_client/ (docs/deploy.md, "
            "'Without CloudFront')",
        )
    ]


# The stages once deployed ------------------------------------------------------------


def _outputs(clients: Clients, stack: str) -> dict[str, str] | None:
    try:
        (described,) = clients("cloudformation").describe_stacks(StackName=stack)["Stacks"]
    except ClientError as error:
        if "does not exist" in str(error):
            return None
        raise
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def check_secrets(clients: Clients, plan: Plan) -> list[Finding]:
    """After the first deploy: is the AccessKey in its secret yet? Where is the token?"""
    findings: list[Finding] = []
    for stage, config in plan.configs.items():
        deployed = False
        for name in plan.deployed_names(stage):
            stack = stack_name(name, STATELESS)
            outputs = _outputs(clients, stack)
            if outputs is None:
                continue
            deployed = True
            findings.extend(_secret_findings(clients, stack, config, outputs))
        if not deployed:
            findings.append(
                Finding(
                    "skip",
                    "secrets",
                    f"{stage} is not deployed yet; run the preflight again after its first "
                    "deploy to check its AccessKey",
                )
            )
    return findings


def _secret_findings(
    clients: Clients, stack: str, config: StageConfig, outputs: dict[str, str]
) -> Iterable[Finding]:
    arn = outputs.get(ACCESS_KEY_OUTPUT)
    if config.engine != "picollm":
        yield Finding("ok", "secrets", f"{stack}: engine {config.engine} needs no AccessKey")
    elif not arn:
        yield Finding("warn", "secrets", f"{stack} has no {ACCESS_KEY_OUTPUT} output yet")
    else:
        secret = clients("secretsmanager").describe_secret(SecretId=arn)
        # The stack creates the secret with one generated version; a put adds another.
        if len(secret.get("VersionIdsToStages", {})) <= 1:
            yield Finding(
                "fail",
                "secrets",
                f"{stack}: the AccessKey secret still holds the placeholder the stack "
                "created, so picoLLM cannot start",
                f"aws secretsmanager put-secret-value --secret-id {arn} "
                '--secret-string "$PICOVOICE_ACCESS_KEY"',
            )
        else:
            changed = secret.get("LastChangedDate")
            when = f" (changed {changed:%Y-%m-%d})" if changed else ""
            yield Finding("ok", "secrets", f"{stack}: the AccessKey is set{when}")
    token = outputs.get(TOKEN_OUTPUT)
    if token:
        yield Finding(
            "ok",
            "secrets",
            f"{stack}: clients need the token: aws secretsmanager get-secret-value "
            f"--secret-id {token} --query SecretString --output text",
        )


# The pipeline ------------------------------------------------------------------------


def check_pipeline(clients: Clients, plan: Plan) -> list[Finding]:
    """The source connection is ready, and each stage's model is where the build looks."""
    if plan.pipeline is None:
        return []
    settings = plan.pipeline
    arn = settings.connection_arn
    service = "codeconnections" if ":codeconnections:" in arn else "codestar-connections"
    status = clients(service).get_connection(ConnectionArn=arn)["Connection"]["ConnectionStatus"]
    findings = [
        Finding("ok", "pipeline", f"connection {arn} is AVAILABLE")
        if status == "AVAILABLE"
        else Finding(
            "fail",
            "pipeline",
            f"connection {arn} is {status}: a new connection waits for its handshake",
            f"choose 'Update pending connection' at {CONNECTIONS_URL}",
        )
    ]
    for model_file in sorted({config.model_file for config in plan.configs.values()}):
        findings.append(_model_source_finding(clients, settings.model_url(model_file)))
    return findings


def _model_source_finding(clients: Clients, url: str) -> Finding:
    if not url.startswith("s3://"):
        return Finding("skip", "pipeline", f"{url} is not checked (only s3:// sources are)")
    bucket, _, key = url.removeprefix("s3://").partition("/")
    try:
        head = clients("s3").head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        code = error_code(error)
        if code in ("404", "NoSuchKey", "NoSuchBucket"):
            return Finding(
                "fail",
                "pipeline",
                f"{url} does not exist; the pipeline's image build fetches the model there",
                f"aws s3 cp lambda_image/models/{key.rsplit('/', 1)[-1]} {url}",
            )
        return Finding("warn", "pipeline", f"cannot read {url} yourself ({code})")
    return Finding("ok", "pipeline", f"{url} ({head['ContentLength'] / 1024**2:,.0f} MB)")


# All of them -------------------------------------------------------------------------


def run_checks(*, clients: Clients, region: str | None, plan: Plan, run: Runner) -> list[Finding]:
    """Every check, in the order a first deploy meets them."""
    local = [*check_models(plan), *check_docker(run)]
    if not region:
        missing = Finding(
            "fail",
            "credentials",
            "no AWS region is set",
            "aws configure set region REGION (or export AWS_DEFAULT_REGION=REGION)",
        )
        return [missing, *local]
    identity, account = check_identity(clients, region)
    if account is None:
        return [identity, *local]
    checks: list[tuple[str, Callable[[], list[Finding]]]] = [
        ("bootstrap", lambda: check_bootstrap(clients, account, region)),
        ("concurrency", lambda: check_concurrency(clients, plan, region)),
        ("memory", lambda: check_memory(clients, plan, region)),
        ("api-gateway-logs", lambda: check_api_gateway_logging(clients, account)),
        ("cloudfront", lambda: check_cloudfront(clients, plan)),
    ]
    remote: list[Finding] = []
    for name, check in checks:
        remote.extend(_guarded(name, check))
    after = [
        *_guarded("secrets", lambda: check_secrets(clients, plan)),
        *_guarded("pipeline", lambda: check_pipeline(clients, plan)),
    ]
    return [identity, *remote, *local, *after]


def _guarded(name: str, check: Callable[[], list[Finding]]) -> list[Finding]:
    """A check's findings, or one saying why the account could not be read."""
    try:
        return check()
    except ClientError as error:
        operation = error.operation_name
        return [
            Finding(
                "warn",
                name,
                f"could not read the account: {error_code(error)} on {operation}",
                "use credentials that may read it (e.g. the ReadOnlyAccess policy)",
            )
        ]
    except BotoCoreError as error:
        return [Finding("warn", name, f"could not reach AWS: {error}")]

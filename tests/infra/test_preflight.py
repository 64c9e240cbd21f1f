"""`python -m preflight` (issue 13, #11): one test per outcome of each check, against
botocore's Stubber (the exact calls and answers) or moto (Secrets Manager's versions,
CloudFormation, SSM, API Gateway), and proof that it can only read."""

from __future__ import annotations

import datetime
import json

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from infra.config import DEV, PROD
from infra.context import pipeline_settings, stage_configs
from preflight import __main__ as cli
from preflight.checks import (
    MIN_BOOTSTRAP_VERSION,
    Finding,
    Plan,
    WriteRefused,
    check_api_gateway_logging,
    check_bootstrap,
    check_cloudfront,
    check_concurrency,
    check_docker,
    check_memory,
    check_models,
    check_pipeline,
    check_secrets,
    read_only,
    run_checks,
)
from tests.infra.conftest import PIPELINE_CONTEXT

REGION = "eu-west-1"
ACCOUNT = "123456789012"
SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:InferenceAccessKey-AbCdEf"
TOKEN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:AuthorizerToken-AbCdEf"
CONNECTION = PIPELINE_CONTEXT["connectionArn"]
NOW = datetime.datetime(2026, 11, 29, tzinfo=datetime.UTC)


class StubbedAws:
    """Clients by service name, each behind a Stubber, from a read-only session."""

    def __init__(self) -> None:
        self.session = read_only(
            boto3.Session(
                region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
            )
        )
        self.clients: dict[str, object] = {}
        self.stubs: dict[str, Stubber] = {}

    def __call__(self, service: str):
        if service not in self.clients:
            client = self.session.client(service)
            stub = Stubber(client)
            stub.activate()
            self.clients[service], self.stubs[service] = client, stub
        return self.clients[service]

    def on(self, service: str) -> Stubber:
        self(service)
        return self.stubs[service]

    def missing_stack(self, name: str, operation: str = "describe_stacks") -> None:
        self.on("cloudformation").add_client_error(
            operation,
            service_error_code="ValidationError",
            service_message=f"Stack with id {name} does not exist",
            expected_params={"StackName": name},
        )

    def stack(self, name: str, *, outputs: dict[str, str] | None = None, status="CREATE_COMPLETE"):
        self.on("cloudformation").add_response(
            "describe_stacks",
            {
                "Stacks": [
                    {
                        "StackName": name,
                        "CreationTime": NOW,
                        "StackStatus": status,
                        "Outputs": [
                            {"OutputKey": k, "OutputValue": v} for k, v in (outputs or {}).items()
                        ],
                    }
                ]
            },
            {"StackName": name},
        )

    def done(self) -> None:
        for stub in self.stubs.values():
            stub.assert_no_pending_responses()


@pytest.fixture
def aws():
    stubbed = StubbedAws()
    yield stubbed
    stubbed.done()


def plan(tmp_path, context=None, *, stages=("Dev", "Prod"), pipeline=False) -> Plan:
    configs = stage_configs(context or {})
    return Plan(
        configs={name: configs[name] for name in stages},
        models_dir=tmp_path,
        pipeline=pipeline_settings(PIPELINE_CONTEXT) if pipeline else None,
    )


def only(findings: list[Finding]) -> Finding:
    (finding,) = findings
    return finding


# Read only ---------------------------------------------------------------------------


def test_the_session_refuses_any_call_that_is_not_a_read():
    session = read_only(
        boto3.Session(region_name=REGION, aws_access_key_id="x", aws_secret_access_key="y")
    )
    with pytest.raises(WriteRefused, match="s3:PutObject"):
        session.client("s3").put_object(Bucket="b", Key="k", Body=b"x")
    with pytest.raises(WriteRefused, match="lambda:PutFunctionConcurrency"):
        session.client("lambda").put_function_concurrency(
            FunctionName="f", ReservedConcurrentExecutions=1
        )
    with mock_aws():
        assert session.client("sts").get_caller_identity()["Account"] == ACCOUNT


def test_every_call_the_checks_make_is_a_read():
    import inspect

    from preflight import checks

    source = inspect.getsource(checks)
    import re

    calls = set(re.findall(r'clients\("[\w-]+"\)\.(\w+)\(', source))
    calls |= set(re.findall(r'get_paginator\("(\w+)"\)', source))
    assert calls and all(c.startswith(("get_", "describe_", "list_", "head_")) for c in calls)


# Credentials and region --------------------------------------------------------------


def test_no_region_fails_and_skips_the_account(tmp_path, aws):
    findings = run_checks(clients=aws, region=None, plan=plan(tmp_path), run=docker_ok)
    assert findings[0].status == "fail" and "region" in findings[0].message
    assert "AWS_DEFAULT_REGION" in findings[0].fix
    assert {f.check for f in findings} == {"credentials", "model", "docker"}


def test_expired_credentials_fail_and_skip_the_account(tmp_path, aws):
    aws.on("sts").add_client_error("get_caller_identity", "ExpiredToken", "expired")
    findings = run_checks(clients=aws, region=REGION, plan=plan(tmp_path), run=docker_ok)
    assert findings[0].status == "fail" and "ExpiredToken" in findings[0].message
    assert "aws sso login" in findings[0].fix
    assert {f.check for f in findings} == {"credentials", "model", "docker"}


# Bootstrap ---------------------------------------------------------------------------


def test_an_unbootstrapped_region_fails_with_the_bootstrap_command(aws):
    aws.missing_stack("CDKToolkit")
    finding = only(check_bootstrap(aws, ACCOUNT, REGION))
    assert finding.status == "fail"
    assert finding.fix == f"npx cdk bootstrap aws://{ACCOUNT}/{REGION}"


def test_a_rolled_back_bootstrap_fails(aws):
    aws.stack("CDKToolkit", status="UPDATE_ROLLBACK_COMPLETE")
    assert only(check_bootstrap(aws, ACCOUNT, REGION)).status == "fail"


@pytest.mark.parametrize(("version", "status"), [("5", "fail"), ("6", "ok"), ("28", "ok")])
def test_the_bootstrap_version_must_be_recent_enough(aws, version, status):
    aws.stack("CDKToolkit")
    aws.on("ssm").add_response(
        "get_parameter",
        {"Parameter": {"Name": "/cdk-bootstrap/hnb659fds/version", "Value": version}},
        {"Name": "/cdk-bootstrap/hnb659fds/version"},
    )
    assert only(check_bootstrap(aws, ACCOUNT, REGION)).status == status


def test_the_minimum_bootstrap_version_is_what_the_stacks_require(synthesized):
    manifest = json.loads((synthesized.outdir / "assembly-Dev" / "manifest.json").read_text())
    required = {
        artifact["properties"]["requiresBootstrapStackVersion"]
        for artifact in manifest["artifacts"].values()
        if artifact["type"] == "aws:cloudformation:stack"
    }
    assert required == {MIN_BOOTSTRAP_VERSION}


# Concurrency -------------------------------------------------------------------------


def account_settings(aws, *, limit: int, unreserved: int) -> None:
    aws.on("lambda").add_response(
        "get_account_settings",
        {
            "AccountLimit": {
                "ConcurrentExecutions": limit,
                "UnreservedConcurrentExecutions": unreserved,
            }
        },
        {},
    )


def test_a_new_accounts_concurrency_quota_fails_with_the_quota_page_and_a_workaround(tmp_path, aws):
    account_settings(aws, limit=10, unreserved=10)
    aws.missing_stack("Dev-Stateless", "list_stack_resources")
    aws.missing_stack("Prod-Stateless", "list_stack_resources")
    finding = only(check_concurrency(aws, plan(tmp_path), REGION))
    assert finding.status == "fail"
    assert "reserving 12 more concurrent executions (Dev 2, Prod 10)" in finding.message
    assert "leave -2 unreserved; Lambda keeps at least 100" in finding.message
    assert (
        f"https://{REGION}.console.aws.amazon.com/servicequotas/home/services/lambda/quotas/L-B99A9384"
        in finding.fix
    )
    assert "-c reservedConcurrency=0" in finding.fix
    assert "-c Prod.provisionedConcurrency=0" in finding.fix


def test_enough_concurrency_passes(tmp_path, aws):
    account_settings(aws, limit=1000, unreserved=1000)
    aws.missing_stack("Dev-Stateless", "list_stack_resources")
    aws.missing_stack("Prod-Stateless", "list_stack_resources")
    assert only(check_concurrency(aws, plan(tmp_path), REGION)).status == "ok"


def test_no_reservation_needs_no_headroom(tmp_path, aws):
    account_settings(aws, limit=10, unreserved=10)
    context = {"reservedConcurrency": "0", "provisionedConcurrency": "0"}
    finding = only(check_concurrency(aws, plan(tmp_path, context), REGION))
    assert finding.status == "ok" and "reserves nothing" in finding.message


def test_a_deployed_stages_own_reservation_is_not_counted_twice(tmp_path, aws):
    # Dev already reserves its 2: the 100 left unreserved are still 100.
    account_settings(aws, limit=102, unreserved=100)
    aws.on("cloudformation").add_response(
        "list_stack_resources",
        {
            "StackResourceSummaries": [
                {
                    "LogicalResourceId": "InferenceFunction",
                    "PhysicalResourceId": "Dev-Stateless-InferenceFunction-abc",
                    "ResourceType": "AWS::Lambda::Function",
                    "LastUpdatedTimestamp": NOW,
                    "ResourceStatus": "CREATE_COMPLETE",
                }
            ]
        },
        {"StackName": "Dev-Stateless"},
    )
    aws.on("lambda").add_response(
        "get_function_concurrency",
        {"ReservedConcurrentExecutions": 2},
        {"FunctionName": "Dev-Stateless-InferenceFunction-abc"},
    )
    assert only(check_concurrency(aws, plan(tmp_path, stages=("Dev",)), REGION)).status == "ok"


# Memory ------------------------------------------------------------------------------


def test_memory_within_every_accounts_limit_needs_no_call(tmp_path, aws):
    finding = only(check_memory(aws, plan(tmp_path, {"inferenceMemoryMb": "3008"}), REGION))
    assert finding.status == "ok"


def test_a_larger_function_in_the_region_proves_the_limit_was_raised(tmp_path, aws):
    aws.on("lambda").add_response(
        "list_functions", {"Functions": [{"FunctionName": "big", "MemorySize": 10240}]}, {}
    )
    assert only(check_memory(aws, plan(tmp_path), REGION)).status == "ok"


def test_unproven_memory_warns_with_the_support_case_and_a_smaller_setting(tmp_path, aws):
    aws.on("lambda").add_response(
        "list_functions", {"Functions": [{"FunctionName": "s", "MemorySize": 512}]}, {}
    )
    finding = only(check_memory(aws, plan(tmp_path), REGION))
    assert finding.status == "warn" and "3008 MB" in finding.message
    assert "issueType=service-limit-increase" in finding.fix
    assert "-c inferenceMemoryMb=3008" in finding.fix


# API Gateway's CloudWatch Logs role ---------------------------------------------------


def test_no_api_gateway_logs_role_fails_pointing_at_the_commands(aws):
    aws.on("apigateway").add_response("get_account", {}, {})
    finding = only(check_api_gateway_logging(aws, ACCOUNT))
    assert finding.status == "fail" and "docs/deploy.md" in finding.fix


def test_an_api_gateway_logs_role_that_exists_passes(aws):
    role = f"arn:aws:iam::{ACCOUNT}:role/apigateway-cloudwatch-logs"
    aws.on("apigateway").add_response("get_account", {"cloudwatchRoleArn": role}, {})
    aws.on("iam").add_response(
        "get_role",
        {
            "Role": {
                "Path": "/",
                "RoleName": "apigateway-cloudwatch-logs",
                "RoleId": "AROAEXAMPLEEXAMPLE123",
                "Arn": role,
                "CreateDate": NOW,
            }
        },
        {"RoleName": "apigateway-cloudwatch-logs"},
    )
    assert only(check_api_gateway_logging(aws, ACCOUNT)).status == "ok"


def test_a_deleted_api_gateway_logs_role_fails(aws):
    role = f"arn:aws:iam::{ACCOUNT}:role/gone"
    aws.on("apigateway").add_response("get_account", {"cloudwatchRoleArn": role}, {})
    aws.on("iam").add_client_error("get_role", "NoSuchEntity", "no role", 404)
    assert only(check_api_gateway_logging(aws, ACCOUNT)).status == "fail"


def test_a_check_the_credentials_may_not_read_warns_and_the_rest_go_on(tmp_path, aws):
    aws.on("sts").add_response(
        "get_caller_identity",
        {"Account": ACCOUNT, "Arn": f"arn:aws:iam::{ACCOUNT}:user/me", "UserId": "AIDAEXAMPLE"},
        {},
    )
    aws.on("cloudformation").add_client_error("describe_stacks", "AccessDenied", "no", 403)
    aws.on("lambda").add_client_error("get_account_settings", "AccessDeniedException", "no", 403)
    aws.on("lambda").add_client_error("list_functions", "AccessDeniedException", "no", 403)
    aws.on("apigateway").add_client_error("get_account", "AccessDeniedException", "no", 403)
    aws.on("cloudfront").add_client_error("list_distributions", "AccessDenied", "no", 403)
    aws.on("cloudformation").add_client_error("describe_stacks", "AccessDenied", "no", 403)
    findings = run_checks(
        clients=aws, region=REGION, plan=plan(tmp_path, stages=("Dev",)), run=docker_ok
    )
    by_check = {f.check: f for f in findings}
    assert by_check["bootstrap"].status == "warn"
    assert "AccessDenied on DescribeStacks" in by_check["bootstrap"].message
    assert by_check["concurrency"].status == by_check["memory"].status == "warn"
    assert by_check["api-gateway-logs"].status == by_check["cloudfront"].status == "warn"
    assert by_check["secrets"].status == "warn"
    assert by_check["credentials"].status == "ok"


# The model files ---------------------------------------------------------------------


def model(tmp_path, name: str, size: int, mode: int = 0o644):
    path = tmp_path / name
    with open(path, "wb") as handle:
        handle.truncate(size)  # sparse: no disk used
    path.chmod(mode)
    return path


def test_a_missing_model_fails_and_says_where_to_put_it(tmp_path):
    finding = only(check_models(plan(tmp_path, stages=("Dev",))))
    assert finding.status == "fail"
    assert "lambda_image/models/model.pllm is missing" in finding.message
    assert "llambda.local.json" in finding.fix


def test_a_private_model_is_fine_as_the_image_makes_it_readable(tmp_path):
    model(tmp_path, "model.pllm", 2 * 1024**3, mode=0o600)
    finding = only(check_models(plan(tmp_path, stages=("Dev",))))
    assert finding.status == "ok" and "mode 0600 is fine, COPY --chmod=0644" in finding.message


def test_a_model_you_cannot_read_fails(tmp_path, monkeypatch):
    from preflight import checks

    model(tmp_path, "model.pllm", 1024, mode=0o000)
    monkeypatch.setattr(checks.os, "access", lambda path, mode: False)  # as a non-root user
    finding = only(check_models(plan(tmp_path, stages=("Dev",))))
    assert finding.status == "fail" and finding.fix.startswith("chmod u+r ")


@pytest.mark.parametrize(
    ("size_mb", "memory", "status", "words"),
    [
        (11 * 1024, "10240", "fail", "a Lambda image is at most 10 GB"),
        # The image adds about 1 GB: a 9.3 GB model makes an image over 10 GB.
        (9500, "10240", "fail", "the image adds about 1 GB to it"),
        (3100, "3008", "fail", "leaves under 1024 MB"),
        (8500, "9000", "warn", "leaves under 1024 MB"),
        (1900, "3008", "ok", "1,900 MB"),
    ],
)
def test_a_model_must_fit_the_image_and_the_memory(tmp_path, size_mb, memory, status, words):
    model(tmp_path, "model.pllm", size_mb * 1024**2)
    context = {"inferenceMemoryMb": memory}
    finding = only(check_models(plan(tmp_path, context, stages=("Dev",))))
    assert finding.status == status and words in finding.message


# Docker ------------------------------------------------------------------------------


def docker_ok(command):
    return (0, "27.3.1") if command[:2] == ["docker", "info"] else (0, "buildx v0.17")


def test_docker_running_with_buildkit_passes():
    assert only(check_docker(docker_ok, "x86_64")) == Finding("ok", "docker", "Docker 27.3.1")


@pytest.mark.parametrize("machine", ["arm64", "aarch64"])
def test_an_arm64_build_host_warns_that_the_image_builds_under_emulation(machine):
    ok, warning = check_docker(docker_ok, machine)
    assert ok.status == "ok" and warning.status == "warn"
    assert "linux/amd64" in warning.message and "emulation" in warning.message
    assert "pipeline" in warning.fix


def test_no_docker_fails():
    def absent(command):
        raise FileNotFoundError(command[0])

    assert only(check_docker(absent, "x86_64")).status == "fail"


def test_a_stopped_docker_daemon_fails():
    def stopped(command):
        return 1, "Cannot connect to the Docker daemon at unix:///var/run/docker.sock."

    finding = only(check_docker(stopped, "x86_64"))
    assert finding.status == "fail" and "Cannot connect" in finding.message


def test_docker_without_buildkit_warns_for_copy_chmod():
    def old(command):
        return (0, "20.10.7") if command[:2] == ["docker", "info"] else (1, "unknown command")

    ok, warning = check_docker(old, "x86_64")
    assert ok.status == "ok" and warning.status == "warn" and "COPY --chmod" in warning.message


# CloudFront ----------------------------------------------------------------------------


def test_an_account_with_no_distribution_warns_with_the_way_around(tmp_path, aws):
    aws.on("cloudfront").add_response(
        "list_distributions",
        {"DistributionList": {"Marker": "", "MaxItems": 1, "IsTruncated": False, "Quantity": 0}},
        {"MaxItems": "1"},
    )
    finding = only(check_cloudfront(aws, plan(tmp_path)))
    assert finding.status == "warn"
    assert "Your account must be verified" in finding.message  # the error users search for
    assert "-c hosting=false" in finding.fix and "Account and billing" in finding.fix


def test_an_existing_distribution_shows_the_account_may_use_cloudfront(tmp_path, aws):
    aws.on("cloudfront").add_response(
        "list_distributions",
        {"DistributionList": {"Marker": "", "MaxItems": 1, "IsTruncated": True, "Quantity": 1}},
        {"MaxItems": "1"},
    )
    assert only(check_cloudfront(aws, plan(tmp_path))).status == "ok"


def test_without_hosting_cloudfront_is_not_asked(tmp_path, aws):
    finding = only(check_cloudfront(aws, plan(tmp_path, {"hosting": "false"})))
    assert finding.status == "ok" and "hosting=false" in finding.message


# Secrets, after the first deploy -------------------------------------------------------


def test_secrets_before_the_first_deploy_are_skipped(tmp_path, aws):
    aws.missing_stack("Dev-Stateless")
    finding = only(check_secrets(aws, plan(tmp_path, stages=("Dev",))))
    assert finding.status == "skip" and "after its first deploy" in finding.message


def describe_secret(aws, versions: int) -> None:
    aws.on("secretsmanager").add_response(
        "describe_secret",
        {
            "ARN": SECRET,
            "LastChangedDate": NOW,
            "VersionIdsToStages": {
                f"{i:08d}-0000-0000-0000-000000000000": ["AWSCURRENT"] for i in range(versions)
            },
        },
        {"SecretId": SECRET},
    )


def test_the_placeholder_access_key_fails_with_the_put_command(tmp_path, aws):
    aws.stack("Dev-Stateless", outputs={"AccessKeySecretArn": SECRET})
    describe_secret(aws, 1)
    finding = only(check_secrets(aws, plan(tmp_path, stages=("Dev",))))
    assert finding.status == "fail" and "placeholder" in finding.message
    assert finding.fix == (
        f"aws secretsmanager put-secret-value --secret-id {SECRET} "
        '--secret-string "$PICOVOICE_ACCESS_KEY"'
    )


def test_a_stored_access_key_passes_and_the_token_is_pointed_at(tmp_path, aws):
    aws.stack("Prod-Stateless", outputs={"AccessKeySecretArn": SECRET, "TokenSecretArn": TOKEN})
    describe_secret(aws, 2)
    key, token = check_secrets(aws, plan(tmp_path, stages=("Prod",)))
    assert key.status == "ok" and "changed 2026-11-29" in key.message
    assert token.status == "ok" and f"--secret-id {TOKEN}" in token.message


def test_llama_cpp_needs_no_access_key(tmp_path, aws):
    aws.stack("Dev-Stateless", outputs={"AccessKeySecretArn": SECRET})
    context = {"engine": "llamacpp", "modelFile": "m.gguf"}
    finding = only(check_secrets(aws, plan(tmp_path, context, stages=("Dev",))))
    assert finding.status == "ok" and "needs no AccessKey" in finding.message


def test_the_pipelines_copy_of_a_stage_is_checked_too(tmp_path, aws):
    aws.missing_stack("Dev-Stateless")
    aws.stack("Pipeline-Dev-Stateless", outputs={"AccessKeySecretArn": SECRET})
    describe_secret(aws, 1)
    finding = only(check_secrets(aws, plan(tmp_path, stages=("Dev",), pipeline=True)))
    assert finding.status == "fail" and finding.message.startswith("Pipeline-Dev-Stateless")


def test_the_placeholder_rule_matches_secrets_managers_versions(tmp_path):
    """moto: a created secret has one version; put-secret-value makes it two."""
    with mock_aws():
        session = read_only(boto3.Session(region_name=REGION))
        clients = session.client
        writer = boto3.client("secretsmanager", region_name=REGION)
        arn = writer.create_secret(Name="AccessKey", SecretString="generated")["ARN"]
        boto3.client("cloudformation", region_name=REGION).create_stack(
            StackName="Dev-Stateless",
            TemplateBody=json.dumps(
                {
                    "Resources": {"T": {"Type": "AWS::SNS::Topic"}},
                    "Outputs": {"AccessKeySecretArn": {"Value": arn}},
                }
            ),
        )
        before = only(check_secrets(clients, plan(tmp_path, stages=("Dev",))))
        writer.put_secret_value(SecretId=arn, SecretString="the-real-key")
        after = only(check_secrets(clients, plan(tmp_path, stages=("Dev",))))
    assert (before.status, after.status) == ("fail", "ok")


# The pipeline ------------------------------------------------------------------------


def connection(aws, status: str, service: str = "codestar-connections") -> None:
    aws.on(service).add_response(
        "get_connection",
        {"Connection": {"ConnectionArn": CONNECTION, "ConnectionStatus": status}},
        {"ConnectionArn": CONNECTION},
    )


def head(aws, key: str, size: int = 2 * 1024**3) -> None:
    aws.on("s3").add_response(
        "head_object", {"ContentLength": size}, {"Bucket": "example-models", "Key": key}
    )


def test_no_pipeline_no_pipeline_checks(tmp_path, aws):
    assert check_pipeline(aws, plan(tmp_path)) == []


def test_a_pending_connection_fails_with_the_console_page(tmp_path, aws):
    connection(aws, "PENDING")
    head(aws, "llambda/model.pllm")
    pending, model_found = check_pipeline(aws, plan(tmp_path, pipeline=True))
    assert pending.status == "fail" and "PENDING" in pending.message
    assert "codesuite/settings/connections" in pending.fix
    assert model_found.status == "ok" and "2,048 MB" in model_found.message


def test_a_model_missing_from_the_model_source_fails_with_the_upload_command(tmp_path, aws):
    connection(aws, "AVAILABLE")
    aws.on("s3").add_client_error("head_object", "404", "Not Found", 404)
    ready, missing = check_pipeline(aws, plan(tmp_path, pipeline=True))
    assert ready.status == "ok"
    assert missing.status == "fail"
    assert (
        missing.fix
        == "aws s3 cp lambda_image/models/model.pllm s3://example-models/llambda/model.pllm"
    )


def test_a_model_source_you_may_not_read_only_warns(tmp_path, aws):
    connection(aws, "AVAILABLE")
    aws.on("s3").add_client_error("head_object", "403", "Forbidden", 403)
    _, forbidden = check_pipeline(aws, plan(tmp_path, pipeline=True))
    assert forbidden.status == "warn"


def test_codeconnections_arns_and_https_sources(tmp_path, aws):
    arn = "arn:aws:codeconnections:eu-west-1:123456789012:connection/abc"
    settings = pipeline_settings(
        {**PIPELINE_CONTEXT, "connectionArn": arn, "modelSource": "https://h.example/m/"}
    )
    aws.on("codeconnections").add_response(
        "get_connection",
        {"Connection": {"ConnectionArn": arn, "ConnectionStatus": "AVAILABLE"}},
        {"ConnectionArn": arn},
    )
    configs = stage_configs({})
    findings = check_pipeline(aws, Plan(configs=configs, models_dir=tmp_path, pipeline=settings))
    assert [f.status for f in findings] == ["ok", "skip"]


# The command -------------------------------------------------------------------------


class MotoWithStubbedLambda:
    """A boto3 session on moto, but Lambda's account settings (moto lacks them) stubbed."""

    def __init__(self, *, unreserved: int) -> None:
        self._session = boto3.Session(region_name=REGION)
        self.events = self._session.events
        self.region_name = REGION
        self.unreserved = unreserved

    def client(self, service: str):
        client = self._session.client(service)
        if service == "lambda":
            stub = Stubber(client)
            stub.add_response(
                "get_account_settings",
                {
                    "AccountLimit": {
                        "ConcurrentExecutions": self.unreserved,
                        "UnreservedConcurrentExecutions": self.unreserved,
                    }
                },
                {},
            )
            stub.add_response("list_functions", {"Functions": []}, {})
            stub.activate()
        return client


def bootstrapped_account() -> None:
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName="CDKToolkit",
        TemplateBody=json.dumps({"Resources": {"T": {"Type": "AWS::SNS::Topic"}}}),
    )
    boto3.client("ssm", region_name=REGION).put_parameter(
        Name="/cdk-bootstrap/hnb659fds/version", Value="28", Type="String"
    )
    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(RoleName="apigw-logs", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    boto3.client("apigateway", region_name=REGION).update_account(
        patchOperations=[{"op": "replace", "path": "/cloudwatchRoleArn", "value": role}]
    )


def test_make_preflight_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "LAMBDA_IMAGE_DIR", tmp_path)
    (tmp_path / "models").mkdir()
    model(tmp_path / "models", "model.pllm", 1024**3)
    monkeypatch.setattr(cli, "LOCAL_SETTINGS", tmp_path / "absent.json")
    args = ["--stage", "Dev", "-c", "inferenceMemoryMb=3008"]
    with mock_aws():
        bootstrapped_account()
        code = cli.main(args, session=MotoWithStubbedLambda(unreserved=10), run=docker_ok)
        out = capsys.readouterr().out
        assert code == 1, out  # 10 concurrent executions cannot reserve Dev's 2
        assert "FAIL  concurrency" in out and "fix: request more 'Concurrent executions'" in out
        # The workaround the fix names, as it names it.
        workaround = out.split("deploy with no reservation: ", 1)[1].split("\n", 1)[0].split()
        assert workaround == ["-c", "reservedConcurrency=0", "-c", "Dev.provisionedConcurrency=0"]
        code = cli.main(
            [*args, *workaround],
            session=MotoWithStubbedLambda(unreserved=10),
            run=docker_ok,
        )
        out = capsys.readouterr().out
    assert code == 0, out
    for line in ("ok    credentials", "ok    bootstrap", "ok    api-gateway-logs", "ok    model"):
        assert line in out
    assert "--    secrets" in out and "Nothing here would fail a deploy" in out


def test_a_bad_setting_exits_2_before_any_call(capsys):
    assert cli.main(["-c", "Prod.provisionedConcurrency=50"], session=object()) == 2
    assert "provisionedConcurrency (50) must not exceed" in capsys.readouterr().err
    assert cli.main(["-c", "reservedConcurrency"], session=object()) == 2


def test_the_command_uses_the_apps_settings(tmp_path):
    local = {"modelFile": "local.pllm", "Prod.alarmEmail": "me@example.com"}
    context = cli.app_context({"context": {"modelFile": "shared.pllm"}}, ["engine=picollm"], local)
    configs = stage_configs(context)
    assert configs["Dev"].model_file == "shared.pllm"  # cdk.json wins over the local file
    assert configs["Prod"].alarm_email == "me@example.com"
    assert (DEV.stage_name, PROD.stage_name) == ("Dev", "Prod")

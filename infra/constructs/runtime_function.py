"""A small zip function running one entry point of the `llambda` runtime package.

The router, the dispatch-failure handler and the authorizer are all packaged this way:
the `llambda` package from `lambda_image/` (no models, no engines' native libraries), on
Python 3.12 with Powertools from AWS's public layer.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.config import StageConfig
from infra.paths import LAMBDA_IMAGE_DIR

# AWS's public Powertools for AWS Lambda (Python) v3 layer, published from this account in
# the commercial partition's regions (China and GovCloud have their own accounts, which this
# ARN does not cover). Layer version 27 is Powertools 3.23.0; the tests and the twin run the
# package pinned in pyproject.toml, which is newer: see docs/deploy.md, "Decided risks".
POWERTOOLS_LAYER_ACCOUNT = "017000801446"
POWERTOOLS_LAYER_NAME = "AWSLambdaPowertoolsPythonV3-python312-x86_64"
POWERTOOLS_LAYER_VERSION = 27

# The zip holds only the runtime package: the image's Dockerfile, requirements and model
# files are for the inference image, and caches or tests would only change the asset hash.
RUNTIME_PACKAGE_EXCLUDE = [
    "*",
    "!llambda",
    "!llambda/**",
    "**/__pycache__",
    "**/*.pyc",
    "**/tests",
]


def powertools_layer_arn(partition: str, region: str) -> str:
    """The layer's ARN in `region` of `partition` (tokens for env-agnostic stacks)."""
    return (
        f"arn:{partition}:lambda:{region}:{POWERTOOLS_LAYER_ACCOUNT}:layer:"
        f"{POWERTOOLS_LAYER_NAME}:{POWERTOOLS_LAYER_VERSION}"
    )


def log_group(scope: Construct, construct_id: str, *, config: StageConfig) -> logs.LogGroup:
    """A log group with the stage's retention, removed with the stack outside Prod."""
    return logs.LogGroup(
        scope,
        construct_id,
        retention=retention(config.log_retention_days),
        removal_policy=(
            cdk.RemovalPolicy.RETAIN if config.retain_data else cdk.RemovalPolicy.DESTROY
        ),
    )


def function_role(scope: Construct, construct_id: str, *, logs_to: logs.ILogGroup) -> iam.Role:
    """A role that may write only to its own log group (no AWS managed policy, no `*`)."""
    role = iam.Role(scope, construct_id, assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    logs_to.grant_write(role)
    return role


class RuntimeFunction(Construct):
    """A Python 3.12 zip function for `handler` (e.g. `llambda.handlers.router.handler`)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        handler: str,
        environment: dict[str, str],
        memory_mb: int = 256,
        timeout: cdk.Duration | None = None,
        description: str,
        dead_letter_queue: sqs.IQueue | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group = log_group(self, "Logs", config=config)
        self.role = function_role(self, "Role", logs_to=self.log_group)
        powertools = lambda_.LayerVersion.from_layer_version_arn(
            self,
            "Powertools",
            powertools_layer_arn(cdk.Stack.of(self).partition, cdk.Stack.of(self).region),
        )
        self.function = lambda_.Function(
            self,
            "Function",
            description=description,
            runtime=lambda_.Runtime.PYTHON_3_12,
            architecture=lambda_.Architecture.X86_64,
            code=lambda_.Code.from_asset(str(LAMBDA_IMAGE_DIR), exclude=RUNTIME_PACKAGE_EXCLUDE),
            handler=handler,
            memory_size=memory_mb,
            timeout=timeout or cdk.Duration.seconds(10),
            environment=environment,
            layers=[powertools],
            role=self.role,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            dead_letter_queue=dead_letter_queue,
        )
        cdk.Validations.of(self.function).acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions-L1",
                reason=(
                    "Pinned to Python 3.12 on purpose: the inference image is built on "
                    "public.ecr.aws/lambda/python:3.12 and the Powertools layer is the "
                    "python312 build, so every function runs the same interpreter."
                ),
            )
        )


# CloudWatch Logs accepts only these retention periods (days).
_RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
}


def retention(days: int) -> logs.RetentionDays:
    """The RetentionDays member for `days`; refuses periods CloudWatch does not offer."""
    try:
        return _RETENTION[days]
    except KeyError:
        allowed = ", ".join(str(d) for d in _RETENTION)
        raise ValueError(f"logRetentionDays must be one of {allowed}, not {days}") from None

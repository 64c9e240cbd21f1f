"""The inference function: the container image with the engine and the model baked in.

Everything that invokes it invokes the alias `live`: provisioned concurrency lives on the
alias and serves nothing to `$LATEST`.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.config import StageConfig
from infra.constructs.runtime_function import function_role, log_group
from infra.paths import LAMBDA_IMAGE_DIR, MODEL_SUFFIXES

ALIAS_NAME = "live"


def image_asset_exclude(model_file: str) -> list[str]:
    """Asset excludes: every model file but the selected one, and caches and tests.

    The asset is hashed (and copied into cdk.out) on every synth, so a multi-GB model that
    is not the selected one would slow each synth for nothing.
    """
    models = [f"**/*{suffix}" for suffix in MODEL_SUFFIXES]
    caches = ["**/__pycache__", "**/*.pyc", "**/.pytest_cache", "tests"]
    return [*models, *caches, f"!models/{model_file}"]


class InferenceFunction(Construct):
    """Image function + version + alias `live` (provisioned concurrency, async config)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        table_name: str,
        on_failure: lambda_.IFunction,
    ) -> None:
        super().__init__(scope, construct_id)
        # The picoLLM AccessKey: the stack creates the secret (with a placeholder random
        # value), the operator puts the real key; the template never holds it.
        self.access_key_secret = secretsmanager.Secret(
            self,
            "AccessKey",
            description=(
                f"llambda {config.stage_name}: picoLLM AccessKey from Picovoice Console "
                "(set with aws secretsmanager put-secret-value)"
            ),
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        cdk.Validations.of(self.access_key_secret).acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions-SMG4",
                reason=(
                    "A Picovoice AccessKey is issued by Picovoice Console; there is no API "
                    "a rotation function could call, so it is replaced by hand."
                ),
            )
        )
        self.log_group = log_group(self, "Logs", config=config)
        self.role = function_role(self, "Role", logs_to=self.log_group)
        self.function = lambda_.DockerImageFunction(
            self,
            "Function",
            description=f"llambda {config.stage_name}: generates and streams replies",
            code=lambda_.DockerImageCode.from_image_asset(
                str(LAMBDA_IMAGE_DIR),
                build_args={"MODEL_FILE": config.model_file},
                platform=ecr_assets.Platform.LINUX_AMD64,
                exclude=image_asset_exclude(config.model_file),
            ),
            # picoLLM ships no Linux arm64 build for Lambda.
            architecture=lambda_.Architecture.X86_64,
            memory_size=config.inference_memory_mb,
            timeout=cdk.Duration.seconds(config.inference_timeout_seconds),
            # The ceiling on simultaneous replies, and so on cost. 0 is no reservation, not
            # a function throttled to zero (see StageConfig.reserved_concurrency).
            reserved_concurrent_executions=config.reserved_concurrency or None,
            environment=config.inference_environment(
                table_name=table_name,
                access_key_secret_arn=self.access_key_secret.secret_arn,
            ),
            role=self.role,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
        )
        self.access_key_secret.grant_read(self.role)
        # The image asset's hash names its build context in the cloud assembly
        # (`asset.<hash>/`), where the pipeline puts the git-ignored model before building.
        image = self.function.node.try_find_child("AssetImage")
        if not isinstance(image, ecr_assets.DockerImageAsset):
            raise RuntimeError("aws-cdk-lib no longer names the image asset 'AssetImage'")
        self.image_asset_hash: str = image.asset_hash
        self.alias = lambda_.Alias(
            self,
            "Live",
            alias_name=ALIAS_NAME,
            version=self.function.current_version,
            # On a schedule the scheduled actions own it (spend_controls.py): set here too,
            # each deploy would bring it back outside the stage's hours.
            provisioned_concurrent_executions=config.alias_provisioned_concurrency or None,
            # Ack-and-dispatch: a retry would answer a chat twice, and a reply queued for
            # minutes is worse than a prompt `unavailable` from the failure handler.
            retry_attempts=0,
            max_event_age=cdk.Duration.seconds(config.dispatch_max_event_age_seconds),
            on_failure=destinations.LambdaDestination(on_failure),
        )

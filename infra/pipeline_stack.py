"""The optional self-updating pipeline: source → `make synth` → Dev → smoke → approval → Prod.

Only synthesized with `-c pipeline=1 -c connectionArn=... -c repository=owner/name
-c modelSource=...`, so a plain `cdk synth` / `cdk deploy "Dev/*"` is unchanged. Its
stages are named `Pipeline-Dev` and `Pipeline-Prod`, so their stacks
(`Pipeline-Dev-Stateful`, ...) never take over a hand-deployed `Dev-*` or `Prod-*`.
"""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_iam as iam
from aws_cdk import pipelines
from constructs import Construct

from infra.config import StageConfig
from infra.context import PipelineSettings
from infra.nag import ACCOUNT, PARTITION, REGION, WildcardRule, acknowledge_wildcards
from infra.names import PIPELINE, pipeline_stage_name
from infra.stage import LlambdaStage

# The same Makefile target a person runs; it writes both stages' templates to cdk.out/.
SYNTH_COMMANDS = ["make synth"]
# Dev has no provisioned concurrency: the first reply pays for pulling a multi-GB image and
# loading the model, well past the smoke test's default two minutes.
SMOKE_TIMEOUT_SECONDS = 600
# The Node.js every CodeBuild job runs (the CDK CLI and cdk-assets are Node programs).
NODE_VERSION = "22"
# The terminal client reads the protocol's contract from the runtime package's folder.
SMOKE_PYTHONPATH = "lambda_image"
SMOKE_COMMAND = (
    f"PYTHONPATH={SMOKE_PYTHONPATH} python -m terminal_client.smoke "
    f'"$WEBSOCKET_URL" --timeout {SMOKE_TIMEOUT_SECONDS}'
)
# What a failed smoke test most often means on a first run, with the exact fix.
SMOKE_HINT = (
    "echo 'If the error names the picoLLM AccessKey: the Dev stage AccessKey secret still "
    "holds the placeholder the stack created. Put your key in it, then Retry this stage:' "
    '&& echo "aws secretsmanager put-secret-value --secret-id $ACCESS_KEY_SECRET_ARN '
    '--secret-string <your AccessKey>"'
)


def model_fetch_commands(settings: PipelineSettings, models: dict[str, str]) -> list[str]:
    """Shell commands that put each model into its image's build context before the build.

    `models` maps an image asset's hash to its model file. The commands run in every asset
    publishing job (CDK Pipelines has one set of defaults for all of them); only the
    privileged ones, which build images, have a Docker daemon, so file jobs skip the copy.
    """
    commands = []
    for asset_hash, model_file in sorted(models.items()):
        context = f"asset.{asset_hash}"
        target = f"{context}/models/{model_file}"
        url = settings.model_url(model_file)
        if url.startswith("s3://"):
            fetch = f'aws s3 cp --only-show-errors "{url}" "{target}"'
        else:
            fetch = (
                f'curl --fail --silent --show-error --location --create-dirs -o "{target}" "{url}"'
            )
        commands.append(f'if [ -d "{context}" ] && docker info >/dev/null 2>&1; then {fetch}; fi')
    return commands


def own_models_only(build_spec: str, models: dict[str, str]) -> str:
    """`build_spec` with only the model fetches of the images this job publishes.

    CDK Pipelines gives every asset job the same pre_build commands and the whole cloud
    assembly, so without this each image job would download every stage's model.
    """
    spec = json.loads(build_spec)
    phases = spec.get("phases", {})
    build = " ".join(phases.get("build", {}).get("commands", []))
    others = {h for h in models if f'publish "{h}:' not in build}
    pre_build = phases.get("pre_build", {})
    commands = [
        command
        for command in pre_build.get("commands", [])
        if not any(f'"asset.{h}"' in command for h in others)
    ]
    if commands:
        pre_build["commands"] = commands
    else:
        phases.pop("pre_build", None)
    return json.dumps(spec, indent=2)


def model_read_statements(
    settings: PipelineSettings, model_files: set[str]
) -> list[iam.PolicyStatement]:
    """s3:GetObject on exactly the model objects the image builds fetch (none for https)."""
    if not settings.model_source.startswith("s3://"):
        return []
    return [
        iam.PolicyStatement(
            actions=["s3:GetObject"],
            resources=[
                f"arn:{cdk.Aws.PARTITION}:s3:::{settings.model_url(name).removeprefix('s3://')}"
                for name in sorted(model_files)
            ],
        )
    ]


class PipelineStack(cdk.Stack):
    """A CDK Pipeline that deploys Dev, smoke-tests it, waits for approval, deploys Prod."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: PipelineSettings,
        configs: dict[str, StageConfig],
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        source = pipelines.CodePipelineSource.connection(
            settings.repository, settings.branch, connection_arn=settings.connection_arn
        )
        # The stage names give every stack a name of its own (`Pipeline-Dev-Stateless`).
        dev = LlambdaStage(
            self, "Dev", config=configs["Dev"], stage_name=pipeline_stage_name("Dev")
        )
        prod = LlambdaStage(
            self, "Prod", config=configs["Prod"], stage_name=pipeline_stage_name("Prod")
        )
        # Models are git-ignored and never enter the synthesized assembly (CloudFormation
        # actions refuse input artifacts over 256 MB); each image build fetches its own.
        models = {
            stage.stateless.inference.image_asset_hash: stage.config.model_file
            for stage in (dev, prod)
        }
        self.pipeline = pipelines.CodePipeline(
            self,
            "Pipeline",
            synth=pipelines.ShellStep(
                "Synth",
                input=source,
                install_commands=["npm ci --no-audit --no-fund"],
                commands=SYNTH_COMMANDS,
                primary_output_directory="cdk.out",
            ),
            # Every CodeBuild job: Node.js 22 (18 and 20 are past their end of life, and the
            # CDK CLI warns on them) on the standard image CDK Pipelines defaults to.
            code_build_defaults=pipelines.CodeBuildOptions(
                build_environment=codebuild.BuildEnvironment(
                    build_image=codebuild.LinuxBuildImage.STANDARD_7_0
                ),
                partial_build_spec=codebuild.BuildSpec.from_object(
                    {"phases": {"install": {"runtime-versions": {"nodejs": NODE_VERSION}}}}
                ),
            ),
            asset_publishing_code_build_defaults=pipelines.CodeBuildOptions(
                partial_build_spec=codebuild.BuildSpec.from_object(
                    {"phases": {"pre_build": {"commands": model_fetch_commands(settings, models)}}}
                ),
                role_policy=model_read_statements(settings, set(models.values())),
                # The image build compiles llama.cpp and copies a multi-GB model: a large
                # builder, and Docker's layer cache kept on the build host between runs
                # (best effort: CodeBuild keeps it while the host stays warm).
                build_environment=codebuild.BuildEnvironment(
                    compute_type=codebuild.ComputeType.LARGE
                ),
                cache=codebuild.Cache.local(codebuild.LocalCacheMode.DOCKER_LAYER),
            ),
            # Synth and self-mutation build nothing: CDK Pipelines gives the image asset
            # jobs their own Docker daemon.
            docker_enabled_for_synth=False,
            docker_enabled_for_self_mutation=False,
            cross_account_keys=False,
        )
        self.pipeline.add_stage(
            dev,
            post=[
                pipelines.ShellStep(
                    "Smoke",
                    input=source,
                    env_from_cfn_outputs={
                        "WEBSOCKET_URL": dev.stateless.websocket_url,
                        "ACCESS_KEY_SECRET_ARN": dev.stateless.access_key_secret_arn,
                    },
                    install_commands=["pip install --quiet websockets==17.4"],
                    commands=[f"{SMOKE_COMMAND} || {{ {SMOKE_HINT}; exit 1; }}"],
                )
            ],
        )
        self.pipeline.add_stage(
            prod,
            pre=[
                pipelines.ManualApprovalStep(
                    "PromoteToProd", comment="Dev passed the smoke test: deploy Prod?"
                )
            ],
        )
        self.pipeline.build_pipeline()
        for node in self.pipeline.node.find_all():
            if isinstance(node, codebuild.CfnProject) and "/Assets/" in node.node.path:
                source = cdk.Stack.of(node).resolve(node.source)
                node.add_property_override(
                    "Source.BuildSpec", own_models_only(source["buildSpec"], models)
                )
        self._acknowledge_findings()

    def _acknowledge_findings(self) -> None:
        """Today's findings, each on the constructs that have it: a new one fails synth."""
        acknowledge_wildcards(self.pipeline, PIPELINE_WILDCARDS)
        cdk.Validations.of(self.pipeline.pipeline.artifact_bucket).acknowledge(
            cdk.Acknowledgment(id="AwsSolutions-S1", reason=ARTIFACT_BUCKET_LOGS)
        )
        for node in self.pipeline.node.find_all():
            if isinstance(node, codebuild.CfnProject):
                cdk.Validations.of(node).acknowledge(
                    cdk.Acknowledgment(id="AwsSolutions-CB4", reason=CODEBUILD_KEY)
                )


ARTIFACT_BUCKET_LOGS = (
    "The pipeline's artifact bucket holds build outputs that CodePipeline itself records "
    "per execution; server access logs would add no audit value."
)
CODEBUILD_KEY = (
    "CodeBuild encrypts build artifacts with the pipeline's artifact bucket key; no "
    "customer managed KMS key is created to keep the single-account pipeline free."
)

_PIPELINE = rf"^{PIPELINE}/Pipeline/"
# A CodeBuild project's own name, as cdk-nag flattens the `Ref` to it.
_PROJECT = r"<Pipeline[A-Za-z0-9]+>"
_ASSET_ROLES = rf"{_PIPELINE}Assets/(Docker|File)Role/"
_SELF_MUTATION = rf"{_PIPELINE}UpdatePipeline/SelfMutation/Role/"
# The IAM wildcards CDK Pipelines' own roles carry today, each as narrow as CDK grants it.
PIPELINE_WILDCARDS = (
    WildcardRule(
        pattern=r"Action::s3:(Abort|DeleteObject|GetBucket|GetObject|List)\*",
        reason=(
            "CDK's grantRead/grantReadWrite action groups, which CDK Pipelines uses on the "
            "pipeline's own artifact bucket (the only bucket these roles reach)."
        ),
        path=_PIPELINE,
    ),
    WildcardRule(
        pattern=r"Resource::<PipelineArtifactsBucket[0-9A-F]+\.Arn>/\*",
        reason="Objects of the pipeline's own artifact bucket, named per execution.",
        path=_PIPELINE,
    ),
    WildcardRule(
        pattern=rf"Resource::arn:{PARTITION}:logs:{REGION}:{ACCOUNT}:log-group:/aws/codebuild/{_PROJECT}:\*",
        reason="Log streams of the CodeBuild project's own log group, named at run time.",
        path=_PIPELINE,
    ),
    WildcardRule(
        pattern=rf"Resource::arn:{PARTITION}:codebuild:{REGION}:{ACCOUNT}:report-group/{_PROJECT}-\*",
        reason="Test report groups of the CodeBuild project itself, named at run time.",
        path=_PIPELINE,
    ),
    WildcardRule(
        pattern=(
            rf"Resource::arn:{PARTITION}:(logs:{REGION}:{ACCOUNT}:log-group:/aws/codebuild"
            rf"|codebuild:{REGION}:{ACCOUNT}:report-group)/\*"
        ),
        reason=(
            "One role serves every asset publishing project, so CDK Pipelines grants logs "
            "and report groups for CodeBuild projects of this account and region."
        ),
        path=_ASSET_ROLES,
    ),
    WildcardRule(
        pattern=r"Resource::\*",
        reason=(
            "codebuild:StartBuild/BatchGetBuilds/StopBuild, which CDK Pipelines grants the "
            "asset publishing role on '*' since the projects are created after it."
        ),
        path=_ASSET_ROLES,
    ),
    WildcardRule(
        pattern=r"Resource::\*",
        reason=(
            "cloudformation:DescribeStacks and s3:ListBucket for `cdk deploy Pipeline`: "
            "read-only calls the self-mutation step makes before assuming the deploy role."
        ),
        path=_SELF_MUTATION,
    ),
    WildcardRule(
        pattern=rf"Resource::arn:\*:iam::{ACCOUNT}:role/\*",
        reason=(
            "sts:AssumeRole of the CDK bootstrap roles, limited by a condition to roles "
            "tagged aws-cdk:bootstrap-role (deploy, file- and image-publishing)."
        ),
        path=_SELF_MUTATION,
    ),
)

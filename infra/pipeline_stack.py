"""The optional self-updating pipeline: source → `make synth` → Dev → smoke → approval → Prod.

Only synthesized with `-c pipeline=1 -c connectionArn=... -c repository=owner/name`, so a
plain `cdk synth` / `cdk deploy "Dev/*"` is unchanged. Its stages live under `Pipeline/`,
separate from the hand-deployed `Dev` and `Prod`: use one path or the other.
"""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import pipelines
from constructs import Construct

from infra.config import StageConfig
from infra.context import PipelineSettings
from infra.nag import WildcardRule, acknowledge_wildcards
from infra.stage import LlambdaStage

# The same Makefile target a person runs; it writes both stages' templates to cdk.out/.
SYNTH_COMMANDS = ["make synth"]
SMOKE_COMMAND = 'python -m offline.smoke "$WEBSOCKET_URL"'


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
            # The inference function's image asset is built by Docker at publish time.
            docker_enabled_for_synth=True,
            docker_enabled_for_self_mutation=True,
            cross_account_keys=False,
        )
        dev = LlambdaStage(self, "Dev", config=configs["Dev"])
        self.pipeline.add_stage(
            dev,
            post=[
                pipelines.ShellStep(
                    "Smoke",
                    input=source,
                    env_from_cfn_outputs={"WEBSOCKET_URL": dev.stateless.websocket_url},
                    install_commands=["pip install --quiet websockets==17.4"],
                    commands=[SMOKE_COMMAND],
                )
            ],
        )
        prod = LlambdaStage(self, "Prod", config=configs["Prod"])
        self.pipeline.add_stage(
            prod,
            pre=[
                pipelines.ManualApprovalStep(
                    "PromoteToProd", comment="Dev passed the smoke test: deploy Prod?"
                )
            ],
        )
        self.pipeline.build_pipeline()
        self._acknowledge_findings()

    def _acknowledge_findings(self) -> None:
        acknowledge_wildcards(self, PIPELINE_WILDCARDS)
        for rule, reason in PIPELINE_RULES:
            cdk.Validations.of(self.pipeline).acknowledge(
                cdk.Acknowledgment(id=rule, reason=reason)
            )


PIPELINE_RULES = (
    (
        "AwsSolutions-S1",
        "The pipeline's artifact bucket holds build outputs that CodePipeline itself "
        "records per execution; server access logs would add no audit value.",
    ),
    (
        "AwsSolutions-CB4",
        "CodeBuild encrypts build artifacts with the pipeline's artifact bucket key; no "
        "customer managed KMS key is created to keep the single-account pipeline free.",
    ),
)

PIPELINE_WILDCARDS = (
    WildcardRule(
        pattern=r"(Action|Resource)::.*",
        reason=(
            "CDK Pipelines' generated roles: CodeBuild log streams, report groups and "
            "artifact objects are named at run time; the grants are CDK's own, scoped to "
            "this pipeline's bucket, projects and the CDK bootstrap roles."
        ),
        path=r"^Pipeline/Pipeline/.*",
    ),
)

"""Build the whole CDK app from context: both stages, cdk-nag, and the optional pipeline.

`app.py` reads the context and the environment and calls `build_app`; tests call it with
a dict, so what `-c` does is tested without the CLI.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra.context import pipeline_settings, stage_configs
from infra.names import PIPELINE
from infra.stage import LlambdaStage


def build_app(
    app: cdk.App,
    *,
    context: Mapping[str, Any],
    env: cdk.Environment | None = None,
    nag: bool = True,
) -> dict[str, LlambdaStage]:
    """Add `Dev`, `Prod` (and `Pipeline` when `-c pipeline=1`) to `app`; return the stages."""
    stages = {
        name: LlambdaStage(app, name, config=config, env=env)
        for name, config in stage_configs(context).items()
    }
    settings = pipeline_settings(context)
    if settings is not None:
        from infra.pipeline_stack import PipelineStack  # only synthesized on request

        PipelineStack(
            app,
            PIPELINE,
            settings=settings,
            configs=stage_configs(context),
            env=env,
            description="llambda: self-updating pipeline, Dev then (approved) Prod",
        )
    if nag:
        # cdk-nag 3 is a policy-validation plugin: any unacknowledged finding fails synth.
        cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return stages


def environment(account: str | None, region: str | None) -> cdk.Environment | None:
    """The stacks' environment, or None (env-agnostic) when neither is known."""
    if not account and not region:
        return None
    return cdk.Environment(account=account or None, region=region or None)

#!/usr/bin/env python3
"""The CDK app: `Dev` and `Prod` from infra/config.py, overridden by `-c` context.

This is the only place that reads context or the environment. Plain `-c key=value`
applies to every stage, `-c Dev.key=value` / `-c Prod.key=value` to one (see
docs/deploy.md). `-c pipeline=1` adds the optional self-updating pipeline.
"""

import os

from infra.quiet_jsii import silence_node_banners

silence_node_banners()  # before aws_cdk starts the jsii runtime

import aws_cdk as cdk  # noqa: E402

from infra.build import build_app, environment  # noqa: E402

app = cdk.App()
build_app(
    app,
    context=app.node.get_all_context(),
    # Set by the CLI from the current credentials; absent, the stacks are env-agnostic.
    env=environment(os.environ.get("CDK_DEFAULT_ACCOUNT"), os.environ.get("CDK_DEFAULT_REGION")),
)
app.synth()

#!/usr/bin/env python3
"""The CDK app: `Dev` and `Prod` from infra/config.py, overridden by context.

This is the only place that reads context, the environment or the local settings file.
Plain `-c key=value` applies to every stage, `-c Dev.key=value` / `-c Prod.key=value` to
one; `llambda.local.json` (git-ignored) fills in keys no context sets (see
docs/deploy.md). `-c pipeline=1` adds the optional self-updating pipeline.
"""

import os
import sys

from infra.quiet_jsii import silence_node_banners

silence_node_banners()  # before aws_cdk starts the jsii runtime

import aws_cdk as cdk  # noqa: E402

from infra.build import build_app, environment  # noqa: E402
from infra.config import ConfigError  # noqa: E402
from infra.context import read_local_settings, with_local_settings  # noqa: E402
from infra.paths import LOCAL_SETTINGS  # noqa: E402

app = cdk.App()
try:
    build_app(
        app,
        context=with_local_settings(
            app.node.get_all_context(), read_local_settings(LOCAL_SETTINGS)
        ),
        # Set by the CLI from the current credentials; absent, the stacks are env-agnostic.
        env=environment(
            os.environ.get("CDK_DEFAULT_ACCOUNT"), os.environ.get("CDK_DEFAULT_REGION")
        ),
    )
except ConfigError as error:
    # A setting that cannot deploy: say which and why, without a Python traceback.
    sys.exit(f"llambda: {error}")
app.synth()

"""Synthesize the app once per session (it takes seconds) and share the stages."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from infra.quiet_jsii import silence_node_banners

silence_node_banners()  # before aws_cdk starts the jsii runtime

import aws_cdk as cdk  # noqa: E402
from aws_cdk.assertions import Template  # noqa: E402

from infra.build import build_app  # noqa: E402
from infra.paths import REPO_ROOT  # noqa: E402
from infra.stage import LlambdaStage  # noqa: E402

STAGE_NAMES = ("Dev", "Prod")

# The pipeline's context as docs/deploy.md has users put it in cdk.json.
PIPELINE_CONTEXT = {
    "pipeline": "1",
    "connectionArn": "arn:aws:codestar-connections:us-east-1:123456789012:connection/abc",
    "repository": "example/llambda",
    "modelSource": "s3://example-models/llambda/",
}


def project_context() -> dict[str, Any]:
    """cdk.json's context (feature flags), so tests see what `cdk synth` builds."""
    return json.loads((REPO_ROOT / "cdk.json").read_text())["context"]


@dataclass
class Synthesized:
    app: cdk.App
    stages: dict[str, LlambdaStage]
    outdir: Path
    context: dict[str, Any]


def synthesize(outdir: Path, **overrides: Any) -> Synthesized:
    """Build and synthesize the app as `app.py` does, with `-c`-style overrides."""
    context = {**project_context(), **overrides}
    app = cdk.App(context=context, outdir=str(outdir))
    stages = build_app(app, context=context)  # cdk-nag runs: findings fail synth
    app.synth()
    return Synthesized(app=app, stages=stages, outdir=outdir, context=context)


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synthesize(tmp_path_factory.mktemp("cdk.out"))


@pytest.fixture(scope="session", params=STAGE_NAMES)
def stage(request: pytest.FixtureRequest, synthesized: Synthesized) -> LlambdaStage:
    return synthesized.stages[request.param]


@pytest.fixture(scope="session")
def stateless(stage: LlambdaStage) -> Template:
    return Template.from_stack(stage.stateless)


@pytest.fixture(scope="session")
def stateful(stage: LlambdaStage) -> Template:
    return Template.from_stack(stage.stateful)


@pytest.fixture(scope="session")
def pipelined(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The app with the pipeline, synthesized once (cdk-nag runs over all of it)."""
    return synthesize(tmp_path_factory.mktemp("pipeline"), **PIPELINE_CONTEXT)

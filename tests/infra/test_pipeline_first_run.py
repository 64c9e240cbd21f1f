"""The pipeline on a new account (issue 13): its own stack names (#5), a model for its image
build (#3), a smoke step that survives a cold start and says what to fix (#4), and cdk-nag
acknowledgements that cover only today's findings (#13)."""

import json
import re

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Template

from infra.build import build_app
from infra.config import ConfigError
from infra.context import pipeline_settings
from infra.nag import wildcard_findings
from infra.pipeline_stack import (
    PIPELINE_WILDCARDS,
    SMOKE_TIMEOUT_SECONDS,
    model_fetch_commands,
)
from tests.infra.conftest import PIPELINE_CONTEXT, project_context, synthesize


def stack_names(synthesized) -> set[str]:
    return {stack.stack_name for stack in synthesized.app.synth().stacks_recursively}


def pipeline_template(synthesized) -> Template:
    return Template.from_stack(synthesized.app.node.find_child("Pipeline"))


def buildspecs(template: Template) -> dict[str, str]:
    return {
        logical_id: project["Properties"]["Source"]["BuildSpec"]
        for logical_id, project in template.find_resources("AWS::CodeBuild::Project").items()
    }


# 5. Stack names ------------------------------------------------------------------------


def test_the_pipelines_stacks_never_share_a_name_with_a_hand_deployed_stage(pipelined):
    names = stack_names(pipelined)
    hand = {"Dev-Stateful", "Dev-Stateless", "Prod-Stateful", "Prod-Stateless"}
    piped = {f"Pipeline-{name}" for name in hand}
    assert hand | piped | {"Pipeline"} == names


# 3. A model source for the image build -------------------------------------------------


def image_asset(synthesized, stage: str) -> tuple[str, dict]:
    """(hash, source) of the stage's image asset in the synthesized assembly."""
    (manifest,) = synthesized.outdir.glob(f"assembly-Pipeline-{stage}/*Stateless*.assets.json")
    ((asset_hash, image),) = json.loads(manifest.read_text())["dockerImages"].items()
    return asset_hash, image["source"]


def test_the_image_build_fetches_each_model_into_the_images_build_context(pipelined):
    specs = buildspecs(pipeline_template(pipelined))
    for stage in ("Dev", "Prod"):
        asset_hash, source = image_asset(pipelined, stage)
        model = source["dockerBuildArgs"]["MODEL_FILE"]
        assert source["directory"] == f"../asset.{asset_hash}"
        target = f"asset.{asset_hash}/models/{model}"
        fetch = (
            f'aws s3 cp --only-show-errors \\"s3://example-models/llambda/{model}\\" \\"{target}\\"'
        )
        image_jobs = [
            spec for spec in specs.values() if asset_hash in spec and "cdk-assets" in spec
        ]
        assert image_jobs and all(fetch in spec for spec in image_jobs)
        # Fetched before the build, by the job that builds images (it has a Docker daemon).
        (job,) = [spec for spec in image_jobs if f'publish \\"{asset_hash}:' in spec]
        phases = json.loads(job)["phases"]
        assert any("docker info" in c and target in c for c in phases["pre_build"]["commands"])


def test_the_model_never_enters_the_synthesized_assembly(pipelined):
    synth = [
        spec for spec in buildspecs(pipeline_template(pipelined)).values() if "make synth" in spec
    ]
    assert len(synth) == 1 and "s3 cp" not in synth[0] and "models/" not in synth[0]


def test_the_image_build_may_read_exactly_the_model_objects(pipelined):
    template = pipeline_template(pipelined)
    statements = [
        statement
        for policy in template.find_resources("AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Action"] == "s3:GetObject"
    ]
    assert statements
    for statement in statements:
        resources = statement["Resource"]
        resources = resources if isinstance(resources, list) else [resources]
        for resource in resources:
            joined = "".join(p if isinstance(p, str) else "<P>" for p in resource["Fn::Join"][1])
            assert joined == "arn:<P>:s3:::example-models/llambda/model.pllm"


def test_an_https_source_is_fetched_with_curl_and_needs_no_grant():
    settings = pipeline_settings({**PIPELINE_CONTEXT, "modelSource": "https://h.example/m/"})
    (command,) = model_fetch_commands(settings, {"abc": "x.gguf"})
    assert (
        "curl --fail" in command
        and '-o "asset.abc/models/x.gguf" "https://h.example/m/x.gguf"' in command
    )


@pytest.mark.parametrize(
    ("source", "words"),
    [
        (None, "modelSource"),
        ("s3://bucket/models", "ending in '/'"),
        ("ftp://h/m/", "s3://bucket/prefix/"),
        ("s3:///", "names no bucket"),
    ],
)
def test_the_pipeline_needs_a_model_source(source, words):
    context = {k: v for k, v in PIPELINE_CONTEXT.items() if k != "modelSource"}
    if source is not None:
        context["modelSource"] = source
    with pytest.raises(ConfigError, match=words):
        pipeline_settings(context)


# 4. The smoke step on a fresh Dev stage -----------------------------------------------


def test_the_smoke_step_waits_out_a_cold_start_and_names_the_secret_to_set(pipelined):
    template = pipeline_template(pipelined)
    (smoke,) = [spec for spec in buildspecs(template).values() if "terminal_client.smoke" in spec]
    (command,) = json.loads(smoke)["phases"]["build"]["commands"]
    assert f"--timeout {SMOKE_TIMEOUT_SECONDS}" in command and SMOKE_TIMEOUT_SECONDS >= 300
    assert "put-secret-value --secret-id $ACCESS_KEY_SECRET_ARN" in command
    assert command.rstrip().endswith("exit 1; }")  # a failed smoke test still fails the stage
    (codepipeline,) = template.find_resources("AWS::CodePipeline::Pipeline").values()
    (dev,) = [s for s in codepipeline["Properties"]["Stages"] if s["Name"] == "Pipeline-Dev"]
    (action,) = [a for a in dev["Actions"] if a["Name"] == "Smoke"]
    variables = json.loads(action["Configuration"]["EnvironmentVariables"])
    names = {v["name"]: v["value"] for v in variables}
    assert names["ACCESS_KEY_SECRET_ARN"].endswith(".AccessKeySecretArn}")
    assert names["WEBSOCKET_URL"].endswith(".WebSocketUrl}")


# 13. Acknowledgements narrowed to today's findings -------------------------------------


def acknowledged(synthesized) -> dict[str, set[str]]:
    """The IAM5 findings acknowledged on each policy under the pipeline's own constructs."""
    found: dict[str, set[str]] = {}
    for node in synthesized.app.node.find_child("Pipeline").node.find_all():
        for entry in node.node.metadata:
            if entry.type == cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                ids = {rule_id(k) for k in entry.data if "AwsSolutions-IAM5" in k}
                if ids and node.node.path.startswith("Pipeline/Pipeline/"):
                    path = node.node.path.removeprefix("Pipeline/Pipeline/")
                    found.setdefault(path, set()).update(ids)
    return found


def rule_id(key: str) -> str:
    """`AwsSolutions-IAM5[...]` from the metadata's `Annotation::AwsSolutions-IAM5[...]`."""
    return key.removeprefix("Annotation::")


# Today's wildcards in CDK Pipelines' roles, per policy (cdk-nag's finding ids).
_BUCKET = {
    "Action::s3:GetBucket*",
    "Action::s3:GetObject*",
    "Action::s3:List*",
    "Resource::<PipelineArtifactsBucketAEA9A052.Arn>/*",
}
_READ_WRITE = _BUCKET | {"Action::s3:Abort*", "Action::s3:DeleteObject*"}


def _project(logical_id: str) -> set[str]:
    return {
        "Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:"
        f"/aws/codebuild/<{logical_id}>:*",
        "Resource::arn:<AWS::Partition>:codebuild:<AWS::Region>:<AWS::AccountId>:report-group/"
        f"<{logical_id}>-*",
    }


_ASSETS = _BUCKET | {
    "Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:/aws/codebuild/*",
    "Resource::arn:<AWS::Partition>:codebuild:<AWS::Region>:<AWS::AccountId>:report-group/*",
    "Resource::*",
}
TODAY = {
    "Pipeline/Role/DefaultPolicy/Resource": _READ_WRITE,
    "Pipeline/Source/example_llambda/CodePipelineActionRole/DefaultPolicy/Resource": _READ_WRITE,
    "Pipeline/Build/Synth/CdkBuildProject/Role/DefaultPolicy/Resource": _READ_WRITE
    | _project("PipelineBuildSynthCdkBuildProject6BEFA8E6"),
    "Pipeline/Pipeline-Dev/Smoke/Smoke/Role/DefaultPolicy/Resource": _BUCKET
    | _project("PipelinePipelineDevSmokeD09A31B5"),
    "UpdatePipeline/SelfMutation/Role/DefaultPolicy/Resource": _BUCKET
    | _project("PipelineUpdatePipelineSelfMutationDAA41400")
    | {"Resource::arn:*:iam::<AWS::AccountId>:role/*", "Resource::*"},
    "Assets/DockerRole/DefaultPolicy/Resource": _ASSETS,
    "Assets/FileRole/DefaultPolicy/Resource": _ASSETS,
}


def test_only_todays_wildcards_are_acknowledged(pipelined):
    found = acknowledged(pipelined)
    assert {
        path: {i.removeprefix("AwsSolutions-IAM5[")[:-1] for i in ids}
        for path, ids in found.items()
    } == TODAY


@pytest.mark.parametrize(
    ("path", "finding"),
    [
        (
            "Pipeline/Pipeline/Build/Synth/CdkBuildProject/Role/DefaultPolicy/Resource",
            "Action::s3:*",
        ),
        (
            "Pipeline/Pipeline/Build/Synth/CdkBuildProject/Role/DefaultPolicy/Resource",
            "Resource::*",
        ),
        ("Pipeline/Pipeline/Assets/DockerRole/DefaultPolicy/Resource", "Action::ecr:*"),
        (
            "Pipeline/Pipeline/Pipeline/Role/DefaultPolicy/Resource",
            "Resource::arn:aws:s3:::other/*",
        ),
        (
            "Pipeline/Pipeline/UpdatePipeline/SelfMutation/Role/DefaultPolicy/Resource",
            "Resource::arn:aws:iam::123456789012:policy/*",
        ),
    ],
)
def test_no_rule_explains_a_broader_grant(path, finding):
    assert not [
        rule
        for rule in PIPELINE_WILDCARDS
        if re.search(rule.path, path) and re.fullmatch(rule.pattern, finding)
    ]


def test_a_new_wildcard_grant_in_the_pipeline_fails_synth(tmp_path):
    context = {**project_context(), **PIPELINE_CONTEXT}
    app = cdk.App(context=context, outdir=str(tmp_path))
    build_app(app, context=context)
    pipeline = app.node.find_child("Pipeline").pipeline
    pipeline.synth_project.add_to_role_policy(
        iam.PolicyStatement(actions=["s3:GetObject"], resources=["arn:aws:s3:::other-bucket/*"])
    )
    with pytest.raises(RuntimeError, match=r"IAM5\[Resource::arn:aws:s3:::other-bucket/\*\]"):
        app.synth()


def test_bucket_and_codebuild_acknowledgements_sit_on_their_constructs_only(pipelined):
    from aws_cdk import aws_codebuild as codebuild
    from aws_cdk import aws_s3 as s3

    holders: dict[str, list] = {"AwsSolutions-S1": [], "AwsSolutions-CB4": []}
    pipeline = pipelined.app.node.find_child("Pipeline").node.find_child("Pipeline")
    for node in pipeline.node.find_all():  # not the stages' own stacks
        for entry in node.node.metadata:
            if entry.type == cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                for rule, nodes in holders.items():
                    if rule in {rule_id(key) for key in entry.data}:
                        nodes.append(node)
    (bucket,) = holders["AwsSolutions-S1"]
    assert isinstance(bucket, s3.Bucket) and bucket.node.id == "ArtifactsBucket"
    projects = pipeline_template(pipelined).find_resources("AWS::CodeBuild::Project")
    assert len(holders["AwsSolutions-CB4"]) == len(projects)
    assert all(isinstance(node, codebuild.CfnProject) for node in holders["AwsSolutions-CB4"])


def test_the_pipeline_synthesizes_with_cdk_nag_and_no_finding_left(pipelined):
    from cdk_nag import AwsSolutionsChecks

    report = AwsSolutionsChecks().validate_scope(pipelined.app)
    assert [v.rule_name for v in report.violations] == []
    # Every policy in the pipeline's roles still gets every one of its findings explained.
    stack = pipelined.app.node.find_child("Pipeline")
    for node in stack.node.find_all():
        if isinstance(node, iam.CfnPolicy) and node.node.path.startswith("Pipeline/Pipeline/"):
            findings = wildcard_findings(stack.resolve(node.policy_document))
            path = node.node.path.removeprefix("Pipeline/Pipeline/")
            assert set(findings) == TODAY.get(path, set())


def test_synth_without_the_pipeline_is_untouched(tmp_path):
    plain = synthesize(tmp_path, modelSource="s3://ignored/")
    assert plain.app.node.try_find_child("Pipeline") is None

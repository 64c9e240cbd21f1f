"""`-c` overrides change the synthesized stacks; `-c pipeline=1` adds the pipeline."""

import json
import re

import pytest
from aws_cdk.assertions import Template

from infra.pipeline_stack import NODE_VERSION, SMOKE_COMMAND, SYNTH_COMMANDS
from tests.infra.conftest import PIPELINE_CONTEXT, synthesize


@pytest.fixture(scope="module")
def overridden(tmp_path_factory):
    return synthesize(
        tmp_path_factory.mktemp("override"),
        **{
            "reservedConcurrency": "4",
            "Prod.provisionedConcurrency": "2",
            "Dev.requireToken": "true",
            "modelFile": "other.gguf",
            "engine": "llamacpp",
        },
    )


def test_overrides_reach_the_templates(overridden):
    for name, provisioned in (("Dev", None), ("Prod", 2)):
        template = Template.from_stack(overridden.stages[name].stateless)
        (alias,) = template.find_resources("AWS::Lambda::Alias").values()
        config = alias["Properties"].get("ProvisionedConcurrencyConfig")
        assert (config or {}).get("ProvisionedConcurrentExecutions") == provisioned
        (function,) = template.find_resources(
            "AWS::Lambda::Function", {"Properties": {"PackageType": "Image"}}
        ).values()
        assert function["Properties"]["ReservedConcurrentExecutions"] == 4
        env = function["Properties"]["Environment"]["Variables"]
        assert env["ENGINE"] == "llamacpp"
        assert env["MODEL_PATH"].endswith("/other.gguf")
    dev = Template.from_stack(overridden.stages["Dev"].stateless)
    dev.resource_count_is("AWS::ApiGatewayV2::Authorizer", 1)


def test_image_asset_bakes_in_the_selected_model_only(overridden):
    manifests = list(overridden.outdir.glob("assembly-Dev/*Stateless*.assets.json"))
    (images,) = [json.loads(p.read_text())["dockerImages"] for p in manifests]
    (image,) = images.values()
    assert image["source"]["dockerBuildArgs"] == {"MODEL_FILE": "other.gguf"}
    assert image["source"]["platform"] == "linux/amd64"


@pytest.fixture(scope="module")
def pipeline(pipelined):
    return Template.from_stack(pipelined.app.node.find_child("Pipeline"))


def test_pipeline_stages_in_order_with_approval_before_prod(pipeline):
    (codepipeline,) = pipeline.find_resources("AWS::CodePipeline::Pipeline").values()
    stages = codepipeline["Properties"]["Stages"]
    names = [s["Name"] for s in stages]
    assert names.index("Build") < names.index("Pipeline-Dev") < names.index("Pipeline-Prod")
    dev_actions = [a["Name"] for a in stages[names.index("Pipeline-Dev")]["Actions"]]
    assert "Smoke" in dev_actions
    prod_actions = sorted(
        stages[names.index("Pipeline-Prod")]["Actions"], key=lambda a: a["RunOrder"]
    )
    first = prod_actions[0]
    assert first["Name"] == "PromoteToProd"
    assert first["ActionTypeId"]["Category"] == "Approval"
    source = stages[0]["Actions"][0]
    assert source["Configuration"]["FullRepositoryId"] == "example/llambda"
    assert source["Configuration"]["BranchName"] == "main"


def test_pipeline_synth_and_smoke_commands(pipeline):
    projects = pipeline.find_resources("AWS::CodeBuild::Project")
    specs = [json.dumps(p["Properties"]["Source"]) for p in projects.values()]
    assert any(all(c in spec for c in SYNTH_COMMANDS) and "cdk.out" in spec for spec in specs)
    smoke = [s for s in specs if "terminal_client.smoke" in s]
    assert len(smoke) == 1 and "WEBSOCKET_URL" in smoke[0]
    assert SMOKE_COMMAND.split()[3] == "terminal_client.smoke"
    privileged = [p["Properties"]["Environment"].get("PrivilegedMode") for p in projects.values()]
    assert privileged.count(True) == 1  # Docker only for the image asset: synth builds nothing


def test_plain_synth_has_no_pipeline(synthesized):
    assert synthesized.app.node.try_find_child("Pipeline") is None


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    """A pipeline whose stages bake in different models: two image jobs."""
    return synthesize(
        tmp_path_factory.mktemp("two-models"),
        **{
            **PIPELINE_CONTEXT,
            "Prod.modelFile": "prod.pllm",
            "modelSource": "https://models.example/llambda/",
        },
    )


def asset_jobs(template):
    jobs = {}
    for project in template.find_resources("AWS::CodeBuild::Project").values():
        spec = json.loads(project["Properties"]["Source"]["BuildSpec"])
        build = " ".join(spec["phases"].get("build", {}).get("commands", []))
        if "cdk-assets" in build:
            jobs[build] = (project["Properties"], spec)
    return jobs


def test_each_image_job_fetches_only_its_own_model(two_models):
    template = Template.from_stack(two_models.app.node.find_child("Pipeline"))
    fetched = {}
    for build, (_, spec) in asset_jobs(template).items():
        commands = spec["phases"].get("pre_build", {}).get("commands", [])
        fetched[build] = [c for c in commands if "curl" in c]
        for command in fetched[build]:
            # --create-dirs: curl writes into models/ even where the folder is missing.
            assert "--create-dirs" in command and "--fail" in command
    image_jobs = {b: f for b, f in fetched.items() if f}
    assert len(image_jobs) == 2
    for build, commands in image_jobs.items():
        (command,) = commands
        (asset_hash,) = set(re.findall(r"asset\.([0-9a-f]{64})", command))
        assert f'publish "{asset_hash}:' in build  # the model of the image it publishes
    models = sorted(re.search(r'/models/([^"]+)"', c[0]).group(1) for c in image_jobs.values())
    assert models == ["model.pllm", "prod.pllm"]
    # File jobs (the zips, the page) fetch nothing.
    assert sum(1 for f in fetched.values() if not f) == len(fetched) - 2


def test_pipeline_jobs_run_node_22_and_images_build_on_a_large_cached_builder(pipeline):
    projects = pipeline.find_resources("AWS::CodeBuild::Project").values()
    for project in projects:
        spec = json.loads(project["Properties"]["Source"]["BuildSpec"])
        assert spec["phases"]["install"]["runtime-versions"] == {"nodejs": NODE_VERSION}
        assert project["Properties"]["Environment"]["Image"] == "aws/codebuild/standard:7.0"
    assert int(NODE_VERSION) >= 22
    for props, _ in asset_jobs(pipeline).values():
        assert props["Environment"]["ComputeType"] == "BUILD_GENERAL1_LARGE"
        assert props["Cache"] == {"Type": "LOCAL", "Modes": ["LOCAL_DOCKER_LAYER_CACHE"]}

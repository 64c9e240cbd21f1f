"""docs/deploy.md walks a new account to a streamed reply, and says what the code does
(issue 13, #1, #2, #12, and the pipeline's documented settings)."""

import json
import re

from aws_cdk.assertions import Template

from infra.paths import REPO_ROOT
from preflight import checks
from tests.infra.conftest import synthesize

DOC = (REPO_ROOT / "docs" / "deploy.md").read_text()


def test_setup_comes_before_any_cdk_command():
    assert DOC.index("make setup") < DOC.index("npx cdk")


def test_the_new_account_quotas_and_where_to_raise_them():
    assert "less than or" in DOC and "equal to 3008" in DOC  # the error a user will search
    assert checks.SUPPORT_CASE_URL in DOC
    assert "L-B99A9384" in DOC and "UnreservedConcurrentExecution" in DOC
    assert "`reservedConcurrency=0` means *no reservation*" in DOC


def test_every_preflight_check_is_in_the_docs_table():
    source = (REPO_ROOT / "preflight" / "checks.py").read_text()
    names = set(re.findall(r'Finding\(\s*"(?:ok|warn|fail|skip)",\s*"([\w-]+)"', source))
    assert names
    assert {name for name in names if f"| {name} |" not in DOC} == set()


def test_the_documented_pipeline_settings_give_its_image_build_a_model(tmp_path):
    """`Done when`: the documented cdk.json keys synthesize a pipeline whose image build
    has a model to copy."""
    (snippet,) = re.findall(r'```json\n\s*("pipeline".*?)```', DOC, re.DOTALL)
    settings = json.loads("{" + snippet + "}")
    settings["connectionArn"] = "arn:aws:codestar-connections:us-east-1:123456789012:connection/x"
    synthesized = synthesize(tmp_path, **settings)
    template = Template.from_stack(synthesized.app.node.find_child("Pipeline"))
    (manifest,) = synthesized.outdir.glob("assembly-Pipeline-Dev/*Stateless*.assets.json")
    ((asset_hash, image),) = json.loads(manifest.read_text())["dockerImages"].items()
    assert image["source"]["dockerBuildArgs"]["MODEL_FILE"] == settings["modelFile"]
    source = f"{settings['modelSource']}{settings['modelFile']}"
    target = f"asset.{asset_hash}/models/{settings['modelFile']}"
    jobs = [
        json.loads(project["Properties"]["Source"]["BuildSpec"])
        for project in template.find_resources("AWS::CodeBuild::Project").values()
        if f'publish \\"{asset_hash}:' in project["Properties"]["Source"]["BuildSpec"]
    ]
    (job,) = jobs
    assert any(
        source in command and target in command
        for command in job["phases"]["pre_build"]["commands"]
    )

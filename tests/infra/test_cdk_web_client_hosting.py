"""The hosted page: private bucket, CloudFront with OAC, HTTPS, config.json at deploy."""

import json

import pytest
from aws_cdk.assertions import Template

from infra.config import LOCAL_PAGE_ORIGINS
from infra.constructs.web_client_hosting import page_config
from infra.context import stage_configs
from infra.names import LOCAL_PAGE_OUTPUT, WEB_CLIENT_URL_OUTPUT
from infra.stateless_stack import LOCAL_PAGE_COMMAND
from tests.infra.cdk_helpers import function_by_handler, image_function, only
from tests.infra.conftest import synthesize


def test_buckets_are_private_and_ssl_only(stateless):
    buckets = stateless.find_resources("AWS::S3::Bucket")
    assert len(buckets) == 2  # the site and its access logs
    for bucket in buckets.values():
        assert bucket["Properties"]["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
    for policy in stateless.find_resources("AWS::S3::BucketPolicy").values():
        text = json.dumps(policy["Properties"]["PolicyDocument"])
        assert '"aws:SecureTransport": "false"' in text


def test_distribution_uses_origin_access_control_and_https(stateless):
    oac_id, oac = only(stateless, "AWS::CloudFront::OriginAccessControl")
    assert oac["Properties"]["OriginAccessControlConfig"]["SigningBehavior"] == "always"
    _, distribution = only(stateless, "AWS::CloudFront::Distribution")
    config = distribution["Properties"]["DistributionConfig"]
    (origin,) = config["Origins"]
    assert origin["OriginAccessControlId"] == {"Fn::GetAtt": [oac_id, "Id"]}
    assert origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}  # no legacy OAI
    behaviors = [config["DefaultCacheBehavior"], *config["CacheBehaviors"]]
    assert {b["ViewerProtocolPolicy"] for b in behaviors} == {"redirect-to-https"}
    assert config["DefaultRootObject"] == "index.html"
    assert [b["PathPattern"] for b in config["CacheBehaviors"]] == ["config.json"]


def test_config_json_carries_the_websocket_url(stateless):
    (api_id,) = stateless.find_resources("AWS::ApiGatewayV2::Api")
    _, deployment = only(stateless, "Custom::CDKBucketDeployment")
    props = deployment["Properties"]
    assert len(props["SourceObjectKeys"]) == 2  # web_client/ and config.json
    (markers,) = [m for m in props["SourceMarkers"] if m]
    (url,) = markers.values()
    assert url["Fn::Join"][1][0] == '"wss://'
    assert {"Ref": api_id} in url["Fn::Join"][1]
    assert props["Prune"] is True
    assert props["DistributionPaths"] == ["/*"]


def test_config_json_carries_the_model_and_the_caps_the_page_checks(synthesized, stage):
    (template,) = synthesized.outdir.glob(f"assembly-{stage.stage_name}/*Stateless*.template.json")
    (deployment,) = [
        r
        for r in json.loads(template.read_text())["Resources"].values()
        if r["Type"] == "Custom::CDKBucketDeployment"
    ]
    props = deployment["Properties"]
    config_key = props["SourceObjectKeys"][1].removesuffix(".zip")
    text = (synthesized.outdir / f"asset.{config_key}" / "config.json").read_text()
    for marker in props["SourceMarkers"][1]:
        text = text.replace(marker, '"wss://api/stage"')
    expected = page_config(config=stage.config, websocket_url="wss://api/stage")
    assert json.loads(text) == expected
    assert expected["model"] == "model"  # model.pllm, the default model file
    assert expected["maxPromptChars"] == stage.config.max_prompt_chars == 8000


def test_cloudfront_logs_only_where_no_token_rides_in_the_address(stage, stateless):
    """CloudFront's standard logs record the query string: a stage whose page address
    carries ?token= keeps none (its WebSocket access logs leave the query string out)."""
    _, distribution = only(stateless, "AWS::CloudFront::Distribution")
    logging = distribution["Properties"]["DistributionConfig"].get("Logging")
    if stage.config.require_token:
        assert logging is None
    else:
        (logs_id,) = [i for i in stateless.find_resources("AWS::S3::Bucket") if "AccessLogs" in i]
        assert logging == {
            "Bucket": {"Fn::GetAtt": [logs_id, "RegionalDomainName"]},
            "Prefix": "cloudfront/",
        }
    assert stage.config.require_token is (stage.config.stage_name == "Prod")


def router_allowed_origins(template):
    _, router = function_by_handler(template, "llambda.handlers.router.handler")
    return router["Properties"]["Environment"]["Variables"]["ALLOWED_ORIGINS"]


def test_the_hosted_page_and_the_configured_origins_may_connect(stage, stateless):
    (distribution_id,) = stateless.find_resources("AWS::CloudFront::Distribution")
    allowed = json.dumps(router_allowed_origins(stateless))
    assert distribution_id in allowed
    for origin in stage.config.allowed_origins:
        assert origin in allowed
    outputs = stateless.find_outputs("*")
    assert WEB_CLIENT_URL_OUTPUT in outputs and LOCAL_PAGE_OUTPUT not in outputs


@pytest.fixture(scope="module")
def unhosted(tmp_path_factory):
    """`-c hosting=false`: for a new account CloudFront refuses until AWS verifies it."""
    return synthesize(tmp_path_factory.mktemp("unhosted"), hosting="false")


@pytest.mark.parametrize("stage_name", ["Dev", "Prod"])
def test_without_hosting_there_is_no_distribution_bucket_or_deployment(unhosted, stage_name):
    template = Template.from_stack(unhosted.stages[stage_name].stateless)
    for resource_type in (
        "AWS::CloudFront::Distribution",
        "AWS::CloudFront::OriginAccessControl",
        "AWS::S3::Bucket",
        "Custom::CDKBucketDeployment",
    ):
        template.resource_count_is(resource_type, 0)
    # The rest of the stage is all there.
    template.resource_count_is("AWS::ApiGatewayV2::Api", 1)
    assert image_function(template)


@pytest.mark.parametrize("stage_name", ["Dev", "Prod"])
def test_without_hosting_the_local_page_may_connect_and_the_outputs_say_how(unhosted, stage_name):
    template = Template.from_stack(unhosted.stages[stage_name].stateless)
    allowed = router_allowed_origins(template).split(",")
    assert set(LOCAL_PAGE_ORIGINS) <= set(allowed)
    assert len(allowed) == len(set(allowed))
    outputs = template.find_outputs("*")
    assert WEB_CLIENT_URL_OUTPUT not in outputs
    local = outputs[LOCAL_PAGE_OUTPUT]
    assert LOCAL_PAGE_COMMAND in local["Description"]
    # http://127.0.0.1:8787/?ws=wss://{api}.execute-api.{region}.{suffix}/{stage}
    (api_id,) = template.find_resources("AWS::ApiGatewayV2::Api")
    parts = local["Value"]["Fn::Join"][1]
    assert parts[0] == f"{LOCAL_PAGE_ORIGINS[1]}/?ws=wss://"
    assert {"Ref": api_id} in parts
    assert parts[-1] == f"/{stage_name.lower()}"
    # The served origin is one the router allows.
    assert LOCAL_PAGE_COMMAND.split()[3:6] == ["8787", "--bind", "127.0.0.1"]


def test_hosting_is_a_stage_setting():
    configs = stage_configs({"Prod.hosting": "false"})
    assert (configs["Dev"].hosting, configs["Prod"].hosting) == (True, False)
    assert configs["Prod"].page_origins == LOCAL_PAGE_ORIGINS
    assert configs["Dev"].page_origins == ()

"""The hosted page: private bucket, CloudFront with OAC, HTTPS, config.json at deploy."""

import json

from infra.constructs.web_client_hosting import page_config
from tests.infra.cdk_helpers import only


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

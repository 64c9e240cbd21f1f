"""offline.template against the app's real synthesized templates, and small handwritten ones."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from offline.template import (
    SUPPORTED_INTRINSICS,
    Resolver,
    Resource,
    StageAssembly,
    TemplateError,
    UnresolvedReference,
)
from tests.twin_assembly import synth

ACCOUNT = "123456789012"


@pytest.fixture(scope="session")
def cdk_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Pinned like `make synth` on a machine without credentials, whatever this shell has.
    pinned = {"CDK_DEFAULT_REGION": "us-east-1", "CDK_DEFAULT_ACCOUNT": None}
    return synth(tmp_path_factory.mktemp("cdk.out"), environment=pinned)


@pytest.fixture(scope="session")
def dev(cdk_out: Path) -> StageAssembly:
    return StageAssembly.load(cdk_out, "Dev")


@pytest.fixture(scope="session")
def prod(cdk_out: Path) -> StageAssembly:
    return StageAssembly.load(cdk_out, "Prod")


@pytest.fixture
def resolver(dev: StageAssembly) -> Resolver:
    return Resolver(dev, account_id=ACCOUNT)


def environment_of(resolver: Resolver, function: Resource) -> dict[str, str]:
    return resolver.resolve(function.properties["Environment"]["Variables"], function.stack)


# -- the app's Dev and Prod stages --------------------------------------------------------


def test_stage_lists_its_stacks_and_region(dev: StageAssembly) -> None:
    assert set(dev.stacks) == {"Dev-Stateful", "Dev-Stateless"}
    assert dev.region == "us-east-1"
    assert dev.account is None  # synthesized without credentials
    table = dev.find("ConnectionTable")
    assert table == dev.get("Dev-Stateful", "ConnectionTable")
    assert table.construct_path == "Dev/Stateful/ConnectionTable/Table/Resource"
    assert all(r.stack in dev.stacks for r in dev.resources())
    functions = dev.resources("AWS::Lambda::Function")
    assert {f.type for f in functions} == {"AWS::Lambda::Function"}


def test_unknown_stage_names_the_known_ones(cdk_out: Path) -> None:
    with pytest.raises(TemplateError, match=r"'Staging'.*Dev, Prod"):
        StageAssembly.load(cdk_out, "Staging")
    assert StageAssembly.load(cdk_out, "assembly-Prod").stage == "Prod"


def test_missing_assembly_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match=r"manifest\.json is missing"):
        StageAssembly.load(tmp_path, "Dev")


def test_find_by_path_suffix_and_its_errors(dev: StageAssembly) -> None:
    secret = dev.find("Inference/AccessKey")
    assert secret.type == "AWS::SecretsManager::Secret"
    assert dev.find(secret.logical_id) == secret
    with pytest.raises(TemplateError, match="ambiguous"):
        dev.find("Runtime/Function")  # router and dispatch-failure functions
    with pytest.raises(TemplateError, match="no resource"):
        dev.find("Nowhere/Thing")


def test_find_by_whole_segments_when_no_path_ends_with_them(dev: StageAssembly) -> None:
    function = dev.find("Inference", "AWS::Lambda::Function")
    assert function.construct_path.endswith("/Inference/Function/Resource")
    assert dev.find("Stateless/Inference", "AWS::Lambda::Function") == function
    # Among every type, the construct's secret, function and alias all hold it.
    with pytest.raises(TemplateError, match="ambiguous"):
        dev.find("Inference")
    # A suffix wins over the resources that only hold it: not the function's children.
    assert dev.find("Inference/Function").type == "AWS::Lambda::Function"
    with pytest.raises(TemplateError, match="no resource of type AWS::Lambda::Function"):
        dev.find("Inference/AccessKey", "AWS::Lambda::Function")
    with pytest.raises(TemplateError, match="no resource"):
        dev.find("ference", "AWS::Lambda::Function")  # part of a segment is not a segment


def test_router_environment_resolves_alias_and_cross_stack_table(
    dev: StageAssembly, resolver: Resolver
) -> None:
    router = dev.find("Router/Runtime/Function")
    env = environment_of(resolver, router)
    alias = dev.find("Inference/Live")
    function = dev.find("Inference/Function")

    assert env["INFERENCE_FUNCTION"] == resolver.ref(alias)
    assert env["INFERENCE_FUNCTION"] == resolver.get_att(function, "Arn") + ":live"
    assert env["INFERENCE_FUNCTION"].startswith(f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:")
    # TABLE_NAME is a weak cross-stack reference (Fn::GetStackOutput to the Stateful stack).
    assert env["TABLE_NAME"] == resolver.ref(dev.get("Dev-Stateful", "ConnectionTable"))
    assert env["ALLOWED_ORIGINS"].endswith(".cloudfront.net")
    assert all(isinstance(value, str) for value in env.values())


def test_event_invoke_config_qualifier_is_the_alias_name(
    dev: StageAssembly, resolver: Resolver
) -> None:
    config = dev.find("Inference/Live/EventInvokeConfig")
    props = resolver.resolve(config.properties, config.stack)
    assert props["Qualifier"] == "live"
    assert props["FunctionName"] == resolver.physical_name(dev.find("Inference/Function"))
    failure = dev.find("DispatchFailure/Runtime/Function")
    assert props["DestinationConfig"]["OnFailure"]["Destination"] == resolver.get_att(
        failure, "Arn"
    )


def test_version_and_alias_follow_the_function(dev: StageAssembly, resolver: Resolver) -> None:
    (version,) = dev.resources("AWS::Lambda::Version")
    function_arn = resolver.get_att(dev.find("Inference/Function"), "Arn")
    assert resolver.ref(version) == function_arn + ":1"
    assert resolver.get_att(version, "Version") == "1"
    alias = dev.find("Inference/Live")
    assert resolver.resolve(alias.properties["FunctionVersion"], alias.stack) == "1"
    assert "ProvisionedConcurrencyConfig" not in alias.properties  # Dev keeps none warm


def test_execute_api_grant_resolves_to_the_connections_arn(
    dev: StageAssembly, resolver: Resolver
) -> None:
    api = dev.find("WebSocket/Api")
    api_id = resolver.ref(api)
    assert re.fullmatch(r"[a-z0-9]{10}", api_id)
    policy = dev.find("Router/Runtime/Role/DefaultPolicy")
    statements = resolver.resolve(policy.properties["PolicyDocument"], policy.stack)["Statement"]
    (grant,) = [s for s in statements if s["Action"] == "execute-api:ManageConnections"]
    expected = f"arn:aws:execute-api:us-east-1:{ACCOUNT}:{api_id}/dev/POST/@connections/*"
    assert expected in grant["Resource"]
    assert (
        resolver.get_att(api, "ApiEndpoint")
        == f"wss://{api_id}.execute-api.us-east-1.amazonaws.com"
    )
    assert resolver.output("Dev-Stateless", "WebSocketUrl") == (
        f"wss://{api_id}.execute-api.us-east-1.amazonaws.com/dev"
    )


def test_image_function_has_its_build_settings(dev: StageAssembly) -> None:
    image = dev.image_asset(dev.find("Inference/Function"))
    assert image is not None
    assert (image.directory / image.dockerfile).is_file()
    assert image.dockerfile == "Dockerfile"
    assert "MODEL_FILE" in image.build_args
    assert image.platform == "linux/amd64"
    assert dev.find("Inference/Function").asset_dir == image.directory

    router = dev.find("Router/Runtime/Function")
    assert dev.image_asset(router) is None
    assert router.asset_dir is not None
    assert (router.asset_dir / "llambda" / "handlers").is_dir()


def test_prod_authorizer_and_identity_source(prod: StageAssembly) -> None:
    resolver = Resolver(prod, account_id=ACCOUNT)
    (authorizer,) = prod.resources("AWS::ApiGatewayV2::Authorizer")
    assert authorizer.properties["AuthorizerType"] == "REQUEST"
    assert authorizer.properties["IdentitySource"] == ["route.request.querystring.token"]
    routes = {
        resolver.resolve(r.properties["RouteKey"], r.stack): r
        for r in prod.resources("AWS::ApiGatewayV2::Route")
    }
    connect = resolver.resolve(routes["$connect"].properties, routes["$connect"].stack)
    assert connect["AuthorizationType"] == "CUSTOM"
    assert connect["AuthorizerId"] == resolver.ref(authorizer)
    uri = resolver.resolve(authorizer.properties["AuthorizerUri"], authorizer.stack)
    assert resolver.get_att(prod.find("Authorizer/Runtime/Function"), "Arn") in uri
    token = environment_of(resolver, prod.find("Authorizer/Runtime/Function"))["TOKEN_SECRET_ARN"]
    assert token == resolver.ref(prod.find("Authorizer/Token"))
    live = prod.find("Inference/Live")
    assert live.properties["ProvisionedConcurrencyConfig"]["ProvisionedConcurrentExecutions"] >= 1


def test_dev_has_no_authorizer(dev: StageAssembly) -> None:
    assert dev.resources("AWS::ApiGatewayV2::Authorizer") == []


def test_unknown_attribute_and_resource_raise(dev: StageAssembly, resolver: Resolver) -> None:
    secret = dev.find("Inference/AccessKey")
    with pytest.raises(UnresolvedReference, match=rf"Dev-Stateless.*{secret.logical_id}.*'Nope'"):
        resolver.resolve({"Fn::GetAtt": [secret.logical_id, "Nope"]}, secret.stack)
    with pytest.raises(UnresolvedReference, match="Ghost"):
        resolver.resolve({"Ref": "Ghost"}, secret.stack)
    with pytest.raises(UnresolvedReference, match="Ghost"):
        resolver.resolve({"Fn::GetAtt": ["Ghost", "Arn"]}, secret.stack)
    # The bootstrap version parameter's Default is an SSM name, not a value.
    with pytest.raises(UnresolvedReference, match="SSM"):
        resolver.resolve({"Ref": "BootstrapVersion"}, secret.stack)


def test_set_overrides_the_secret_arn_everywhere(dev: StageAssembly, resolver: Resolver) -> None:
    secret = dev.find("Inference/AccessKey")
    inference = dev.find("Inference/Function")
    generated = environment_of(resolver, inference)["ACCESS_KEY_SECRET_ARN"]
    assert generated.startswith(f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:")

    assigned = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:from-moto-AbCdEf"
    resolver.set(secret, ref=assigned)
    assert environment_of(resolver, inference)["ACCESS_KEY_SECRET_ARN"] == assigned
    assert resolver.get_att(secret, "Id") == assigned


def test_set_function_name_moves_arn_and_alias(dev: StageAssembly, resolver: Resolver) -> None:
    resolver.set(dev.find("Inference/Function"), ref="inference")
    router = environment_of(resolver, dev.find("Router/Runtime/Function"))
    assert router["INFERENCE_FUNCTION"] == (
        f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:inference:live"
    )


def test_defaults_are_deterministic_and_within_limits(dev: StageAssembly) -> None:
    first, second = (Resolver(dev, account_id=ACCOUNT) for _ in range(2))
    for resource in dev.resources():
        assert first.ref(resource) == second.ref(resource)
    for function in dev.resources("AWS::Lambda::Function"):
        assert len(first.physical_name(function)) <= 64
    for role in dev.resources("AWS::IAM::Role"):
        assert len(first.physical_name(role)) <= 64
    for bucket in dev.resources("AWS::S3::Bucket"):
        name = first.physical_name(bucket)
        assert len(name) <= 63 and name == name.lower()
    table = dev.find("ConnectionTable")
    assert first.physical_name(table).startswith("Dev-Stateful-ConnectionTable-")


def test_resolver_refuses_another_region(dev: StageAssembly) -> None:
    # The templates spell us-east-1 out in ARNs; another region would mix two.
    with pytest.raises(ValueError, match="us-east-1"):
        Resolver(dev, account_id=ACCOUNT, region="eu-west-1")


@pytest.mark.slow
def test_environment_agnostic_stage(tmp_path: Path) -> None:
    agnostic = {"CDK_DEFAULT_REGION": None, "CDK_DEFAULT_ACCOUNT": None}
    out = synth(tmp_path / "cdk.out", environment=agnostic)
    stage = StageAssembly.load(out, "Dev")
    assert stage.region is None
    with pytest.raises(ValueError, match="region"):
        Resolver(stage, account_id=ACCOUNT)
    resolver = Resolver(stage, account_id=ACCOUNT, region="eu-west-1")
    router = stage.find("Router/Runtime/Function")
    env = environment_of(resolver, router)
    # Fn::GetStackOutput's Region is {"Ref": "AWS::Region"} here.
    assert env["TABLE_NAME"] == resolver.ref(stage.find("ConnectionTable"))
    assert env["INFERENCE_FUNCTION"].startswith(f"arn:aws:lambda:eu-west-1:{ACCOUNT}:")
    image = resolver.resolve(stage.find("Inference/Function").properties["Code"], router.stack)
    assert image["ImageUri"].startswith(f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/")


# -- handwritten templates ----------------------------------------------------------------


def write_assembly(
    out: Path,
    templates: dict[str, dict[str, Any]],
    region: str = "eu-west-1",
    assets: dict[str, Any] | None = None,
) -> StageAssembly:
    """A minimal cloud assembly with one stage "Test" holding `templates` (name -> body)
    and, when given, one asset manifest (`files` and `dockerImages`)."""
    nested = out / "assembly-Test"
    nested.mkdir(parents=True)
    artifacts = {}
    for name, template in templates.items():
        (nested / f"{name}.template.json").write_text(json.dumps(template))
        artifacts[name] = {
            "type": "aws:cloudformation:stack",
            "environment": f"aws://unknown-account/{region}",
            "properties": {"templateFile": f"{name}.template.json", "stackName": name},
        }
    if assets is not None:
        (nested / "Test.assets.json").write_text(json.dumps(assets))
        artifacts["Test.assets"] = {
            "type": "cdk:asset-manifest",
            "properties": {"file": "Test.assets.json"},
        }
    (nested / "manifest.json").write_text(json.dumps({"artifacts": artifacts}))
    top = {
        "artifacts": {
            "assembly-Test": {
                "type": "cdk:cloud-assembly",
                "properties": {"directoryName": "assembly-Test", "displayName": "Test"},
            }
        }
    }
    (out / "manifest.json").write_text(json.dumps(top))
    return StageAssembly.load(out, "Test")


SMALL = {
    "Parameters": {
        "Env": {"Type": "String", "Default": "prod"},
        "Zones": {"Type": "CommaDelimitedList", "Default": "a, b"},
    },
    "Resources": {
        "Fn": {
            "Type": "AWS::Lambda::Function",
            "Properties": {"FunctionName": {"Fn::Sub": "${AWS::StackName}-fn"}},
        },
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"FifoQueue": True}},
        "Table": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {"TableName": "things", "StreamSpecification": {}},
        },
        "Bucket": {"Type": "AWS::S3::Bucket"},
        "Loop": {"Type": "AWS::Lambda::Alias", "Properties": {"FunctionName": {"Ref": "Loop"}}},
        "ALongLogicalIdThatKeepsGoingOnAndOnAndOnAndOnAndOnAndOnAndOnAndOnAndOnAndOn": {
            "Type": "AWS::Lambda::Function",
        },
        "Thing": {"Type": "Custom::Thing"},
    },
    "Outputs": {
        "TableArn": {
            "Value": {"Fn::GetAtt": ["Table", "Arn"]},
            "Export": {"Name": {"Fn::Sub": "${AWS::StackName}:TableArn"}},
        }
    },
}
OTHER = {
    "Resources": {"Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "alerts"}}},
}


@pytest.fixture
def small(tmp_path: Path) -> Resolver:
    stage = write_assembly(tmp_path, {"Small": SMALL, "Other": OTHER})
    return Resolver(stage, account_id=ACCOUNT)


def test_sub_forms(small: Resolver) -> None:
    fn = small.assembly.get("Small", "Fn")
    assert small.physical_name(fn) == "Small-fn"
    value = small.resolve(
        {
            "Fn::Sub": [
                "${Fn.Arn}|${Fn}|${AWS::Region}|${!Literal}|${Name}|${Env}",
                {"Name": {"Ref": "AWS::AccountId"}},
            ]
        },
        "Small",
    )
    arn = f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:Small-fn"
    assert value == f"{arn}|Small-fn|eu-west-1|${{Literal}}|{ACCOUNT}|prod"
    assert small.resolve({"Fn::Sub": "${AWS::Partition}.${AWS::URLSuffix}"}, "Small") == (
        "aws.amazonaws.com"
    )


def test_join_select_split_and_getatt_dot_form(small: Resolver) -> None:
    joined = small.resolve(
        {"Fn::Join": ["/", ["a", {"Ref": "Table"}, {"Fn::GetAtt": "Table.Arn"}]]}, "Small"
    )
    assert joined == f"a/things/arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/things"
    picked = small.resolve({"Fn::Select": ["1", {"Fn::Split": [",", "x,y,z"]}]}, "Small")
    assert picked == "y"
    assert small.resolve({"Fn::Select": [1, {"Ref": "Zones"}]}, "Small") == "b"
    assert small.get_att(small.assembly.get("Small", "Table"), "StreamArn").startswith(
        f"arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/things/stream/"
    )


def test_no_value_drops_its_key_or_item(small: Resolver) -> None:
    value = {"A": "yes", "B": {"Ref": "AWS::NoValue"}, "E": ["keep", {"Ref": "AWS::NoValue"}]}
    assert small.resolve(value, "Small") == {"A": "yes", "E": ["keep"]}


@pytest.mark.parametrize(
    "intrinsic",
    [
        {"Fn::If": ["IsProd", "yes", "no"]},
        {"Fn::ImportValue": "Small:TableArn"},
        {"Fn::FindInMap": ["Sizes", "prod", "Memory"]},
        {"Fn::Base64": "x"},
        {"Fn::GetAZs": ""},
    ],
)
def test_an_intrinsic_this_app_never_emits_is_refused_by_name(small: Resolver, intrinsic) -> None:
    (name,) = intrinsic
    with pytest.raises(UnresolvedReference, match=f"does not resolve {name}; it resolves Ref"):
        small.resolve({"Key": intrinsic}, "Small")


def test_a_template_with_conditions_is_refused_with_where(tmp_path: Path) -> None:
    conditional = {
        "Conditions": {"IsProd": {"Fn::Equals": ["a", "a"]}},
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic", "Condition": "IsProd"}},
    }
    with pytest.raises(TemplateError, match="Small/Resources/Topic: the twin does not evaluate"):
        write_assembly(tmp_path, {"Small": conditional})


def test_the_apps_synthesized_stages_use_only_what_the_twin_resolves(cdk_out: Path) -> None:
    # Both stages as `make synth` writes them: were CDK to start emitting another
    # intrinsic or a condition, this says so before a twin run fails on it.
    found: set[str] = set()

    def walk(value: object) -> None:
        if isinstance(value, dict):
            found.update(k for k in value if k == "Ref" or k.startswith("Fn::"))
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    templates = sorted(cdk_out.glob("**/*.template.json"))
    assert len(templates) >= 4, templates
    for path in templates:
        template = json.loads(path.read_text())
        assert "Conditions" not in template, path
        for section in ("Resources", "Outputs"):
            walk(template.get(section, {}))
    assert found <= set(SUPPORTED_INTRINSICS), found - set(SUPPORTED_INTRINSICS)


def test_cross_stack_outputs(small: Resolver) -> None:
    arn = f"arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/things"
    output = {"StackName": "Small", "Region": "eu-west-1", "OutputName": "TableArn"}
    assert small.resolve({"Fn::GetStackOutput": output}, "Other") == arn
    with pytest.raises(UnresolvedReference, match="us-west-2"):
        small.resolve({"Fn::GetStackOutput": {**output, "Region": "us-west-2"}}, "Other")
    with pytest.raises(UnresolvedReference, match="Elsewhere"):
        small.resolve({"Fn::GetStackOutput": {**output, "StackName": "Elsewhere"}}, "Other")


def test_generated_names_by_service(small: Resolver) -> None:
    get = small.assembly.get
    queue = get("Small", "Queue")
    name = small.physical_name(queue)
    assert name.startswith("Small-Queue-") and name.endswith(".fifo")
    assert small.ref(queue) == f"https://sqs.eu-west-1.amazonaws.com/{ACCOUNT}/{name}"
    assert small.get_att(queue, "Arn") == f"arn:aws:sqs:eu-west-1:{ACCOUNT}:{name}"
    bucket = small.physical_name(get("Small", "Bucket"))
    assert bucket == bucket.lower() and bucket.startswith("small-bucket-")
    assert small.ref(get("Other", "Topic")) == f"arn:aws:sns:eu-west-1:{ACCOUNT}:alerts"
    long_fn = next(r for r in small.assembly.resources() if r.logical_id.startswith("ALong"))
    assert len(small.physical_name(long_fn)) == 64
    # set() on a queue's URL carries its name into the ARN.
    small.set(queue, ref=f"http://localhost:5000/{ACCOUNT}/q1")
    assert small.get_att(queue, "Arn") == f"arn:aws:sqs:eu-west-1:{ACCOUNT}:q1"


def test_custom_resource_attributes_need_set(small: Resolver) -> None:
    thing = small.assembly.get("Small", "Thing")
    assert small.ref(thing).startswith("Small-Thing-")
    with pytest.raises(UnresolvedReference, match=r"Small.*Thing.*'Answer'.*set\(\)"):
        small.resolve({"Fn::GetAtt": ["Thing", "Answer"]}, "Small")
    small.set(thing, Answer="42")
    assert small.resolve({"Fn::Sub": "${Thing.Answer}"}, "Small") == "42"


def test_cycles_and_unsupported_functions_raise(small: Resolver) -> None:
    with pytest.raises(UnresolvedReference, match="depends on itself"):
        small.resolve({"Ref": "Loop"}, "Small")
    with pytest.raises(UnresolvedReference, match="Fn::Cidr"):
        small.resolve({"Fn::Cidr": ["10.0.0.0/16", 2, 8]}, "Small")
    with pytest.raises(TemplateError, match="Nope"):
        small.resolve({"Ref": "Env"}, "Nope")


def test_assets_without_asset_metadata(tmp_path: Path) -> None:
    """Synthesized with --no-asset-metadata, assets are still found by their hash."""
    zip_hash, image_hash = "a" * 64, "b" * 64
    image_uri = {"Fn::Sub": "${AWS::AccountId}.dkr.ecr.${AWS::Region}.${AWS::URLSuffix}/repo:"}
    image_uri["Fn::Sub"] += image_hash
    template = {
        "Resources": {
            "Zip": {
                "Type": "AWS::Lambda::Function",
                "Properties": {"Code": {"S3Bucket": "assets", "S3Key": f"{zip_hash}.zip"}},
            },
            "Image": {
                "Type": "AWS::Lambda::Function",
                "Properties": {"Code": {"ImageUri": image_uri}, "PackageType": "Image"},
            },
            "Pulled": {
                "Type": "AWS::Lambda::Function",
                "Properties": {"Code": {"ImageUri": "public.ecr.aws/lambda/python:3.12"}},
            },
        }
    }
    assets = {
        "files": {zip_hash: {"source": {"path": f"../asset.{zip_hash}", "packaging": "zip"}}},
        "dockerImages": {
            image_hash: {
                "source": {
                    "directory": f"../asset.{image_hash}",
                    "dockerFile": "docker/Lambda.Dockerfile",
                    "dockerBuildArgs": {"A": "1"},
                    "dockerBuildTarget": "runtime",
                }
            }
        },
    }
    stage = write_assembly(tmp_path / "out", {"Apps": template}, assets=assets)
    zipped = stage.get("Apps", "Zip")
    assert zipped.asset_dir == (tmp_path / "out" / f"asset.{zip_hash}").resolve()
    assert zipped.construct_path == "Zip"
    assert stage.image_asset(zipped) is None
    image = stage.image_asset(stage.get("Apps", "Image"))
    assert image is not None
    assert image.directory == (tmp_path / "out" / f"asset.{image_hash}").resolve()
    assert (image.dockerfile, dict(image.build_args), image.target) == (
        "docker/Lambda.Dockerfile",
        {"A": "1"},
        "runtime",
    )
    assert stage.image_asset(stage.get("Apps", "Pulled")) is None
    with pytest.raises(TemplateError, match="no aws:cdk:path"):
        stage.find("Some/Path")

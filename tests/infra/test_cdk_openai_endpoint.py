"""The OpenAI-compatible endpoint in both stages: a streaming Function URL on the inference
alias `live` (the provisioned instances, one warm model for both doors), public at the
URL and refused in the function without an API key, CORS only for the configured
origins, and its settings validated before synth."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match

from infra.config import DEV, PROD, ConfigError
from infra.constructs.inference_function import ALIAS_NAME
from infra.names import OPENAI_URL_OUTPUT
from llambda.contract import GENERATION_PARAMETER_VARIABLE
from tests.infra.cdk_helpers import image_function, policies_of, role_of


def the_url(stateless):
    (url,) = stateless.find_resources("AWS::Lambda::Url").values()
    return url["Properties"]


def alias_id(stateless):
    (logical_id,) = stateless.find_resources("AWS::Lambda::Alias")
    return logical_id


def test_the_url_streams_from_the_live_alias(stateless):
    function_id, _ = image_function(stateless)
    url = the_url(stateless)
    assert url["InvokeMode"] == "RESPONSE_STREAM"
    # The alias itself (function ARN + qualifier), never $LATEST: provisioned
    # concurrency lives on the alias, so both doors share its warm instances.
    assert url["TargetFunctionArn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    assert url["Qualifier"] == ALIAS_NAME


def test_the_url_is_public_and_the_function_checks_the_key(stage, stateless):
    assert the_url(stateless)["AuthType"] == "NONE"
    _, function = image_function(stateless)
    env = function["Properties"]["Environment"]["Variables"]
    assert env["OPENAI_REQUIRE_KEY"] == "true"
    assert env["OPENAI_REQUESTS_PER_MINUTE"] == str(stage.config.openai_requests_per_minute)
    assert env["MAX_PROMPT_CHARS"] == str(stage.config.max_prompt_chars)


def test_the_function_counts_the_stages_daily_budgets_in_the_table(stage, stateless):
    _, function = image_function(stateless)
    env = function["Properties"]["Environment"]["Variables"]
    assert env["CLIENT_TOKENS_PER_DAY"] == str(stage.config.client_tokens_per_day)
    assert env["STAGE_TOKENS_PER_DAY"] == str(stage.config.stage_tokens_per_day)
    # No conversations at this door: no conversation budget.
    assert "CONVERSATION_TOKEN_BUDGET" not in env
    # A reservation and its refund are conditional UpdateItems on the stack's table.
    stateless.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "Roles": Match.array_with([{"Ref": role_of(function)}]),
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Action": Match.array_with(["dynamodb:UpdateItem"]),
                                "Effect": "Allow",
                                "Resource": Match.object_like(
                                    {"Fn::GetStackOutput": Match.any_value()}
                                ),
                            }
                        )
                    ]
                )
            },
        },
    )


def test_prod_refuses_an_unauthenticated_call():
    with pytest.raises(ConfigError, match="openaiRequireKey must be true in Prod"):
        PROD.with_overrides({"openaiRequireKey": "false"})
    assert DEV.with_overrides({"openaiRequireKey": "false"}).openai_require_key is False


def test_only_the_alias_may_be_invoked_through_the_url(stateless):
    live = {"Ref": alias_id(stateless)}
    stateless.has_resource_properties(
        "AWS::Lambda::Permission",
        {
            "Action": "lambda:InvokeFunctionUrl",
            "FunctionName": live,
            "FunctionUrlAuthType": "NONE",
            "Principal": "*",
        },
    )
    # Since October 2025 a Function URL also needs InvokeFunction, limited to URL calls.
    stateless.has_resource_properties(
        "AWS::Lambda::Permission",
        {
            "Action": "lambda:InvokeFunction",
            "FunctionName": live,
            "InvokedViaFunctionUrl": True,
            "Principal": "*",
        },
    )
    for permission in stateless.find_resources("AWS::Lambda::Permission").values():
        props = permission["Properties"]
        if props["Principal"] == "*":
            assert props["FunctionName"] == live
            assert props.get("FunctionUrlAuthType") == "NONE" or props.get("InvokedViaFunctionUrl")


def test_no_cors_without_configured_origins(stateless):
    assert "Cors" not in the_url(stateless)


def test_the_url_is_an_output(stateless):
    stateless.has_output(
        OPENAI_URL_OUTPUT,
        {"Value": {"Fn::GetAtt": [Match.string_like_regexp("^OpenAIUrl"), "FunctionUrl"]}},
    )


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"openaiRequestsPerMinute": "0"}, "openaiRequestsPerMinute is 0"),
        ({"openaiAllowedOrigins": "*"}, "openaiAllowedOrigins has '*'"),
        ({"openaiAllowedOrigins": "https://a.example/path"}, "no path"),
    ],
)
def test_endpoint_settings_are_validated(overrides, problem):
    with pytest.raises(ConfigError, match=problem):
        DEV.with_overrides(overrides)


def test_configured_origins_get_cors_and_a_stage_may_leave_the_endpoint_out(tmp_path):
    from aws_cdk.assertions import Template

    from tests.infra.conftest import synthesize

    built = synthesize(
        tmp_path / "out",
        **{
            "Dev.openaiAllowedOrigins": "https://editor.example,http://localhost:3000",
            "Prod.openaiEndpoint": "false",
        },
    )
    dev = Template.from_stack(built.stages["Dev"].stateless)
    assert the_url(dev)["Cors"] == {
        "AllowHeaders": ["authorization", "content-type"],
        "AllowMethods": ["GET", "POST"],
        "AllowOrigins": ["https://editor.example", "http://localhost:3000"],
        "MaxAge": 3600,
    }
    prod = Template.from_stack(built.stages["Prod"].stateless)
    prod.resource_count_is("AWS::Lambda::Url", 0)
    assert not [
        p
        for p in prod.find_resources("AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "*"
    ]
    _, function = image_function(prod)
    env = function["Properties"]["Environment"]["Variables"]
    assert "OPENAI_REQUIRE_KEY" not in env
    # Without the door the function reads no switch: the router refuses its replies.
    assert GENERATION_PARAMETER_VARIABLE not in env
    assert not [
        statement
        for statement in policies_of(prod, role_of(function))
        if "ssm:" in str(statement["Action"])
    ]

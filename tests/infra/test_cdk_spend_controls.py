"""The kill switch's parameter (read by both doors: the router and the OpenAI-compatible
endpoint's function) and the provisioned-concurrency schedule, both stages."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match, Template

from infra.config import DEV, PROD, ConfigError
from infra.names import GENERATION_OUTPUT
from llambda.contract import GENERATION_PARAMETER_VARIABLE
from tests.infra.cdk_helpers import function_by_handler, image_function, policies_of, role_of
from tests.infra.conftest import synthesize

ROUTER = "llambda.handlers.router.handler"
# CDK's StringParameter.grantRead: the parameter's reads, nothing that writes it.
PARAMETER_READS = [
    "ssm:DescribeParameters",
    "ssm:GetParameter",
    "ssm:GetParameterHistory",
    "ssm:GetParameters",
]


def test_one_on_off_parameter_created_on_with_no_physical_name(stateless):
    [parameter] = stateless.find_resources("AWS::SSM::Parameter").values()
    props = parameter["Properties"]
    assert props["Type"] == "String"
    assert props["Value"] == "on"
    assert props["AllowedPattern"] == "^(on|off)$"
    assert "Name" not in props  # CloudFormation names it: two stages never clash
    outputs = stateless.find_outputs(GENERATION_OUTPUT)
    [output] = outputs.values()
    assert output["Value"] == {"Ref": next(iter(stateless.find_resources("AWS::SSM::Parameter")))}


def parameter_arn(parameter_id: str) -> dict:
    return {
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Partition"},
                ":ssm:",
                {"Ref": "AWS::Region"},
                ":",
                {"Ref": "AWS::AccountId"},
                ":parameter/",
                {"Ref": parameter_id},
            ],
        ]
    }


def the_doors(stateless) -> dict[str, tuple[str, dict]]:
    """The router and the function the OpenAI-compatible endpoint's URL serves."""
    return {"router": function_by_handler(stateless, ROUTER), "openai": image_function(stateless)}


@pytest.mark.parametrize("door", ["router", "openai"])
def test_each_door_is_given_the_parameter_by_its_name_and_may_read_it(stateless, door):
    [parameter_id] = stateless.find_resources("AWS::SSM::Parameter")
    _, function = the_doors(stateless)[door]
    role = role_of(function)
    stateless.has_resource(
        "AWS::Lambda::Function",
        {
            "Properties": {
                "Role": {"Fn::GetAtt": [role, "Arn"]},
                "Environment": {
                    "Variables": Match.object_like(
                        {GENERATION_PARAMETER_VARIABLE: {"Ref": parameter_id}}
                    )
                },
            }
        },
    )
    stateless.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "Roles": Match.array_with([{"Ref": role}]),
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        {
                            "Action": PARAMETER_READS,
                            "Effect": "Allow",
                            "Resource": parameter_arn(parameter_id),
                        }
                    ]
                )
            },
        },
    )


def test_only_the_two_doors_read_the_parameter_and_only_it(stateless):
    [parameter_id] = stateless.find_resources("AWS::SSM::Parameter")
    readers = []
    for logical_id, function in stateless.find_resources("AWS::Lambda::Function").items():
        if "Fn::GetAtt" not in function["Properties"].get("Role", {}):
            continue
        for statement in policies_of(stateless, role_of(function)):
            actions = statement["Action"]
            actions = [actions] if isinstance(actions, str) else actions
            if any(a.startswith("ssm:") for a in actions):
                readers.append(logical_id)
                assert set(actions) <= set(PARAMETER_READS)
                assert statement["Resource"] == parameter_arn(parameter_id)  # never "*"
    assert sorted(readers) == sorted(fid for fid, _ in the_doors(stateless).values())


def test_dev_is_provisioned_in_office_hours_only(stage, stateless):
    if stage.config.stage_name != "Dev":
        stateless.resource_count_is("AWS::ApplicationAutoScaling::ScalableTarget", 0)
        return
    [alias_id] = stateless.find_resources("AWS::Lambda::Alias")
    [target] = stateless.find_resources("AWS::ApplicationAutoScaling::ScalableTarget").values()
    props = target["Properties"]
    assert props["ServiceNamespace"] == "lambda"
    assert props["ScalableDimension"] == "lambda:function:ProvisionedConcurrency"
    assert (props["MinCapacity"], props["MaxCapacity"]) == (0, 1)
    # The alias's own resource id (function:<name>:live), not the function's.
    name = {"Fn::Select": [6, {"Fn::Split": [":", {"Ref": alias_id}]}]}
    assert props["ResourceId"] == {"Fn::Join": ["", ["function:", name, ":live"]]}
    actions = {a["ScheduledActionName"]: a for a in props["ScheduledActions"]}
    assert actions.keys() == {"ProvisionedStart", "ProvisionedStop"}
    start, stop = actions["ProvisionedStart"], actions["ProvisionedStop"]
    assert start["Schedule"] == "cron(0 8 ? * MON-FRI *)"
    assert stop["Schedule"] == "cron(0 18 ? * MON-FRI *)"
    assert start["ScalableTargetAction"] == {"MinCapacity": 1, "MaxCapacity": 1}
    assert stop["ScalableTargetAction"] == {"MinCapacity": 0, "MaxCapacity": 0}
    assert start["Timezone"] == stop["Timezone"] == "UTC"
    # The schedule owns the alias's provisioned concurrency: the alias declares none.
    stateless.has_resource_properties(
        "AWS::Lambda::Alias", {"ProvisionedConcurrencyConfig": Match.absent()}
    )


def test_prod_keeps_its_instance_all_day(stage, stateless):
    if stage.config.stage_name != "Prod":
        return
    stateless.has_resource_properties(
        "AWS::Lambda::Alias",
        {"ProvisionedConcurrencyConfig": {"ProvisionedConcurrentExecutions": 1}},
    )


def test_a_schedule_in_a_time_zone_and_the_option_of_none(tmp_path):
    synthesized = synthesize(
        tmp_path / "zone",
        **{
            "Prod.provisionedHours": "7-19",
            "Prod.provisionedDays": "MON-SAT",
            "Prod.provisionedTimeZone": "Europe/Berlin",
            "Dev.provisionedConcurrency": "0",
        },
    )
    prod = Template.from_stack(synthesized.stages["Prod"].stateless)
    [target] = prod.find_resources("AWS::ApplicationAutoScaling::ScalableTarget").values()
    props = target["Properties"]
    assert (props["MinCapacity"], props["MaxCapacity"]) == (0, 1)
    schedules = {a["Schedule"] for a in props["ScheduledActions"]}
    assert schedules == {"cron(0 7 ? * MON-SAT *)", "cron(0 19 ? * MON-SAT *)"}
    assert {a["Timezone"] for a in props["ScheduledActions"]} == {"Europe/Berlin"}
    # None at all: no scaling target and no provisioned concurrency on the alias.
    dev = Template.from_stack(synthesized.stages["Dev"].stateless)
    dev.resource_count_is("AWS::ApplicationAutoScaling::ScalableTarget", 0)
    dev.has_resource_properties(
        "AWS::Lambda::Alias", {"ProvisionedConcurrencyConfig": Match.absent()}
    )


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"provisionedHours": "18-08"}, "provisionedHours is '18-08'"),
        ({"provisionedHours": "8-24"}, "provisionedHours is '8-24'"),
        ({"provisionedHours": "8"}, "START-STOP"),
        ({"provisionedDays": "FRI-MON"}, "provisionedDays is 'FRI-MON'"),
        ({"provisionedDays": "weekdays"}, "cron days of the week"),
        ({"provisionedTimeZone": "Mars/Olympus"}, "IANA time zone"),
        ({"stageTokensPerDay": 10}, "stageTokensPerDay is 10"),
        ({"clientTokensPerDay": -1}, "clientTokensPerDay is -1"),
    ],
)
def test_a_schedule_or_budget_that_cannot_work_is_refused_by_name(overrides, words):
    with pytest.raises(ConfigError, match=words):
        DEV.with_overrides(overrides)


def test_budgets_may_be_turned_off_with_zero():
    config = PROD.with_overrides({"conversationTokenBudget": "0", "stageTokensPerDay": "0"})
    assert (config.conversation_token_budget, config.stage_tokens_per_day) == (0, 0)

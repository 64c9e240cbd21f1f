"""The table: keys, TTL, billing, and what survives a teardown."""

import json
import re

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk.assertions import Template

from infra.stateful_stack import TABLE_LOGICAL_ID, replacement_fingerprint
from llambda.contract import TABLE_PARTITION_KEY, TABLE_TTL_ATTRIBUTE


def test_key_schema_ttl_and_on_demand_billing(stateful):
    # The key the runtime's stores write (single-table: `connection#…`, `conversation#…`).
    stateful.resource_count_is("AWS::DynamoDB::Table", 1)
    stateful.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "KeySchema": [{"AttributeName": TABLE_PARTITION_KEY, "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": TABLE_PARTITION_KEY, "AttributeType": "S"}],
            "TimeToLiveSpecification": {"AttributeName": TABLE_TTL_ATTRIBUTE, "Enabled": True},
            "BillingMode": "PAY_PER_REQUEST",
        },
    )


def test_logical_id_is_pinned(stage, stateful):
    # A changed logical id would make CloudFormation replace the table (and lose its items):
    # the construct was renamed for what it holds, its table's logical id and path were not.
    assert list(stateful.find_resources("AWS::DynamoDB::Table")) == ["ConnectionTable"]
    assert TABLE_LOGICAL_ID == "ConnectionTable"
    cfn_table = stage.stateful.table.node.default_child
    assert cfn_table.node.path == f"{stage.node.id}/Stateful/ConnectionTable/Table/Resource"


def test_removal_policy_and_recovery_per_stage(stage, stateful):
    prod = stage.config.stage_name == "Prod"
    policy = "Retain" if prod else "Delete"
    stateful.has_resource(
        "AWS::DynamoDB::Table",
        {"DeletionPolicy": policy, "UpdateReplacePolicy": policy},
    )
    (table,) = stateful.find_resources("AWS::DynamoDB::Table").values()
    recovery = table["Properties"].get("PointInTimeRecoverySpecification", {})
    assert recovery.get("PointInTimeRecoveryEnabled", False) is prod


def test_the_stateless_stack_reads_the_table_through_fingerprinted_outputs(stage, stateful):
    """Weak references resolve only when the reading stack is updated: the output names
    carry the table's replacement fingerprint, so a replaced table changes both templates."""
    outputs = stateful.find_outputs("*")
    fingerprint = replacement_fingerprint(stage.stateful.table.node.default_child)
    assert outputs[f"ConnectionTableName{fingerprint}"]["Value"] == {"Ref": "ConnectionTable"}
    assert outputs[f"ConnectionTableArn{fingerprint}"]["Value"] == {
        "Fn::GetAtt": ["ConnectionTable", "Arn"]
    }
    text = json.dumps(Template.from_stack(stage.stateless).to_json())
    read = set(re.findall(r'"Fn::GetStackOutput": (\{[^}]*\})', text))
    assert {json.loads(r)["OutputName"] for r in read} == set(outputs)
    assert {json.loads(r)["StackName"] for r in read} == {stage.stateful.stack_name}
    # Not a reference CDK tracks, so the deploy order is explicit.
    assert stage.stateful in stage.stateless.dependencies


def fingerprint_of(**table_props):
    stack = cdk.Stack(cdk.App(), "Probe")
    table = dynamodb.Table(stack, "Table", **table_props)
    cfn_table = table.node.default_child
    cfn_table.override_logical_id("ConnectionTable")
    return replacement_fingerprint(cfn_table)


def test_only_a_change_that_replaces_the_table_changes_its_fingerprint():
    key = dynamodb.Attribute(name=TABLE_PARTITION_KEY, type=dynamodb.AttributeType.STRING)
    base = fingerprint_of(partition_key=key)
    assert base == fingerprint_of(partition_key=key)
    # An update in place: the same table, the same outputs.
    assert base == fingerprint_of(
        partition_key=key, billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST
    )
    # As when `connectionId` became `pk`: CloudFormation replaces the table.
    other_key = dynamodb.Attribute(name="connectionId", type=dynamodb.AttributeType.STRING)
    assert base != fingerprint_of(partition_key=other_key)
    sort_key = dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING)
    assert base != fingerprint_of(partition_key=key, sort_key=sort_key)
    assert base != fingerprint_of(partition_key=key, table_name="named")

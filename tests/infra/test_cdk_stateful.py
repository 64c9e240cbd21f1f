"""The table: keys, TTL, billing, and what survives a teardown."""

from infra.stateful_stack import TABLE_LOGICAL_ID
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

"""The table: keys, TTL, billing, and what survives a teardown."""

from infra.stateful_stack import CONNECTION_TABLE_LOGICAL_ID
from llambda.table import PARTITION_KEY


def test_key_schema_ttl_and_on_demand_billing(stateful):
    # The key the runtime's stores write (single-table: `connection#…`, `conversation#…`).
    stateful.resource_count_is("AWS::DynamoDB::Table", 1)
    stateful.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "KeySchema": [{"AttributeName": PARTITION_KEY, "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": PARTITION_KEY, "AttributeType": "S"}],
            "TimeToLiveSpecification": {"AttributeName": "expiresAt", "Enabled": True},
            "BillingMode": "PAY_PER_REQUEST",
        },
    )


def test_logical_id_is_pinned(stateful):
    # A changed logical id would make CloudFormation replace the table (and lose its items).
    assert list(stateful.find_resources("AWS::DynamoDB::Table")) == [CONNECTION_TABLE_LOGICAL_ID]
    assert CONNECTION_TABLE_LOGICAL_ID == "ConnectionTable"


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

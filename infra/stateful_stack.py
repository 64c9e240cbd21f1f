"""Resources that hold data: deployed, and torn down, apart from the code that uses them.

The stateless stack reads the table through `TableReference`: `Fn::GetStackOutput` of
outputs whose names carry a fingerprint of everything that would make CloudFormation
replace the table. A weak reference is resolved only when the consuming stack is updated,
and an unchanged template is not updated, so a replaced table would leave the functions on
the old one; with the fingerprint in the output names, a change that replaces the table
changes the stateless template too, and `cdk deploy` updates it onto the new table.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from infra.checkov import acknowledge_checkov
from infra.config import StageConfig
from infra.constructs.conversation_table import ConversationTable

# Pinned so that moving or renaming the construct can never replace (and empty) the table:
# it keeps the name it had when it held only connections, as does the construct's id.
TABLE_LOGICAL_ID = "ConnectionTable"
TABLE_CONSTRUCT_ID = "ConnectionTable"


def replacement_fingerprint(cfn_table: dynamodb.CfnTable) -> str:
    """A short hash of the table's properties whose change replaces it (CloudFormation's
    AWS::DynamoDB::Table: its name, key schema and local indexes), and its logical id."""
    facts = cdk.Stack.of(cfn_table).resolve(
        {
            "logicalId": cfn_table.logical_id,
            "tableName": cfn_table.table_name,
            "keySchema": cfn_table.key_schema,
            "attributeDefinitions": cfn_table.attribute_definitions,
            "localSecondaryIndexes": cfn_table.local_secondary_indexes,
        }
    )
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:8].upper()


@dataclass(frozen=True)
class TableReference:
    """The stateful stack's outputs the stateless stack reads the table from."""

    stack_name: str
    name_output: str
    arn_output: str

    def table(self, scope: Construct, construct_id: str) -> dynamodb.ITable:
        """The table, for grants in `scope`'s stack (a weak reference to its ARN)."""
        return dynamodb.Table.from_table_attributes(
            scope,
            construct_id,
            table_arn=cdk.Fn.get_stack_output(self.stack_name, self.arn_output),
        )

    @property
    def table_name(self) -> str:
        """The table's name, for the functions' environment (a weak reference)."""
        return cdk.Fn.get_stack_output(self.stack_name, self.name_output)


class StatefulStack(cdk.Stack):
    """The conversation table."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: StageConfig, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        conversations = ConversationTable(self, TABLE_CONSTRUCT_ID, config=config)
        cfn_table = conversations.table.node.default_child
        assert isinstance(cfn_table, dynamodb.CfnTable)
        cfn_table.override_logical_id(TABLE_LOGICAL_ID)
        self.table: dynamodb.ITable = conversations.table
        fingerprint = replacement_fingerprint(cfn_table)
        outputs = {
            kind: cdk.CfnOutput(
                self,
                f"{TABLE_LOGICAL_ID}{kind}{fingerprint}",
                value=value,
                description=f"The table's {kind.lower()} (the suffix changes with any change "
                "that would replace the table)",
            ).node.id
            for kind, value in (("Name", self.table.table_name), ("Arn", self.table.table_arn))
        }
        self.table_reference = TableReference(
            stack_name=self.stack_name, name_output=outputs["Name"], arn_output=outputs["Arn"]
        )
        acknowledge_checkov(self, config)

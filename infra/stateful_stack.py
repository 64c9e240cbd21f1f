"""Resources that hold data: deployed, and torn down, apart from the code that uses them."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from infra.config import StageConfig
from infra.constructs.connection_table import ConnectionTable

# Pinned so that moving the construct in the tree can never replace (and empty) the table.
CONNECTION_TABLE_LOGICAL_ID = "ConnectionTable"


class StatefulStack(cdk.Stack):
    """The connection table."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: StageConfig, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        connection_table = ConnectionTable(self, "ConnectionTable", config=config)
        cfn_table = connection_table.table.node.default_child
        assert isinstance(cfn_table, dynamodb.CfnTable)
        cfn_table.override_logical_id(CONNECTION_TABLE_LOGICAL_ID)
        self.table: dynamodb.ITable = connection_table.table

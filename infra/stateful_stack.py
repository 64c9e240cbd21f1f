"""Resources that hold data: deployed, and torn down, apart from the code that uses them."""

from __future__ import annotations

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
        acknowledge_checkov(self, config)

"""The stack's DynamoDB table of conversations: one item per conversation, and one per
live WebSocket connection attached to them (a single-table design keyed by typed ids;
lambda_image/llambda/table.py reads it)."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from infra.config import StageConfig
from llambda.contract import TABLE_PARTITION_KEY, TABLE_TTL_ATTRIBUTE


class ConversationTable(Construct):
    """Partition key `pk` (a typed id: `connection#…` or `conversation#…`), TTL `expiresAt`,
    on-demand; retained where data matters."""

    def __init__(self, scope: Construct, construct_id: str, *, config: StageConfig) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(
                name=TABLE_PARTITION_KEY, type=dynamodb.AttributeType.STRING
            ),
            time_to_live_attribute=TABLE_TTL_ATTRIBUTE,
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=config.point_in_time_recovery
            ),
            removal_policy=(
                cdk.RemovalPolicy.RETAIN if config.retain_data else cdk.RemovalPolicy.DESTROY
            ),
        )
        if not config.point_in_time_recovery:
            cdk.Validations.of(self.table).acknowledge(
                cdk.Acknowledgment(
                    id="AwsSolutions-DDB3",
                    reason=(
                        f"{config.stage_name} keeps connection records that expire within "
                        f"hours and conversations that expire {config.conversation_ttl_days} "
                        "days after their last use; point-in-time recovery is enabled where "
                        "pointInTimeRecovery=true (Prod)."
                    ),
                )
            )

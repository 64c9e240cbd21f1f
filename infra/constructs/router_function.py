"""The router: owns `$connect`, `$disconnect` and `$default`, and dispatches chats."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.config import StageConfig
from infra.constructs.runtime_function import RuntimeFunction

HANDLER = "llambda.handlers.router.handler"


class RouterFunction(Construct):
    """Validates, updates the table, and invokes the inference alias asynchronously."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        table: dynamodb.ITable,
        table_name: str,
        inference_alias: lambda_.IAlias,
    ) -> None:
        super().__init__(scope, construct_id)
        runtime = RuntimeFunction(
            self,
            "Runtime",
            config=config,
            handler=HANDLER,
            description=f"llambda {config.stage_name}: WebSocket routes, ack-and-dispatch",
            memory_mb=config.router_memory_mb,
            timeout=cdk.Duration.seconds(config.router_timeout_seconds),
            environment=config.router_environment(
                table_name=table_name,
                # The alias ARN, never the bare function: $LATEST has no provisioned
                # concurrency and no async invoke config.
                inference_function=inference_alias.function_arn,
            ),
        )
        self.function = runtime.function
        table.grant_read_write_data(self.function)
        inference_alias.grant_invoke(self.function)

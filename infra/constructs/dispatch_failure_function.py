"""The async on-failure destination of the inference alias, and its dead-letter queue.

When a dispatched chat cannot run (throttled at reserved concurrency, or older than the
maximum event age), Lambda hands the event to this function, which tells the client
`unavailable` and frees the connection's lease. Should that fail too, the event lands in
the dead-letter queue, which has an alarm.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.config import StageConfig
from infra.constructs.runtime_function import RuntimeFunction

HANDLER = "llambda.handlers.dispatch_failure.handler"
# A dead letter is a failed dispatch event, the user's prompt included: kept long enough
# for the DeadLetterQueueDepth alarm to be seen over a weekend, and no longer (SQS allows
# up to 14 days).
DEAD_LETTER_RETENTION = cdk.Duration.days(4)
FAILURE_EVENT_MAX_AGE = cdk.Duration.hours(1)


class DispatchFailureFunction(Construct):
    """Reports undeliverable dispatches to the client; keeps what it cannot report."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        table: dynamodb.ITable,
        table_name: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=DEAD_LETTER_RETENTION,
        )
        cdk.Validations.of(self.dead_letter_queue).acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions-SQS3",
                reason="This queue is itself the dead-letter queue of the failure handler.",
            )
        )
        runtime = RuntimeFunction(
            self,
            "Runtime",
            config=config,
            handler=HANDLER,
            description=f"llambda {config.stage_name}: tells clients a dispatch failed",
            timeout=cdk.Duration.seconds(30),
            environment=config.dispatch_failure_environment(table_name=table_name),
            dead_letter_queue=self.dead_letter_queue,
        )
        self.function = runtime.function
        # Destination invocations are asynchronous: retry twice, then keep the event. An
        # hour on: telling a client its chat failed is useless by then (Lambda's default
        # keeps the event, prompt included, for 6 hours).
        self.function.configure_async_invoke(retry_attempts=2, max_event_age=FAILURE_EVENT_MAX_AGE)
        table.grant_read_write_data(self.function)

"""Alarms (to an SNS topic) and a dashboard of what users feel: speed, replies, errors."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.config import StageConfig
from llambda import contract
from llambda.prices import PRICES

# What the runtime emits (Powertools EMF; `service` is Powertools' default dimension).
INFERENCE_SERVICE = "inference"
ROUTER_SERVICE = "router"
FIVE_MINUTES = cdk.Duration.minutes(5)
ONE_DAY = cdk.Duration.days(1)


def provisioned_usd_per_day(config: StageConfig) -> float:
    """What the stage's provisioned instances cost a day, averaged over its schedule's week
    (bench/cost.py counts the same hours for the month)."""
    gb = config.inference_memory_mb / 1024
    seconds_a_day = config.provisioned_hours_a_week * 3600 / 7
    return (
        config.provisioned_concurrency * gb * seconds_a_day * PRICES["lambda_provisioned"].per_unit
    )


def alarms_may_publish(topic: sns.ITopic) -> iam.PolicyStatement:
    """`sns:Publish` for CloudWatch alarms of this account and region, and nothing else."""
    return iam.PolicyStatement(
        sid="CloudWatchAlarmsPublish",
        principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
        actions=["sns:Publish"],
        resources=[topic.topic_arn],
        conditions={
            "ArnLike": {
                "aws:SourceArn": (
                    f"arn:{cdk.Aws.PARTITION}:cloudwatch:{cdk.Aws.REGION}:"
                    f"{cdk.Aws.ACCOUNT_ID}:alarm:*"
                )
            },
            "StringEquals": {"aws:SourceAccount": cdk.Aws.ACCOUNT_ID},
        },
    )


class Monitoring(Construct):
    """One alarm per thing that hurts users or the bill, and a dashboard."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        inference: lambda_.IFunction,
        inference_alias: lambda_.IAlias,
        router: lambda_.IFunction,
        dispatch_failure: lambda_.IFunction,
        dead_letter_queue: sqs.IQueue,
        api: apigwv2.IWebSocketApi,
        stage: apigwv2.IWebSocketStage,
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(
            self, "AlarmTopic", display_name=f"llambda {config.stage_name} alarms", enforce_ssl=True
        )
        cdk.Validations.of(self.topic).acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions-SNS2",
                reason=(
                    "CloudWatch alarms cannot publish to a topic encrypted with the AWS "
                    "managed SNS key, and the notifications carry only alarm names and states."
                ),
            )
        )
        # The topic policy that enforce_ssl creates replaces SNS's default one, and denies
        # only: CloudWatch could not publish at all. Allow it, for this account's alarms in
        # this region only (the confused-deputy conditions of SNS's topic policy examples).
        self.topic.add_to_resource_policy(alarms_may_publish(self.topic))
        if config.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(config.alarm_email))

        def api_metric(name: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace="AWS/ApiGateway",
                metric_name=name,
                dimensions_map={"ApiId": api.api_id, "Stage": stage.stage_name},
                statistic="Sum",
                period=FIVE_MINUTES,
            )

        sum5: dict[str, Any] = {"statistic": "Sum", "period": FIVE_MINUTES}
        alarms: dict[str, tuple[cloudwatch.IMetric, float, str]] = {
            "InferenceErrors": (
                inference.metric_errors(**sum5),
                1,
                "The inference function failed (clients got engine_error or nothing).",
            ),
            "InferenceThrottles": (
                inference.metric_throttles(**sum5),
                1,
                "Chats hit reserved concurrency (reservedConcurrency): clients waited.",
            ),
            "DispatchDropped": (
                inference.metric("AsyncEventsDropped", **sum5),
                1,
                "Dispatched chats were dropped (throttled too long): clients got unavailable.",
            ),
            "RouterErrors": (
                router.metric_errors(**sum5),
                1,
                "The router failed: messages went unanswered.",
            ),
            "DispatchFailureErrors": (
                dispatch_failure.metric_errors(**sum5),
                1,
                "The dispatch-failure handler failed: clients were not told.",
            ),
            "DeadLetterQueueDepth": (
                dead_letter_queue.metric_approximate_number_of_messages_visible(
                    statistic="Maximum", period=FIVE_MINUTES
                ),
                1,
                "Undeliverable dispatch failures are waiting in the dead-letter queue.",
            ),
            "ApiIntegrationErrors": (
                cloudwatch.MathExpression(
                    # A $connect from a page on another origin is refused by the router with
                    # 403, which API Gateway counts as an integration error: a refusal
                    # working as meant, which the router counts itself, so it is taken out.
                    expression="MAX([0, integration - FILL(refused, 0)])",
                    using_metrics={
                        "integration": api_metric("IntegrationError"),
                        "refused": cloudwatch.Metric(
                            namespace=contract.METRICS_NAMESPACE,
                            metric_name=contract.METRIC_ERRORS,
                            dimensions_map={
                                "code": contract.ERRORS_CODE_FORBIDDEN_ORIGIN,
                                "service": ROUTER_SERVICE,
                                "stage": config.metrics_stage,
                            },
                            **sum5,
                        ),
                    },
                    label="Integration errors, less refused origins",
                    period=FIVE_MINUTES,
                ),
                5,
                "WebSocket integrations returned errors (other than refused origins).",
            ),
            "ApiExecutionErrors": (
                api_metric("ExecutionError"),
                5,
                "The WebSocket API failed to run integrations.",
            ),
            "ApiClientErrors": (
                api_metric("ClientError"),
                50,
                "Many refused connections or frames (4XX): a bad client or abuse.",
            ),
        }
        if config.engine == "picollm":
            alarms["AccessKeyActivation"] = (
                cloudwatch.Metric(
                    namespace=contract.METRICS_NAMESPACE,
                    metric_name=contract.METRIC_ERRORS,
                    dimensions_map={
                        "code": contract.ErrorCode.ACTIVATION_LIMIT,
                        "service": INFERENCE_SERVICE,
                        "stage": config.metrics_stage,
                    },
                    **sum5,
                ),
                1,
                "picoLLM could not activate the AccessKey (its activation limit, most "
                "likely): clients got activation_limit until it is fixed.",
            )
        if config.provisioned_concurrency > 0:
            alarms["ProvisionedConcurrencySpillover"] = (
                inference_alias.metric("ProvisionedConcurrencySpilloverInvocations", **sum5),
                1,
                "Replies ran on-demand beyond provisioned concurrency: cold starts.",
            )
        action = cw_actions.SnsAction(self.topic)
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        for name, (metric, threshold, description) in alarms.items():
            alarm = cloudwatch.Alarm(
                self,
                name,
                alarm_description=f"llambda {config.stage_name}: {description}",
                metric=metric,
                threshold=threshold,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            alarm.add_alarm_action(action)
            self.alarms[name] = alarm

        self.dashboard = cloudwatch.Dashboard(self, "Dashboard")
        self.dashboard.add_widgets(*self._runtime_widgets(config.metrics_stage))
        self.dashboard.add_widgets(self._cost_widget(config))
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Inference invocations, errors, throttles",
                left=[
                    inference.metric_invocations(**sum5),
                    inference.metric_errors(**sum5),
                    inference.metric_throttles(**sum5),
                    inference.metric("AsyncEventsDropped", **sum5),
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="WebSocket API",
                left=[
                    api_metric("ConnectCount"),
                    api_metric("MessageCount"),
                    api_metric("ClientError"),
                    api_metric("IntegrationError"),
                    api_metric("ExecutionError"),
                ],
                width=12,
            ),
        )

    def _cost_widget(self, config: StageConfig) -> cloudwatch.IWidget:
        """Cost per day at the stage's list prices: what every invocation metered
        (llambda.cost_meter, summed over the functions), and that plus the provisioned
        instances, which bill whether or not they reply."""
        query = (
            f"{{{contract.METRICS_NAMESPACE},service,stage}} "
            f'MetricName="{contract.METRIC_ESTIMATED_COST}" stage="{config.metrics_stage}"'
        )
        metered = f"SUM(SEARCH('{query}', 'Sum', {int(ONE_DAY.to_seconds())}))"
        at_rest = round(provisioned_usd_per_day(config), 4)
        lines = [cloudwatch.MathExpression(expression=metered, label="Invocations", period=ONE_DAY)]
        if at_rest:
            lines.append(
                cloudwatch.MathExpression(
                    expression=f"{metered} + {at_rest}",
                    label="Invocations and provisioned concurrency",
                    period=ONE_DAY,
                )
            )
        return cloudwatch.GraphWidget(
            title="Cost per day (USD, list prices)",
            left=lines,
            left_annotations=[
                cloudwatch.HorizontalAnnotation(
                    value=at_rest,
                    label=f"Provisioned concurrency: ${at_rest:.2f} a day",
                )
            ]
            if at_rest
            else None,
            period=ONE_DAY,
            width=24,
        )

    def _runtime_widgets(self, stage_name: str) -> list[cloudwatch.IWidget]:
        def metric(name: str, statistic: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=contract.METRICS_NAMESPACE,
                metric_name=name,
                dimensions_map={"service": INFERENCE_SERVICE, "stage": stage_name},
                statistic=statistic,
                period=FIVE_MINUTES,
            )

        # Errors carry `code` and `stage` as well (see lambda_image/llambda/observability.py).
        errors_by_code = cloudwatch.MathExpression(
            expression=(
                f"SEARCH('{{{contract.METRICS_NAMESPACE},code,service,stage}} "
                f'MetricName="{contract.METRIC_ERRORS}" stage="{stage_name}"\', \'Sum\', 300)'
            ),
            label="Errors by code",
            period=FIVE_MINUTES,
        )
        return [
            cloudwatch.GraphWidget(
                title="Time to first token (ms)",
                left=[
                    metric(contract.METRIC_TIME_TO_FIRST_TOKEN, "p50"),
                    metric(contract.METRIC_TIME_TO_FIRST_TOKEN, "p90"),
                ],
                width=6,
            ),
            cloudwatch.GraphWidget(
                title="Tokens per second",
                left=[
                    metric(contract.METRIC_TOKENS_PER_SECOND, "Average"),
                    metric(contract.METRIC_TOKENS_PER_SECOND, "p10"),
                ],
                width=6,
            ),
            cloudwatch.GraphWidget(
                title="Replies and completion tokens",
                left=[metric(contract.METRIC_REPLIES, "Sum")],
                right=[metric(contract.METRIC_COMPLETION_TOKENS, "Sum")],
                width=6,
            ),
            cloudwatch.GraphWidget(title="Errors by code", left=[errors_by_code], width=6),
        ]

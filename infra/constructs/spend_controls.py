"""What keeps a stage's spending in hand: the kill switch (an SSM parameter the router
and the OpenAI-compatible door read) and the schedule of the inference alias's provisioned
concurrency."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from infra.config import StageConfig
from infra.names import GENERATION_OUTPUT
from llambda.contract import GENERATION_OFF, GENERATION_ON, GENERATION_PARAMETER_VARIABLE


class GenerationSwitch(Construct):
    """One String parameter, "on" or "off"; CloudFormation names it (no physical name),
    the functions that read it get its name in their environment."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.parameter = ssm.StringParameter(
            self,
            "Parameter",
            string_value=GENERATION_ON,
            allowed_pattern=f"^({GENERATION_ON}|{GENERATION_OFF})$",
            description="llambda kill switch: off refuses new replies (make generation)",
        )
        cdk.CfnOutput(
            cdk.Stack.of(self),
            GENERATION_OUTPUT,
            value=self.parameter.parameter_name,
            description="The kill switch: make generation STATE=off|on STAGE=<stage>",
        )

    def read_by(self, function: lambda_.Function) -> None:
        self.parameter.grant_read(function)
        function.add_environment(GENERATION_PARAMETER_VARIABLE, self.parameter.parameter_name)


def schedule_provisioned_concurrency(
    scope: Construct, alias: lambda_.Alias, config: StageConfig
) -> lambda_.IScalableFunctionAttribute | None:
    """Provisioned concurrency only within the stage's hours: a scheduled action raises
    it to `provisionedConcurrency` at the start and one drops it to none at the end, on
    the stage's days in its time zone. None when the stage has no schedule."""
    schedule = config.provisioned_schedule
    if schedule is None:
        return None
    target = alias.add_auto_scaling(min_capacity=0, max_capacity=config.provisioned_concurrency)
    zone = cdk.TimeZone.of(config.provisioned_time_zone)
    for name, hour, count in (
        ("ProvisionedStart", schedule.start_hour, config.provisioned_concurrency),
        ("ProvisionedStop", schedule.stop_hour, 0),
    ):
        target.scale_on_schedule(
            name,
            schedule=appscaling.Schedule.cron(
                minute="0", hour=str(hour), week_day=schedule.days, month="*", year="*"
            ),
            min_capacity=count,
            max_capacity=count,
            time_zone=zone,
        )
    return target

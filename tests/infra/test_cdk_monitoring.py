"""Alarms per stage and a dashboard of the runtime's EMF metrics."""

import json

import pytest

EVERY_STAGE_ALARMS = [
    "InferenceErrors",
    "InferenceThrottles",
    "DispatchDropped",
    "RouterErrors",
    "DispatchFailureErrors",
    "DeadLetterQueueDepth",
    "ApiIntegrationErrors",
    "ApiExecutionErrors",
    "ApiClientErrors",
]


def alarm_ids(template):
    return list(template.find_resources("AWS::CloudWatch::Alarm"))


@pytest.mark.parametrize("name", EVERY_STAGE_ALARMS)
def test_alarm_exists_and_notifies_the_topic(stateless, name):
    (topic_id,) = stateless.find_resources("AWS::SNS::Topic")
    matching = [i for i in alarm_ids(stateless) if i.startswith(f"Monitoring{name}")]
    assert len(matching) == 1, alarm_ids(stateless)
    alarm = stateless.find_resources("AWS::CloudWatch::Alarm")[matching[0]]
    assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}]
    assert alarm["Properties"]["TreatMissingData"] == "notBreaching"


def test_spillover_alarm_only_with_provisioned_concurrency(stage, stateless):
    spill = [i for i in alarm_ids(stateless) if "Spillover" in i]
    assert len(spill) == (1 if stage.config.provisioned_concurrency else 0)
    if spill:
        alarm = stateless.find_resources("AWS::CloudWatch::Alarm")[spill[0]]
        assert alarm["Properties"]["MetricName"] == "ProvisionedConcurrencySpilloverInvocations"
        dims = {d["Name"] for d in alarm["Properties"]["Dimensions"]}
        assert dims == {"FunctionName", "Resource"}  # on the alias


def test_api_alarms_watch_this_api_and_stage(stateless):
    (api_id,) = stateless.find_resources("AWS::ApiGatewayV2::Api")
    for logical_id, alarm in stateless.find_resources("AWS::CloudWatch::Alarm").items():
        if logical_id.startswith("MonitoringApi"):
            dims = {d["Name"]: d["Value"] for d in alarm["Properties"]["Dimensions"]}
            assert dims["ApiId"] == {"Ref": api_id}
            assert alarm["Properties"]["Namespace"] == "AWS/ApiGateway"


def test_dashboard_shows_the_runtime_metrics(stateless):
    (dashboard,) = stateless.find_resources("AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for metric in (
        "TimeToFirstTokenMs",
        "TokensPerSecond",
        "CompletionTokens",
        "Replies",
        "Errors",
    ):
        assert metric in body
    assert "Llambda" in body


def test_email_subscription_only_when_configured(stateless):
    stateless.resource_count_is("AWS::SNS::Subscription", 0)

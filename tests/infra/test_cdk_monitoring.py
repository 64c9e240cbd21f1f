"""Alarms per stage and a dashboard of the runtime's EMF metrics."""

import json

import pytest
from aws_cdk.assertions import Template

from llambda import protocol
from tests.infra.conftest import synthesize

ALARM_EMAIL = "alarms@example.com"

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


@pytest.fixture(scope="module")
def with_alarm_email(tmp_path_factory):
    return synthesize(tmp_path_factory.mktemp("alarm-email"), **{"Dev.alarmEmail": ALARM_EMAIL})


def test_a_configured_alarm_email_is_exactly_one_subscription_to_the_topic(with_alarm_email):
    dev = Template.from_stack(with_alarm_email.stages["Dev"].stateless)
    (topic_id,) = dev.find_resources("AWS::SNS::Topic")
    (subscription,) = dev.find_resources("AWS::SNS::Subscription").values()
    assert subscription["Properties"] == {
        "Protocol": "email",
        "TopicArn": {"Ref": topic_id},
        "Endpoint": ALARM_EMAIL,
    }
    prod = Template.from_stack(with_alarm_email.stages["Prod"].stateless)
    prod.resource_count_is("AWS::SNS::Subscription", 0)  # the setting was Dev's only


def test_a_picollm_stage_alarms_when_the_access_key_cannot_activate(stage, stateless):
    """Issue 13, #10: `activation_limit` replies are the runtime's Errors metric by code."""
    found = [i for i in alarm_ids(stateless) if i.startswith("MonitoringAccessKeyActivation")]
    assert len(found) == (1 if stage.config.engine == "picollm" else 0)
    alarm = stateless.find_resources("AWS::CloudWatch::Alarm")[found[0]]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("Llambda", "Errors")
    dimensions = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
    assert dimensions == {
        "code": protocol.ACTIVATION_LIMIT,
        "service": "inference",
        "stage": stage.config.stage_name,
    }

"""Alarms per stage and a dashboard of the runtime's EMF metrics."""

import json

import pytest
from aws_cdk.assertions import Match, Template

from llambda import contract
from llambda.contract import METRIC_ERRORS, METRICS_NAMESPACE, ErrorCode
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
            # One metric, or the API's metric within an expression (integration errors).
            queries = alarm["Properties"].get("Metrics") or [
                {"MetricStat": {"Metric": alarm["Properties"]}}
            ]
            (metric,) = [
                q["MetricStat"]["Metric"]
                for q in queries
                if q.get("MetricStat", {}).get("Metric", {}).get("Namespace") == "AWS/ApiGateway"
            ]
            dims = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
            assert dims["ApiId"] == {"Ref": api_id}


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
        "code": ErrorCode.ACTIVATION_LIMIT,
        "service": "inference",
        "stage": stage.config.stage_name,
    }


def test_cloudwatch_alarms_may_publish_to_the_topic(stateless):
    """The topic policy enforce_ssl creates replaces SNS's default one; without an Allow for
    cloudwatch.amazonaws.com no alarm reaches the topic, and no e-mail is ever sent."""
    (topic_id,) = stateless.find_resources("AWS::SNS::Topic")
    alarm_arn = {
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Partition"},
                ":cloudwatch:",
                {"Ref": "AWS::Region"},
                ":",
                {"Ref": "AWS::AccountId"},
                ":alarm:*",
            ],
        ]
    }
    stateless.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "Topics": [{"Ref": topic_id}],
            "PolicyDocument": Match.object_like(
                {
                    "Statement": Match.array_with(
                        [
                            {
                                "Sid": "CloudWatchAlarmsPublish",
                                "Effect": "Allow",
                                "Principal": {"Service": "cloudwatch.amazonaws.com"},
                                "Action": "sns:Publish",
                                "Resource": {"Ref": topic_id},
                                # Only this account's alarms: no confused deputy.
                                "Condition": {
                                    "ArnLike": {"aws:SourceArn": alarm_arn},
                                    "StringEquals": {
                                        "aws:SourceAccount": {"Ref": "AWS::AccountId"}
                                    },
                                },
                            }
                        ]
                    )
                }
            ),
        },
    )


def test_the_topic_still_refuses_publishing_without_tls(stateless):
    (policy,) = stateless.find_resources("AWS::SNS::TopicPolicy").values()
    denies = [
        s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"
    ]
    assert [d["Condition"] for d in denies] == [{"Bool": {"aws:SecureTransport": "false"}}]


def test_integration_error_alarm_leaves_out_refused_origins(stage, stateless):
    """A $connect from another origin is refused by the router with 403, which API Gateway
    counts as an integration error: a refusal that works must not page anyone."""
    (alarm,) = [
        a["Properties"]
        for i, a in stateless.find_resources("AWS::CloudWatch::Alarm").items()
        if i.startswith("MonitoringApiIntegrationErrors")
    ]
    queries = {q["Id"]: q for q in alarm["Metrics"]}
    (expression,) = [q for q in queries.values() if "Expression" in q]
    assert expression["Expression"] == "MAX([0, integration - FILL(refused, 0)])"
    assert expression.get("ReturnData", True) is True
    integration = queries["integration"]["MetricStat"]["Metric"]
    assert (integration["Namespace"], integration["MetricName"]) == (
        "AWS/ApiGateway",
        "IntegrationError",
    )
    refused = queries["refused"]["MetricStat"]["Metric"]
    assert (refused["Namespace"], refused["MetricName"]) == (METRICS_NAMESPACE, METRIC_ERRORS)
    dimensions = {d["Name"]: d["Value"] for d in refused["Dimensions"]}
    assert dimensions == {
        "code": contract.ERRORS_CODE_FORBIDDEN_ORIGIN,
        "service": "router",
        "stage": stage.config.metrics_stage,
    }


def dashboard_widgets(template) -> list[dict]:
    """The dashboard's widgets: its body with each CloudFormation token as `TOKEN`."""
    (dashboard,) = template.find_resources("AWS::CloudWatch::Dashboard").values()
    body = dashboard["Properties"]["DashboardBody"]
    if isinstance(body, dict):
        _, parts = body["Fn::Join"]
        body = "".join(part if isinstance(part, str) else "TOKEN" for part in parts)
    return json.loads(body)["widgets"]


def cost_widget(template) -> dict:
    (widget,) = [
        w
        for w in dashboard_widgets(template)
        if w["properties"].get("title", "").startswith("Cost")
    ]
    return widget["properties"]


def test_the_cost_widget_sums_every_functions_metered_cost_per_day(stage, stateless):
    props = cost_widget(stateless)
    assert props["period"] == 86_400
    expressions = [m[0]["expression"] for m in props["metrics"]]
    query = (
        f"SEARCH('{{{METRICS_NAMESPACE},service,stage}} "
        f'MetricName="{contract.METRIC_ESTIMATED_COST}" stage="{stage.config.metrics_stage}"\', '
        "'Sum', 86400)"
    )
    # Every function's invocations, whatever its `service`, summed.
    assert expressions[0] == f"SUM({query})"


def test_the_cost_widget_adds_the_provisioned_instances_at_the_stages_price(stage, stateless):
    from infra.constructs.monitoring import provisioned_usd_per_day
    from llambda.prices import PRICES

    config = stage.config
    props = cost_widget(stateless)
    if not config.provisioned_concurrency:
        assert len(props["metrics"]) == 1
        assert "annotations" not in props
        return
    # Dev: 10 h on 5 days a week, averaged over 7; Prod: 24 h.
    hours_a_day = {"Dev": 10 * 5 / 7, "Prod": 24}[config.stage_name]
    per_day = (
        config.provisioned_concurrency
        * config.inference_memory_mb
        / 1024
        * hours_a_day
        * 3600
        * PRICES["lambda_provisioned"].usd
    )
    assert provisioned_usd_per_day(config) == pytest.approx(per_day)
    (annotation,) = props["annotations"]["horizontal"]
    assert annotation["value"] == pytest.approx(per_day, abs=1e-4)
    total = props["metrics"][1][0]["expression"]
    assert total == f"{props['metrics'][0][0]['expression']} + {round(per_day, 4)}"

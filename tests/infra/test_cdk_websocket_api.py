"""The WebSocket API: routes, selection, throttling, access logs, authorizer, @connections."""

import json

import pytest

from tests.infra.cdk_helpers import function_by_handler, only, policies_of, role_of


def test_route_selection_expression(stateless):
    only(stateless, "AWS::ApiGatewayV2::Api", RouteSelectionExpression="$request.body.action")


@pytest.mark.parametrize("route_key", ["$connect", "$disconnect", "$default"])
def test_every_route_integrates_the_router(stateless, route_key):
    router_id, _ = function_by_handler(stateless, "llambda.handlers.router.handler")
    _, route = only(stateless, "AWS::ApiGatewayV2::Route", RouteKey=route_key)
    integration_id = route["Properties"]["Target"]["Fn::Join"][1][1]["Ref"]
    integration = stateless.find_resources("AWS::ApiGatewayV2::Integration")[integration_id]
    assert integration["Properties"]["IntegrationType"] == "AWS_PROXY"
    assert {"Fn::GetAtt": [router_id, "Arn"]} in integration["Properties"]["IntegrationUri"][
        "Fn::Join"
    ][1]


def test_stage_auto_deploys_with_throttling_and_access_logs(stage, stateless):
    _, api_stage = only(stateless, "AWS::ApiGatewayV2::Stage")
    props = api_stage["Properties"]
    assert props["AutoDeploy"] is True
    assert props["StageName"] == stage.config.stage_name.lower()
    assert props["DefaultRouteSettings"] == {
        "ThrottlingBurstLimit": stage.config.throttle_burst_limit,
        "ThrottlingRateLimit": stage.config.throttle_rate_limit,
    }
    log_group = props["AccessLogSettings"]["DestinationArn"]["Fn::GetAtt"][0]
    assert log_group in stateless.find_resources("AWS::Logs::LogGroup")
    fields = json.loads(props["AccessLogSettings"]["Format"])
    assert {"requestId", "connectionId", "routeKey", "status", "error"} <= set(fields)
    assert "querystring" not in props["AccessLogSettings"]["Format"]  # never the token


def test_connect_authorizer_where_a_token_is_required(stage, stateless):
    _, connect = only(stateless, "AWS::ApiGatewayV2::Route", RouteKey="$connect")
    if stage.config.require_token:
        assert stage.config.stage_name == "Prod"
        authorizer_id, authorizer = only(stateless, "AWS::ApiGatewayV2::Authorizer")
        assert connect["Properties"]["AuthorizationType"] == "CUSTOM"
        assert connect["Properties"]["AuthorizerId"] == {"Ref": authorizer_id}
        assert authorizer["Properties"]["AuthorizerType"] == "REQUEST"
        assert authorizer["Properties"]["IdentitySource"] == ["route.request.querystring.token"]
        _, function = function_by_handler(stateless, "llambda.handlers.authorizer.handler")
        assert function["Properties"]["Environment"]["Variables"]["REQUIRE_TOKEN"] == "true"
    else:
        stateless.resource_count_is("AWS::ApiGatewayV2::Authorizer", 0)
        assert connect["Properties"]["AuthorizationType"] == "NONE"


@pytest.mark.parametrize(
    "handler",
    [
        "llambda.handlers.router.handler",
        "llambda.handlers.dispatch_failure.handler",
        None,  # the inference image function
    ],
)
def test_manage_connections_only_on_this_stage_connections(stage, stateless, handler):
    api_id, _ = only(stateless, "AWS::ApiGatewayV2::Api")
    if handler:
        _, function = function_by_handler(stateless, handler)
    else:
        _, function = only(stateless, "AWS::Lambda::Function", PackageType="Image")
    statements = [
        s
        for s in policies_of(stateless, role_of(function))
        if "execute-api:ManageConnections" in str(s["Action"])
    ]
    assert len(statements) == 1
    assert statements[0]["Action"] == "execute-api:ManageConnections"
    stage_name = stage.config.stage_name.lower()
    suffixes = []
    for arn in statements[0]["Resource"]:
        parts = arn["Fn::Join"][1]
        assert ":execute-api:" in parts
        assert {"Ref": api_id} in parts  # this API
        suffixes.append(parts[-1])
    assert sorted(suffixes) == sorted(
        f"/{stage_name}/{method}/@connections/*" for method in ("POST", "DELETE", "GET")
    )


def test_no_one_else_may_manage_connections(stateless):
    holders = [
        r["Properties"]["Roles"][0]["Ref"]
        for r in stateless.find_resources("AWS::IAM::Policy").values()
        if "execute-api:ManageConnections" in json.dumps(r["Properties"]["PolicyDocument"])
    ]
    assert len(holders) == 3


def as_list(value):
    """IAM takes one action or resource as a string, several as a list."""
    return value if isinstance(value, list) else [value]


def test_table_access_is_only_the_table(stateless):
    dynamodb_statements = 0
    for resource in stateless.find_resources("AWS::IAM::Policy").values():
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
            actions = as_list(statement["Action"])
            assert all(isinstance(a, str) for a in actions), actions
            if any(a.startswith("dynamodb:") for a in actions):
                dynamodb_statements += 1
                for arn in as_list(statement["Resource"]):
                    assert "ConnectionTable" in json.dumps(arn), statement
    assert dynamodb_statements >= 2  # the router's and the inference function's grants


def test_outputs(stateless):
    outputs = stateless.to_json()["Outputs"]
    assert outputs["WebSocketUrl"]["Value"]["Fn::Join"][1][0] == "wss://"
    assert outputs["WebClientUrl"]["Value"]["Fn::Join"][1][0] == "https://"

"""The API Gateway WebSocket API: three routes into the router, one throttled stage."""

from __future__ import annotations

import json

import aws_cdk as cdk
import jsii
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.config import StageConfig
from infra.constructs.runtime_function import log_group

ROUTE_SELECTION_EXPRESSION = "$request.body.action"

# Access log fields: who, which route, what happened. Never the query string (the token).
ACCESS_LOG_FORMAT = {
    "requestId": "$context.requestId",
    "connectionId": "$context.connectionId",
    "eventType": "$context.eventType",
    "routeKey": "$context.routeKey",
    "status": "$context.status",
    "requestTime": "$context.requestTimeEpoch",
    "sourceIp": "$context.identity.sourceIp",
    "userAgent": "$context.identity.userAgent",
    "error": "$context.error.message",
    "integrationError": "$context.integration.error",
    "authorizerError": "$context.authorizer.error",
}


@jsii.implements(apigwv2.IAccessLogSettings)
class _AccessLogSettings:
    """IAccessLogSettings is an interface: Python must implement it for jsii."""

    def __init__(
        self, *, destination: apigwv2.IAccessLogDestination, format: apigw.AccessLogFormat
    ) -> None:
        self._destination = destination
        self._format = format

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw.AccessLogFormat:
        return self._format


class WebSocketApi(Construct):
    """`$connect`, `$disconnect`, `$default` → router; a stage with throttling and logs."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        router: lambda_.IFunction,
        connect_authorizer: apigwv2.IWebSocketRouteAuthorizer | None = None,
    ) -> None:
        super().__init__(scope, construct_id)

        def route(name: str) -> apigwv2.WebSocketRouteOptions:
            return apigwv2.WebSocketRouteOptions(
                integration=integrations.WebSocketLambdaIntegration(f"{name}Integration", router)
            )

        connect = route("Connect")
        if connect_authorizer is not None:
            connect = apigwv2.WebSocketRouteOptions(
                integration=connect.integration, authorizer=connect_authorizer
            )
        self.api = apigwv2.WebSocketApi(
            self,
            "Api",
            description=f"llambda {config.stage_name}: chat over WebSocket",
            route_selection_expression=ROUTE_SELECTION_EXPRESSION,
            connect_route_options=connect,
            disconnect_route_options=route("Disconnect"),
            default_route_options=route("Default"),
        )
        self.access_logs = log_group(self, "AccessLogs", config=config)
        self.stage = apigwv2.WebSocketStage(
            self,
            "Stage",
            web_socket_api=self.api,
            stage_name=config.stage_name.lower(),
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(
                rate_limit=config.throttle_rate_limit,
                burst_limit=config.throttle_burst_limit,
            ),
            access_log_settings=_AccessLogSettings(
                destination=apigwv2.LogGroupLogDestination(self.access_logs),
                format=apigw.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FORMAT)),
            ),
        )
        if connect_authorizer is None:
            self._acknowledge_open_connect(config)
        self._acknowledge_unauthorized_routes()

    @property
    def url(self) -> str:
        """`wss://{api}.execute-api.{region}.amazonaws.com/{stage}`."""
        return self.stage.url

    def grant_manage_connections(self, grantee: iam.IGrantable) -> None:
        """`execute-api:ManageConnections` on this API's stage's `@connections` only."""
        stack = cdk.Stack.of(self)
        resources = [
            stack.format_arn(
                service="execute-api",
                resource=self.api.api_id,
                resource_name=f"{self.stage.stage_name}/{method}/@connections/*",
            )
            # POST sends a message; DELETE closes a connection; GET reads its details.
            for method in ("POST", "DELETE", "GET")
        ]
        iam.Grant.add_to_principal(
            grantee=grantee, actions=["execute-api:ManageConnections"], resource_arns=resources
        )

    def _acknowledge_open_connect(self, config: StageConfig) -> None:
        route = self.api.node.find_child("$connect-Route").node.default_child
        assert route is not None  # the route's CfnRoute
        cdk.Validations.of(route).acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions-APIG4",
                reason=(
                    f"{config.stage_name} sets requireToken=false: anyone may connect, the "
                    "router still checks the Origin allow-list and rate limits; Prod "
                    "requires the token authorizer."
                ),
            )
        )

    def _acknowledge_unauthorized_routes(self) -> None:
        for name in ("$disconnect-Route", "$default-Route"):
            route = self.api.node.find_child(name).node.default_child
            assert route is not None  # the route's CfnRoute
            cdk.Validations.of(route).acknowledge(
                cdk.Acknowledgment(
                    id="AwsSolutions-APIG4",
                    reason=(
                        "WebSocket APIs authorize only $connect; later frames ride the "
                        "connection that $connect admitted."
                    ),
                )
            )

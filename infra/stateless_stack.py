"""Everything that can be replaced at will: functions, the API, the page, monitoring."""

from __future__ import annotations

import dataclasses
from typing import Any

import aws_cdk as cdk
from constructs import Construct

from infra.checkov import acknowledge_checkov
from infra.config import LOCAL_PAGE_ORIGINS, LOCAL_PAGE_PORT, StageConfig
from infra.constructs.authorizer import TokenAuthorizer
from infra.constructs.dispatch_failure_function import DispatchFailureFunction
from infra.constructs.inference_function import InferenceFunction
from infra.constructs.monitoring import Monitoring
from infra.constructs.openai_endpoint import OpenAIEndpoint
from infra.constructs.router_function import RouterFunction
from infra.constructs.spend_controls import GenerationSwitch, schedule_provisioned_concurrency
from infra.constructs.web_client_hosting import WebClientHosting
from infra.constructs.websocket_api import WebSocketApi
from infra.nag import ACCOUNT, PARTITION, REGION, WildcardRule, acknowledge_wildcards
from infra.names import (
    ACCESS_KEY_OUTPUT,
    LOCAL_PAGE_OUTPUT,
    TOKEN_OUTPUT,
    WEB_CLIENT_URL_OUTPUT,
    WEBSOCKET_URL_OUTPUT,
)
from infra.stateful_stack import TableReference

# How the page runs without hosting: web_client/ served on this machine, at an origin the
# router allows (LOCAL_PAGE_ORIGINS), told the stage's WebSocket by `?ws=` (config.js).
LOCAL_PAGE_COMMAND = (
    f"python3 -m http.server {LOCAL_PAGE_PORT} --bind 127.0.0.1 --directory web_client"
)


def local_page_url(websocket_url: str) -> str:
    """The locally served page's address, connecting to `websocket_url`."""
    return f"{LOCAL_PAGE_ORIGINS[1]}/?ws={websocket_url}"


class StatelessStack(cdk.Stack):
    """Router, inference (alias `live`), WebSocket API, hosted page, alarms, dashboard."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        table_reference: TableReference,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        table = table_reference.table(self, "ConversationTable")
        self.web_client = (
            WebClientHosting(self, "WebClient", config=config) if config.hosting else None
        )
        # The stage's page may always connect: the hosted one, or without hosting the one
        # served from web_client/ on this machine. The config adds e.g. localhost in Dev.
        page_origins = (self.web_client.url,) if self.web_client else config.page_origins
        router_config = dataclasses.replace(
            config,
            allowed_origins=tuple(dict.fromkeys((*config.allowed_origins, *page_origins))),
        )
        self.dispatch_failure = DispatchFailureFunction(
            self,
            "DispatchFailure",
            config=config,
            table=table,
            table_name=table_reference.table_name,
        )
        self.inference = InferenceFunction(
            self,
            "Inference",
            config=config,
            table_name=table_reference.table_name,
            on_failure=self.dispatch_failure.function,
        )
        table.grant_read_write_data(self.inference.function)
        # The kill switch the router and the OpenAI-compatible door read, and provisioned
        # concurrency only in the stage's hours (docs/cost.md).
        self.generation = GenerationSwitch(self, "Generation")
        self.openai = (
            OpenAIEndpoint(
                self,
                "OpenAI",
                config=config,
                inference=self.inference,
                generation=self.generation,
            )
            if config.openai_endpoint
            else None
        )
        self.router = RouterFunction(
            self,
            "Router",
            config=router_config,
            table=table,
            table_name=table_reference.table_name,
            inference_alias=self.inference.alias,
        )
        self.generation.read_by(self.router.function)
        self.provisioned_schedule = schedule_provisioned_concurrency(
            self.inference, self.inference.alias, config
        )
        self.authorizer = (
            TokenAuthorizer(self, "Authorizer", config=config) if config.require_token else None
        )
        self.websocket = WebSocketApi(
            self,
            "WebSocket",
            config=config,
            router=self.router.function,
            connect_authorizer=self.authorizer.authorizer if self.authorizer else None,
        )
        for function in (
            self.router.function,
            self.inference.function,
            self.dispatch_failure.function,
        ):
            self.websocket.grant_manage_connections(function)
        if self.web_client:
            self.web_client.deploy_site(websocket_url=self.websocket.url)
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            config=config,
            inference=self.inference.function,
            inference_alias=self.inference.alias,
            router=self.router.function,
            dispatch_failure=self.dispatch_failure.function,
            dead_letter_queue=self.dispatch_failure.dead_letter_queue,
            api=self.websocket.api,
            stage=self.websocket.stage,
        )

        self.websocket_url = cdk.CfnOutput(
            self,
            WEBSOCKET_URL_OUTPUT,
            value=self.websocket.url,
            description="Connect here (wss://)",
        )
        if self.web_client:
            self.web_client_url = cdk.CfnOutput(
                self,
                WEB_CLIENT_URL_OUTPUT,
                value=self.web_client.url,
                description="The chat page",
            )
        else:
            self.web_client_url = cdk.CfnOutput(
                self,
                LOCAL_PAGE_OUTPUT,
                value=local_page_url(self.websocket.url),
                description=(
                    f"hosting=false: serve the page with `{LOCAL_PAGE_COMMAND}`, then open "
                    "this address (add &token=<token> where a token is required)"
                ),
            )
        self.access_key_secret_arn = cdk.CfnOutput(
            self,
            ACCESS_KEY_OUTPUT,
            value=self.inference.access_key_secret.secret_arn,
            description="Put the picoLLM AccessKey here (aws secretsmanager put-secret-value)",
        )
        if self.authorizer:
            cdk.CfnOutput(
                self,
                TOKEN_OUTPUT,
                value=self.authorizer.secret.secret_arn,
                description="The ?token= clients need (aws secretsmanager get-secret-value)",
            )
        self._acknowledge_findings()
        acknowledge_checkov(self, config)

    def _acknowledge_findings(self) -> None:
        """The wildcards this stack needs, each with its reason; any other one fails synth."""
        acknowledge_wildcards(self, STATELESS_WILDCARDS)
        # CDK's BucketDeployment brings its own singleton function and role.
        deployment = next(
            (
                child
                for child in self.node.children
                if child.node.id.startswith("Custom::CDKBucketDeployment")
            ),
            None,
        )
        if deployment is None:  # hosting=false: no page to deploy
            return
        cdk.Validations.of(deployment).acknowledge(
            cdk.Acknowledgment(
                id=(
                    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/"
                    "service-role/AWSLambdaBasicExecutionRole]"
                ),
                reason=(
                    "CDK's BucketDeployment handler role; the managed policy grants only "
                    "CloudWatch Logs writes for that short-lived deploy-time function."
                ),
            ),
            cdk.Acknowledgment(
                id="AwsSolutions-L1",
                reason=(
                    "CDK's BucketDeployment handler: aws-cdk-lib chooses and updates its "
                    "runtime (it bundles the AWS CLI layer built for it)."
                ),
            ),
        )


_DEPLOYMENT = r".*/Custom::CDKBucketDeployment[0-9A-F]+/.*"
STATELESS_WILDCARDS = (
    WildcardRule(
        pattern=(
            rf"Resource::arn:{PARTITION}:execute-api:{REGION}:{ACCOUNT}:<WebSocketApi[0-9A-F]+>"
            r"/[a-z]+/(POST|GET|DELETE)/@connections/\*"
        ),
        reason=(
            "@connections/{connectionId}: connection ids exist only at run time. The grant "
            "is scoped to this API, this stage, one HTTP method and the @connections path."
        ),
    ),
    WildcardRule(
        pattern=r"Resource::<DispatchFailureRuntimeFunction[0-9A-F]+\.Arn>:\*",
        reason=(
            "The inference alias's on-failure destination: Lambda's destination grant "
            "covers the failure handler's versions (its ARN plus ':*') and nothing else."
        ),
        path=r".*/Inference/Role/.*",
    ),
    WildcardRule(
        pattern=r"Action::s3:(GetObject|GetBucket|List|DeleteObject|Abort)\*",
        reason=(
            "CDK's BucketDeployment reads the staged web client from the CDK assets bucket "
            "and syncs it into the site bucket, pruning old files: CDK's grantRead/"
            "grantReadWrite action groups."
        ),
        path=_DEPLOYMENT,
    ),
    WildcardRule(
        pattern=(
            rf"Resource::(arn:{PARTITION}:s3:::cdk-[a-z0-9]+-assets-{ACCOUNT}-{REGION}"
            r"|<WebClientSite[0-9A-F]+\.Arn>)/\*"
        ),
        reason=(
            "CDK's BucketDeployment: objects of the CDK assets bucket (the staged web "
            "client) and of this stage's site bucket only."
        ),
        path=_DEPLOYMENT,
    ),
    WildcardRule(
        pattern=r"Resource::\*",
        reason=(
            "CDK's BucketDeployment invalidates the distribution after a deploy; "
            "cloudfront:CreateInvalidation/GetInvalidation as granted by CDK use '*'."
        ),
        path=_DEPLOYMENT,
    ),
)

"""The chat page: a private bucket behind CloudFront with origin access control.

`config.json` beside the page is written at deploy time with the stage's WebSocket URL,
its model's name and the caps the page checks before sending (`page_config`).
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

from infra.config import StageConfig
from infra.constructs.runtime_function import log_group
from infra.paths import WEB_CLIENT_DIR

CONFIG_FILE = "config.json"
NO_CLOUDFRONT_LOGS = (
    "A stage that requires a token keeps no CloudFront standard logs: they always record "
    "the query string, and the page's address carries ?token=. The WebSocket API's access "
    "logs record every connection without it."
)


def page_config(*, config: StageConfig, websocket_url: str) -> dict[str, Any]:
    """What the page reads from config.json: where to connect, the model's name, and the
    stage's caps (the page checks a prompt's length and bounds its settings by them; the
    router still enforces every one)."""
    return {
        "websocketUrl": websocket_url,
        "model": PurePosixPath(config.model_file).stem,
        "maxPromptChars": config.max_prompt_chars,
        "maxTokensCap": config.max_tokens_cap,
        "defaultMaxTokens": config.default_max_tokens,
        "maxTemperature": config.max_temperature,
    }


class WebClientHosting(Construct):
    """Bucket + distribution now; `deploy_site` once the WebSocket URL exists."""

    def __init__(self, scope: Construct, construct_id: str, *, config: StageConfig) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        # One bucket for the site bucket's server access logs and CloudFront's standard
        # logs. CloudFront's standard logging writes with ACLs, hence OBJECT_WRITER.
        self.log_bucket = s3.Bucket(
            self,
            "AccessLogs",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.OBJECT_WRITER,
            lifecycle_rules=[s3.LifecycleRule(expiration=cdk.Duration.days(90))],
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        cdk.Validations.of(self.log_bucket).acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions-S1",
                reason="This is the access-log bucket; logging it into itself would loop.",
            )
        )
        self.bucket = s3.Bucket(
            self,
            "Site",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            server_access_logs_bucket=self.log_bucket,
            server_access_logs_prefix="site/",
            # The page is rebuilt from the repository on every deploy: nothing to keep.
            removal_policy=cdk.RemovalPolicy.DESTROY,
            auto_delete_objects=True,
        )
        origin = origins.S3BucketOrigin.with_origin_access_control(self.bucket)
        self.distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment=f"llambda {config.stage_name} chat page",
            default_root_object="index.html",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origin,
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED,
                response_headers_policy=cloudfront.ResponseHeadersPolicy.SECURITY_HEADERS,
            ),
            additional_behaviors={
                # Re-read on every load, so a redeployed API's URL is picked up at once.
                CONFIG_FILE: cloudfront.BehaviorOptions(
                    origin=origin,
                    viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                    cache_policy=cloudfront.CachePolicy.CACHING_DISABLED,
                    response_headers_policy=cloudfront.ResponseHeadersPolicy.SECURITY_HEADERS,
                )
            },
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            price_class=cloudfront.PriceClass.PRICE_CLASS_100,
            # CloudFront's standard logs always record the query string, and where a token
            # is required the page's address carries it (?token=): such a stage keeps
            # none. Its WebSocket API's access logs record each connection without it.
            enable_logging=not config.require_token,
            log_bucket=None if config.require_token else self.log_bucket,
            log_file_prefix=None if config.require_token else "cloudfront/",
        )
        if config.require_token:
            cdk.Validations.of(self.distribution).acknowledge(
                cdk.Acknowledgment(id="AwsSolutions-CFR3", reason=NO_CLOUDFRONT_LOGS)
            )
        for rule, reason in (
            ("AwsSolutions-CFR1", "A public chat page meant for every country."),
            (
                "AwsSolutions-CFR2",
                "The page is static and cached; the costly path is the WebSocket API, "
                "capped by stage throttling, the Prod token and reserved concurrency.",
            ),
            (
                "AwsSolutions-CFR4",
                "No custom domain: the default *.cloudfront.net certificate fixes the "
                "minimum TLS version; a custom domain with an ACM certificate would set it.",
            ),
        ):
            cdk.Validations.of(self.distribution).acknowledge(
                cdk.Acknowledgment(id=rule, reason=reason)
            )

    @property
    def url(self) -> str:
        return f"https://{self.distribution.distribution_domain_name}"

    def deploy_site(self, *, websocket_url: str) -> s3deploy.BucketDeployment:
        """Upload `web_client/` and the stage's `config.json` (see `page_config`)."""
        return s3deploy.BucketDeployment(
            self,
            "Deployment",
            destination_bucket=self.bucket,
            sources=[
                # The local config.json (for `make dev`) is replaced by the deployed one.
                s3deploy.Source.asset(str(WEB_CLIENT_DIR), exclude=[CONFIG_FILE]),
                s3deploy.Source.json_data(
                    CONFIG_FILE, page_config(config=self._config, websocket_url=websocket_url)
                ),
            ],
            distribution=self.distribution,
            distribution_paths=["/*"],
            prune=True,
            log_group=log_group(self, "DeploymentLogs", config=self._config),
        )

"""The checkov findings this project accepts, each with its reason: the one place they live.

checkov (a static scanner of the synthesized templates; tests/infra/test_checkov.py runs
it) reads a resource's `Metadata.checkov.skip`. `acknowledge_checkov` writes there, for
each resource that an `Accepted` entry names (by CloudFormation type and construct path),
the entry's check and reason. So a new finding, or one on a resource no entry names, fails
the test, and an entry that no longer matches a finding fails it too. docs/deploy.md
("Security scan") points here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import aws_cdk as cdk
from constructs import Construct

from infra.config import StageConfig


@dataclass(frozen=True)
class Accepted:
    """checkov's `check` is acceptable on `resource_type` resources whose construct path
    matches `path` (a regular expression, searched), in stages where `when` holds."""

    check: str
    resource_type: str
    reason: str
    path: str = ".*"
    when: Callable[[StageConfig], bool] = lambda config: True


# Our functions (the CDK path names the construct), and CDK's own deploy-time handlers.
_OURS = r"/(Router|Authorizer|DispatchFailure|Inference)/"
_SYNCHRONOUS = r"/(Router|Authorizer)/"
_CDK_HANDLERS = r"/(Custom::CDKBucketDeployment[0-9A-F]+|Custom::S3AutoDeleteObjects\w+)/"
_FUNCTION = "AWS::Lambda::Function"

ACCEPTED: tuple[Accepted, ...] = (
    # Lambda ----------------------------------------------------------------------------
    Accepted(
        "CKV_AWS_117",
        _FUNCTION,
        "The functions call only public AWS endpoints and, for picoLLM, Picovoice's licence "
        "servers: in a VPC they would need a NAT gateway (about 32 USD a month per zone) or "
        "an endpoint per service, and there is no private network for a VPC to reach or keep.",
    ),
    Accepted(
        "CKV_AWS_116",
        _FUNCTION,
        "API Gateway invokes the router and the authorizer synchronously; a dead-letter "
        "queue receives only failed asynchronous invocations, so it would never get one.",
        path=_SYNCHRONOUS,
    ),
    Accepted(
        "CKV_AWS_116",
        _FUNCTION,
        "Invoked asynchronously through its alias, whose on-failure destination (the "
        "dispatch-failure function, which has the dead-letter queue) gets every failed event "
        "and tells the client: a Lambda destination, which checkov does not count.",
        path=r"/Inference/",
    ),
    Accepted(
        "CKV_AWS_116",
        _FUNCTION,
        "CDK's deploy-time custom-resource handler: CloudFormation invokes it and reports "
        "its failure in the stack's events; it has no event to keep.",
        path=_CDK_HANDLERS,
    ),
    Accepted(
        "CKV_AWS_115",
        _FUNCTION,
        "Reserving concurrency takes it from the account's pool, which a new account "
        "cannot give (docs/deploy.md, step 2); the WebSocket stage's throttling bounds how "
        "often API Gateway calls the router and the authorizer, and the dispatch-failure "
        "function runs only for failed dispatches, themselves bounded by the inference "
        "function's reservation.",
        path=r"/(Router|Authorizer|DispatchFailure)/",
    ),
    Accepted(
        "CKV_AWS_115",
        _FUNCTION,
        "reservedConcurrency=0 asks for no reservation (a new account may have no pool to "
        "reserve from); the stage's throttling still bounds how many chats reach it.",
        path=r"/Inference/",
        when=lambda config: config.reserved_concurrency == 0,
    ),
    Accepted(
        "CKV_AWS_115",
        _FUNCTION,
        "CDK's deploy-time custom-resource handler, run by CloudFormation a few times per "
        "deploy: a reservation would only take concurrency from the account's pool.",
        path=_CDK_HANDLERS,
    ),
    Accepted(
        "CKV_AWS_258",
        "AWS::Lambda::Url",
        "The OpenAI-compatible endpoint's clients send `Authorization: Bearer <key>`, which "
        "AWS_IAM would need to be a SigV4 signature; the function refuses every request "
        "without a valid API key (hashed in the table, compared in constant time) and a "
        "stage may not turn that off in Prod (docs/architecture.md).",
        path=r"/OpenAI/Url/",
    ),
    Accepted(
        "CKV_AWS_173",
        _FUNCTION,
        "The environment holds no secret: settings, table and function names and the "
        "secrets' ARNs (the AccessKey and the token are read from Secrets Manager at run "
        "time); Lambda encrypts it at rest with its AWS managed key.",
        path=rf"{_OURS}|/Custom::CDKBucketDeployment[0-9A-F]+/",
    ),
    # Data at rest ------------------------------------------------------------------------
    Accepted(
        "CKV_AWS_158",
        "AWS::Logs::LogGroup",
        "CloudWatch Logs encrypts every log group at rest. The logs hold ids, sizes, "
        "timings and the API's client addresses, never prompts, replies or keys "
        "(lambda_image/llambda/observability.py): a customer managed key would add a key "
        "policy and a cost and protect nothing more.",
    ),
    Accepted(
        "CKV_AWS_149",
        "AWS::SecretsManager::Secret",
        "Encrypted with Secrets Manager's AWS managed key and read only by this stage's "
        "functions in this account: there is no cross-account use, which is what would "
        "need a customer managed key.",
    ),
    Accepted(
        "CKV_AWS_119",
        "AWS::DynamoDB::Table",
        "Encrypted at rest with DynamoDB's AWS managed key (its use logged in CloudTrail) "
        "and read only by this stage's functions: no cross-account access for a customer "
        "managed key to govern, which would add a key policy and a cost per request.",
    ),
    Accepted(
        "CKV_AWS_28",
        "AWS::DynamoDB::Table",
        "Connection records expire within hours and conversations a few days after their "
        "last use; point-in-time recovery is on where pointInTimeRecovery=true (Prod).",
        when=lambda config: not config.point_in_time_recovery,
    ),
    Accepted(
        "CKV_AWS_27",
        "AWS::SQS::Queue",
        "Encrypted at rest with SSE-SQS (SqsManagedSseEnabled), which checkov does not "
        "count; its dead letters expire after 4 days "
        "(infra/constructs/dispatch_failure_function.py).",
    ),
    Accepted(
        "CKV_AWS_26",
        "AWS::SNS::Topic",
        "CloudWatch alarms cannot publish to a topic encrypted with SNS's AWS managed key, "
        "and a customer managed key would need a key policy for CloudWatch; the "
        "notifications carry only alarm names, states and thresholds.",
    ),
    # The hosted page -----------------------------------------------------------------------
    Accepted(
        "CKV_AWS_18",
        "AWS::S3::Bucket",
        "This is the access-log bucket: logging it into itself would loop.",
        path=r"/WebClient/AccessLogs/",
    ),
    Accepted(
        "CKV_AWS_21",
        "AWS::S3::Bucket",
        "The page is uploaded from the repository on every deploy, and the bucket is "
        "emptied with the stack: an old version has nothing to restore.",
        path=r"/WebClient/Site/",
    ),
    Accepted(
        "CKV_AWS_21",
        "AWS::S3::Bucket",
        "Access logs are written once, never changed, and expire after 90 days: each "
        "object only ever has one version to keep.",
        path=r"/WebClient/AccessLogs/",
    ),
    Accepted(
        "CKV_AWS_68",
        "AWS::CloudFront::Distribution",
        "A static page behind CloudFront's cache: a web ACL costs at least 5 USD a month "
        "per stage, and the costly path is the WebSocket API (which AWS WAF cannot "
        "protect), bounded by stage throttling, the Prod token and reserved concurrency.",
    ),
    Accepted(
        "CKV_AWS_174",
        "AWS::CloudFront::Distribution",
        "No custom domain: the default *.cloudfront.net certificate fixes the minimum TLS "
        "version; a custom domain with an ACM certificate would set TLSv1.2_2021.",
    ),
    Accepted(
        "CKV_AWS_86",
        "AWS::CloudFront::Distribution",
        "A stage that requires a token keeps no CloudFront standard logs: they always "
        "record the query string, and the page's address carries ?token=. The WebSocket "
        "API's access logs record every connection without it.",
        when=lambda config: config.require_token,
    ),
    Accepted(
        "CKV_AWS_111",
        "AWS::IAM::Policy",
        "CDK's BucketDeployment invalidates the distribution after a deploy, with "
        "cloudfront:CreateInvalidation/GetInvalidation granted by CDK on '*'.",
        path=r"/Custom::CDKBucketDeployment[0-9A-F]+/",
    ),
)


def accepted_for(
    resource_type: str, path: str, config: StageConfig, accepted: Iterable[Accepted] = ACCEPTED
) -> list[Accepted]:
    """The entries that accept a finding on this resource, one per check."""
    found: dict[str, Accepted] = {}
    for entry in accepted:
        if (
            entry.resource_type == resource_type
            and re.search(entry.path, path)
            and entry.when(config)
        ):
            found.setdefault(entry.check, entry)
    return list(found.values())


def acknowledge_checkov(scope: Construct, config: StageConfig) -> None:
    """Write each accepted finding under `scope` into its resource's Metadata.checkov.skip.

    Call it last in the stack: it reads the resources as they stand.
    """
    for node in scope.node.find_all():
        if not isinstance(node, cdk.CfnResource):
            continue
        entries = accepted_for(node.cfn_resource_type, node.node.path, config)
        if entries:
            node.add_metadata(
                "checkov",
                {"skip": [{"id": entry.check, "comment": entry.reason} for entry in entries]},
            )

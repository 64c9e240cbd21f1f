"""offline.iam: credentials, moto-backed policy evaluation, request targets, denials.

The policy documents are shaped as CDK synthesizes them (single-string Action, Action lists,
Resource lists, `:*` suffixed function ARNs, `@connections/*`), with the intrinsics resolved.
The denial responses are checked with real boto3 clients against a stub HTTP server on
127.0.0.1; nothing here touches the network.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from offline.iam import (
    CredentialBook,
    Decision,
    Policy,
    RolePermissions,
    access_denied,
    assumed_role_arn,
    connections_target,
    denial_line,
    dynamodb_targets,
    invoke_target,
    secretsmanager_targets,
)

REGION = "us-east-1"
ACCOUNT = "123456789012"
API = "a1b2c3d4e5"
TABLE = "Dev-Stateful-ConnectionTable-1ABC"
TABLE_ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{TABLE}"
FN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:Dev-Stateless-Inference-XYZ"
DISPATCH_FN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:Dev-Stateless-DispatchFailure-Q"
SECRET_NAME = "Dev/AccessKey"
SECRET_ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{SECRET_NAME}-AbC123"
ROUTER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/Dev-Stateless-RouterRuntimeRole-1"
INFERENCE_ROLE = f"arn:aws:iam::{ACCOUNT}:role/service-role/Dev-Stateless-InferenceRole-2"


def _connections(stage: str = "dev") -> list[str]:
    return [
        f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{API}/{stage}/{method}/@connections/*"
        for method in ("DELETE", "GET", "POST")
    ]


TABLE_ACTIONS = [
    "dynamodb:BatchGetItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:DeleteItem",
    "dynamodb:DescribeTable",
    "dynamodb:GetItem",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    "dynamodb:PutItem",
    "dynamodb:Query",
    "dynamodb:Scan",
    "dynamodb:UpdateItem",
]

# The router's default policy as CDK synthesizes it, intrinsics resolved.
ROUTER_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Effect": "Allow",
            "Resource": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/router:*",
        },
        {"Action": TABLE_ACTIONS, "Effect": "Allow", "Resource": TABLE_ARN},
        {"Action": "lambda:InvokeFunction", "Effect": "Allow", "Resource": f"{FN}:live"},
        {"Action": "execute-api:ManageConnections", "Effect": "Allow", "Resource": _connections()},
    ],
}

# The inference function's: its secret, and grantInvoke's `fn` + `fn:*` pair.
INFERENCE_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Action": ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"],
            "Effect": "Allow",
            "Resource": SECRET_ARN,
        },
        {
            "Action": "lambda:InvokeFunction",
            "Effect": "Allow",
            "Resource": [DISPATCH_FN, f"{DISPATCH_FN}:*"],
        },
        {"Action": TABLE_ACTIONS, "Effect": "Allow", "Resource": TABLE_ARN},
        {"Action": "execute-api:ManageConnections", "Effect": "Allow", "Resource": _connections()},
    ],
}


def _connection_arn(stage: str, method: str, connection_id: str = "abc123=") -> str:
    return connections_target(method, API, stage, connection_id, region=REGION, account_id=ACCOUNT)[
        1
    ]


# --------------------------------------------------------------------------- credentials


def test_issued_credentials_are_aws_shaped_unique_per_role_and_stable() -> None:
    book = CredentialBook()
    router, inference = book.issue(ROUTER_ROLE), book.issue(INFERENCE_ROLE)
    assert set(router) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}
    for creds in (router, inference):
        assert re.fullmatch(r"ASIA[A-Z2-7]{16}", creds["AWS_ACCESS_KEY_ID"])
        assert len(creds["AWS_SECRET_ACCESS_KEY"]) == 40
        assert len(creds["AWS_SESSION_TOKEN"]) > 100
    assert router["AWS_ACCESS_KEY_ID"] != inference["AWS_ACCESS_KEY_ID"]
    assert book.issue(ROUTER_ROLE) == router  # a cold start signs as the same role


def test_role_for_reads_the_sigv4_credential_scope() -> None:
    book = CredentialBook()
    akid = book.issue(ROUTER_ROLE)["AWS_ACCESS_KEY_ID"]
    header = (
        f"AWS4-HMAC-SHA256 Credential={akid}/20240101/us-east-1/dynamodb/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=deadbeef"
    )
    assert book.role_for({"Authorization": header}) == ROUTER_ROLE
    assert book.role_for({"authorization": header}) == ROUTER_ROLE  # plain dict, any case
    unknown = header.replace(akid, "ASIAAAAAAAAAAAAAAAAA")
    assert book.role_for({"Authorization": unknown}) is None
    assert book.role_for({}) is None
    assert book.role_for({"Authorization": f"AWS {akid}:signature"}) is None  # SigV2
    assert book.role_for_access_key(akid) == ROUTER_ROLE


# --------------------------------------------------------------------------- evaluation


def test_router_may_invoke_the_live_alias_only() -> None:
    router = RolePermissions(ROUTER_ROLE, [ROUTER_POLICY])
    assert router.allows(*invoke_target(FN, "live"))
    assert router.allows(*invoke_target(f"{FN}:live", None))
    assert not router.allows(*invoke_target(FN, None))  # unqualified
    assert not router.allows(*invoke_target(FN, "$LATEST"))
    assert not router.allows(*invoke_target(FN, "1"))  # even the version `live` points to
    assert not router.allows(*invoke_target(FN, "live2"))


def test_grant_invoke_pair_covers_unqualified_and_every_qualifier_of_that_function() -> None:
    inference = RolePermissions(INFERENCE_ROLE, [INFERENCE_POLICY])
    for qualifier in (None, "$LATEST", "1", "live"):
        assert inference.allows(*invoke_target(DISPATCH_FN, qualifier))
    assert not inference.allows(*invoke_target(DISPATCH_FN + "2", None))
    assert not inference.allows(*invoke_target(FN, None))


def test_manage_connections_scoped_to_its_stage_methods_and_api() -> None:
    router = RolePermissions(ROUTER_ROLE, [ROUTER_POLICY])
    action = "execute-api:ManageConnections"
    for method in ("POST", "GET", "DELETE", "post"):
        assert router.allows(action, _connection_arn("dev", method))
    assert not router.allows(action, _connection_arn("prod", "POST"))
    assert not router.allows(action, _connection_arn("dev", "PATCH"))
    other_api = _connection_arn("dev", "POST").replace(API, "zzzzzzzzzz")
    assert not router.allows(action, other_api)


def test_dynamodb_grant_on_one_table_denies_another_and_its_indexes() -> None:
    router = RolePermissions(ROUTER_ROLE, [ROUTER_POLICY])
    assert router.allows("dynamodb:GetItem", TABLE_ARN)
    assert router.allows("dynamodb:UpdateItem", TABLE_ARN)
    assert not router.allows("dynamodb:GetItem", TABLE_ARN.replace(TABLE, "OtherTable"))
    assert not router.allows("dynamodb:GetItem", TABLE_ARN + "-suffix")
    assert not router.allows("dynamodb:Query", TABLE_ARN + "/index/byUser")
    assert not router.allows("dynamodb:DeleteTable", TABLE_ARN)  # action not granted
    assert not router.allows("dynamodb:ListTables", "*")


def test_secret_grant_on_its_full_arn() -> None:
    inference = RolePermissions(INFERENCE_ROLE, [INFERENCE_POLICY])
    assert inference.allows("secretsmanager:GetSecretValue", SECRET_ARN)
    assert not inference.allows("secretsmanager:PutSecretValue", SECRET_ARN)
    assert not inference.allows("secretsmanager:GetSecretValue", SECRET_ARN[:-1] + "4")
    router = RolePermissions(ROUTER_ROLE, [ROUTER_POLICY])
    assert not router.allows("secretsmanager:GetSecretValue", SECRET_ARN)


def test_explicit_deny_beats_allow_within_and_across_policies() -> None:
    allow_all = {"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}
    deny_delete = {
        "Statement": [{"Effect": "Deny", "Action": "dynamodb:DeleteItem", "Resource": TABLE_ARN}]
    }
    both = {"Statement": [allow_all["Statement"], *deny_delete["Statement"]]}
    assert Policy(both).decide("dynamodb:DeleteItem", TABLE_ARN) == Decision.EXPLICIT_DENY
    assert Policy(both).decide("dynamodb:GetItem", TABLE_ARN) == Decision.ALLOW
    role = RolePermissions(ROUTER_ROLE, [allow_all, deny_delete])
    assert role.decide("dynamodb:DeleteItem", TABLE_ARN) == Decision.EXPLICIT_DENY
    assert role.decide("dynamodb:PutItem", TABLE_ARN) == Decision.ALLOW
    assert RolePermissions(ROUTER_ROLE, []).decide("s3:GetObject", "*") == Decision.IMPLICIT_DENY


def test_single_string_action_and_resource_are_not_iterated_as_characters() -> None:
    policy = Policy(
        {"Statement": {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "arn:q"}}
    )
    assert policy.allows("sqs:SendMessage", "arn:q")
    for fragment in ("s", "q", ":", "sqs"):
        assert not policy.allows(fragment, "arn:q")
    assert not policy.allows("sqs:SendMessage", "a")
    assert not policy.allows("sqs:SendMessage", "*")


def test_wildcards_and_special_characters_match_as_in_aws() -> None:
    def allows(pattern: str, resource: str) -> bool:
        doc = {"Statement": [{"Effect": "Allow", "Action": "x:Y", "Resource": pattern}]}
        return Policy(doc).allows("x:Y", resource)

    # `?` is exactly one character (moto alone reads it as "previous char optional").
    assert allows(SECRET_ARN[:-6] + "??????", SECRET_ARN)
    assert not allows(SECRET_ARN[:-6] + "???????", SECRET_ARN)
    assert not allows(SECRET_ARN[:-6] + "?????", SECRET_ARN)
    assert not allows("arn:ab?", "arn:a")
    # `.` is literal (moto alone reads it as any character); `$` is literal, not an anchor.
    assert allows("arn:t/my.table", "arn:t/my.table")
    assert not allows("arn:t/my.table", "arn:t/myXtable")
    assert allows(f"{FN}:$LATEST", f"{FN}:$LATEST")
    assert allows("arn:s:secret:a+b-*", "arn:s:secret:a+b-XyZ123")
    # `*` spans anything, including `/` and `:`; resources are case-sensitive.
    assert allows("arn:t/*", "arn:t/a/index/b")
    assert not allows("arn:t/abc", "arn:t/ABC")


def test_actions_match_case_insensitively_with_wildcards() -> None:
    doc = {"Statement": [{"Effect": "Allow", "Action": ["DynamoDB:Get*"], "Resource": "*"}]}
    policy = Policy(doc)
    assert policy.allows("dynamodb:GetItem", "arn:t")
    assert policy.allows("dynamodb:getitem", "arn:t")
    assert not policy.allows("dynamodb:PutItem", "arn:t")


def test_not_action_and_not_resource() -> None:
    doc = {
        "Statement": [
            {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"},
            {"Effect": "Deny", "Action": "dynamodb:*", "NotResource": [TABLE_ARN, "arn:ok/*"]},
        ]
    }
    policy = Policy(doc)
    assert not policy.allows("iam:CreateUser", "*")
    assert policy.allows("dynamodb:GetItem", TABLE_ARN)
    assert policy.allows("dynamodb:GetItem", "arn:ok/x")
    assert policy.decide("dynamodb:GetItem", "arn:other") == Decision.EXPLICIT_DENY
    assert policy.allows("sqs:SendMessage", "arn:other")
    allow_outside = Policy(
        {"Statement": {"Effect": "Allow", "Action": "s3:*", "NotResource": "arn:secret*"}}
    )
    assert allow_outside.allows("s3:GetObject", "arn:public")
    assert not allow_outside.allows("s3:GetObject", "arn:secret/x")


def test_conditional_statements_fail_closed(caplog: pytest.LogCaptureFixture) -> None:
    condition = {"StringEquals": {"aws:PrincipalTag/team": "a"}}
    with caplog.at_level(logging.WARNING, logger="offline"):
        policy = Policy(
            {
                "Statement": [
                    {"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Condition": condition},
                    {"Effect": "Allow", "Action": "sqs:*", "Resource": "*"},
                    {
                        "Effect": "Deny",
                        "Action": "sqs:DeleteQueue",
                        "Resource": "*",
                        "Condition": condition,
                    },
                ]
            }
        )
    assert not policy.allows("s3:GetObject", "arn:b")
    assert policy.allows("sqs:SendMessage", "arn:q")
    assert policy.decide("sqs:DeleteQueue", "arn:q") == Decision.EXPLICIT_DENY
    assert sum("Condition" in r.getMessage() for r in caplog.records) == 2


def test_policy_from_json_text_and_malformed_documents() -> None:
    assert Policy(json.dumps(ROUTER_POLICY)).allows("dynamodb:GetItem", TABLE_ARN)
    with pytest.raises(TypeError, match="intrinsic"):
        Policy({"Statement": [{"Effect": "Allow", "Action": "x:Y", "Resource": {"Ref": "T"}}]})
    with pytest.raises(ValueError, match="Principal"):
        Policy(
            {"Statement": {"Effect": "Allow", "Principal": "*", "Action": "x:Y", "Resource": "*"}}
        )
    with pytest.raises(ValueError, match="Effect"):
        Policy({"Statement": {"Effect": "allow", "Action": "x:Y", "Resource": "*"}})
    with pytest.raises(ValueError, match="Resource"):
        Policy({"Statement": {"Effect": "Allow", "Action": "x:Y"}})
    with pytest.raises(ValueError, match="empty"):
        Policy({"Statement": {"Effect": "Allow", "Action": [], "Resource": "*"}})
    with pytest.raises(ValueError, match="Statement"):
        Policy({"Version": "2012-10-17"})


def test_every_synthesized_policy_document_is_accepted(assemblies) -> None:
    """The stage's real policies, resolved as the twin resolves them, allow what they say."""
    from offline.blueprint import role_policies
    from offline.template import Resolver, StageAssembly
    from tests.twin_assembly import TWIN_STAGE

    stage = StageAssembly.load(assemblies.get(), TWIN_STAGE)
    roles = role_policies(stage, Resolver(stage, account_id=ACCOUNT))
    seen = 0
    for role, documents in roles.items():
        for document in documents:
            policy = Policy(document)
            statements = document["Statement"]
            for statement in [statements] if isinstance(statements, dict) else statements:
                actions, resources = statement["Action"], statement["Resource"]
                action = actions if isinstance(actions, str) else actions[0]
                target = resources if isinstance(resources, str) else resources[0]
                concrete = target.replace("*", "x").replace("?", "x")
                assert policy.allows(action, concrete), (role, statement)
                seen += 1
    assert seen


# --------------------------------------------------------------------------- targets


def _ddb(operation: str, body: dict[str, Any]) -> list[tuple[str, str]]:
    return dynamodb_targets(
        f"DynamoDB_20120810.{operation}",
        json.dumps(body).encode(),
        region=REGION,
        account_id=ACCOUNT,
    )


def test_dynamodb_targets_single_table_operations() -> None:
    assert _ddb("GetItem", {"TableName": TABLE, "Key": {}}) == [("dynamodb:GetItem", TABLE_ARN)]
    assert _ddb("PutItem", {"TableName": TABLE_ARN}) == [("dynamodb:PutItem", TABLE_ARN)]
    assert _ddb("Query", {"TableName": TABLE, "IndexName": "byUser"}) == [
        ("dynamodb:Query", f"{TABLE_ARN}/index/byUser")
    ]
    assert _ddb("Scan", {"TableName": TABLE}) == [("dynamodb:Scan", TABLE_ARN)]
    assert _ddb("ListTables", {}) == [("dynamodb:ListTables", "*")]
    assert _ddb("TagResource", {"ResourceArn": TABLE_ARN, "Tags": []}) == [
        ("dynamodb:TagResource", TABLE_ARN)
    ]
    assert _ddb("DescribeEndpoints", {}) == []
    assert dynamodb_targets(
        "DynamoDB_20120810.ListTables", b"", region=REGION, account_id=ACCOUNT
    ) == [("dynamodb:ListTables", "*")]


def test_dynamodb_targets_batch_and_transactions_per_table() -> None:
    other = TABLE_ARN.replace(TABLE, "Other")
    assert _ddb("BatchGetItem", {"RequestItems": {TABLE: {}, "Other": {}}}) == [
        ("dynamodb:BatchGetItem", TABLE_ARN),
        ("dynamodb:BatchGetItem", other),
    ]
    assert _ddb("BatchWriteItem", {"RequestItems": {TABLE: []}}) == [
        ("dynamodb:BatchWriteItem", TABLE_ARN)
    ]
    items = [
        {"ConditionCheck": {"TableName": TABLE, "Key": {}}},
        {"Put": {"TableName": "Other", "Item": {}}},
        {"Update": {"TableName": TABLE, "Key": {}}},
        {"Delete": {"TableName": TABLE, "Key": {}}},
        {"Update": {"TableName": TABLE, "Key": {}}},
    ]
    assert _ddb("TransactWriteItems", {"TransactItems": items}) == [
        ("dynamodb:ConditionCheckItem", TABLE_ARN),
        ("dynamodb:PutItem", other),
        ("dynamodb:UpdateItem", TABLE_ARN),
        ("dynamodb:DeleteItem", TABLE_ARN),
    ]
    gets = [{"Get": {"TableName": TABLE, "Key": {}}}, {"Get": {"TableName": other, "Key": {}}}]
    assert _ddb("TransactGetItems", {"TransactItems": gets}) == [
        ("dynamodb:GetItem", TABLE_ARN),
        ("dynamodb:GetItem", other),
    ]
    router = RolePermissions(ROUTER_ROLE, [ROUTER_POLICY])
    assert router.first_denied(_ddb("TransactWriteItems", {"TransactItems": items})) == (
        "dynamodb:PutItem",
        other,
    )


def test_dynamodb_targets_reject_other_targets_and_bad_bodies() -> None:
    with pytest.raises(ValueError):
        dynamodb_targets("secretsmanager.GetSecretValue", b"{}", region=REGION, account_id=ACCOUNT)
    with pytest.raises(ValueError):
        dynamodb_targets("DynamoDB_20120810.GetItem", b"[", region=REGION, account_id=ACCOUNT)


def _arn_for_name(name: str) -> str | None:
    return SECRET_ARN if name == SECRET_NAME else None


def _sm(operation: str, body: dict[str, Any]) -> list[tuple[str, str]]:
    return secretsmanager_targets(
        f"secretsmanager.{operation}",
        json.dumps(body).encode(),
        region=REGION,
        account_id=ACCOUNT,
        arn_for_name=_arn_for_name,
    )


def test_secretsmanager_targets_resolve_every_secret_id_form() -> None:
    get = "secretsmanager:GetSecretValue"
    partial = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{SECRET_NAME}"
    for secret_id in (SECRET_ARN, partial, SECRET_NAME):
        assert _sm("GetSecretValue", {"SecretId": secret_id}) == [(get, SECRET_ARN)]
    missing = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:Nope"
    assert _sm("GetSecretValue", {"SecretId": "Nope"}) == [(get, missing)]
    assert _sm("ListSecrets", {}) == [("secretsmanager:ListSecrets", "*")]
    assert _sm("BatchGetSecretValue", {"SecretIdList": [SECRET_NAME], "Filters": [{}]}) == [
        ("secretsmanager:BatchGetSecretValue", "*"),
        (get, SECRET_ARN),
        ("secretsmanager:ListSecrets", "*"),
    ]
    # A missing secret: an exact or `-??????` grant does not match its suffix-less ARN.
    inference = RolePermissions(INFERENCE_ROLE, [INFERENCE_POLICY])
    assert not inference.allows_all(_sm("GetSecretValue", {"SecretId": "Nope"}))
    assert inference.allows_all(_sm("GetSecretValue", {"SecretId": SECRET_NAME}))


def test_connections_and_invoke_targets() -> None:
    assert connections_target(
        "post", API, "dev", "L0SM9cOFvHcCIhw=", region=REGION, account_id=ACCOUNT
    ) == (
        "execute-api:ManageConnections",
        f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{API}/dev/POST/@connections/L0SM9cOFvHcCIhw=",
    )
    assert invoke_target(FN, None) == ("lambda:InvokeFunction", FN)
    assert invoke_target(FN, "live") == ("lambda:InvokeFunction", f"{FN}:live")
    assert invoke_target(f"{FN}:live", "live") == ("lambda:InvokeFunction", f"{FN}:live")
    with pytest.raises(ValueError):
        invoke_target(f"{FN}:live", "1")
    with pytest.raises(ValueError):
        invoke_target("my-function", None)


# --------------------------------------------------------------------------- denials


class _Stub(ThreadingHTTPServer):
    respond: Callable[[str, str, dict[str, str], bytes], tuple[int, dict[str, str], bytes]]
    requests: list[tuple[str, str, dict[str, str], bytes]]


class _Handler(BaseHTTPRequestHandler):
    server: _Stub

    def _any(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = dict(self.headers.items())
        self.server.requests.append((self.command, self.path, headers, body))
        status, out_headers, payload = self.server.respond(self.command, self.path, headers, body)
        self.send_response(status)
        for key, value in out_headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_DELETE = do_PUT = _any

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def stub() -> Iterator[_Stub]:
    server = _Stub(("127.0.0.1", 0), _Handler)
    server.requests = []
    server.respond = lambda *_: (200, {"Content-Type": "application/json"}, b"{}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def _no_ambient_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def _client(service: str, endpoint: str, creds: dict[str, str]) -> Any:
    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=creds["AWS_SESSION_TOKEN"],
        config=Config(retries={"mode": "standard", "max_attempts": 1}),
    )


def _base(stub: _Stub) -> str:
    return f"http://127.0.0.1:{stub.server_address[1]}"


@pytest.mark.parametrize(
    ("service", "client_name", "action", "resource", "status"),
    [
        ("dynamodb", "dynamodb", "dynamodb:GetItem", TABLE_ARN, 400),
        ("secretsmanager", "secretsmanager", "secretsmanager:GetSecretValue", SECRET_ARN, 400),
        (
            "execute-api",
            "apigatewaymanagementapi",
            "execute-api:ManageConnections",
            _connections("prod")[2].replace("*", "abc="),
            403,
        ),
        ("lambda", "lambda", "lambda:InvokeFunction", FN, 403),
    ],
)
def test_real_clients_raise_access_denied(
    stub: _Stub, service: str, client_name: str, action: str, resource: str, status: int
) -> None:
    book = CredentialBook()
    stub.respond = lambda *_: access_denied(
        service, ROUTER_ROLE, action, resource, session_name="router-fn"
    )
    endpoint = _base(stub) + ("/prod" if client_name == "apigatewaymanagementapi" else "")
    client = _client(client_name, endpoint, book.issue(ROUTER_ROLE))
    calls: dict[str, Callable[[], Any]] = {
        "dynamodb": lambda: client.get_item(TableName=TABLE, Key={"pk": {"S": "x"}}),
        "secretsmanager": lambda: client.get_secret_value(SecretId=SECRET_NAME),
        "apigatewaymanagementapi": lambda: client.post_to_connection(
            ConnectionId="abc=", Data=b"hi"
        ),
        "lambda": lambda: client.invoke(FunctionName=FN, Payload=b"{}"),
    }
    with pytest.raises(ClientError) as raised:
        calls[client_name]()
    response = raised.value.response
    assert response["Error"]["Code"] == "AccessDeniedException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == status
    message = response["Error"]["Message"]
    principal = f"arn:aws:sts::{ACCOUNT}:assumed-role/Dev-Stateless-RouterRuntimeRole-1/router-fn"
    assert message.startswith(f"User: {principal} is not authorized to perform: {action}")
    assert f"on resource: {resource}" in message
    assert len(stub.requests) == 1  # not retried
    assert book.role_for(stub.requests[0][2]) == ROUTER_ROLE


def test_end_to_end_a_role_reaches_its_table_and_not_another(stub: _Stub) -> None:
    """A stub DynamoDB that authorizes real boto3 requests with this module alone."""
    book = CredentialBook()
    roles = {ROUTER_ROLE: RolePermissions(ROUTER_ROLE, [ROUTER_POLICY])}

    def respond(method: str, path: str, headers: dict[str, str], body: bytes) -> Any:
        role = book.role_for(headers)
        assert role is not None
        targets = dynamodb_targets(headers["X-Amz-Target"], body, region=REGION, account_id=ACCOUNT)
        denied = roles[role].first_denied(targets)
        if denied is not None:
            return access_denied("dynamodb", role, *denied)
        return 200, {"Content-Type": "application/x-amz-json-1.0"}, b"{}"

    stub.respond = respond
    client = _client("dynamodb", _base(stub), book.issue(ROUTER_ROLE))
    client.get_item(TableName=TABLE, Key={"pk": {"S": "x"}})
    client.transact_write_items(
        TransactItems=[{"Put": {"TableName": TABLE, "Item": {"pk": {"S": "x"}}}}]
    )
    with pytest.raises(ClientError) as raised:
        client.batch_get_item(
            RequestItems={
                TABLE: {"Keys": [{"pk": {"S": "x"}}]},
                "Other": {"Keys": [{"pk": {"S": "x"}}]},
            }
        )
    assert raised.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "table/Other because no identity-based policy allows" in str(raised.value)


def test_explicit_deny_wording_and_unknown_service() -> None:
    status, headers, body = access_denied(
        "execute-api", ROUTER_ROLE, "execute-api:ManageConnections", "arn:x", explicit_deny=True
    )
    assert status == 403
    assert headers["x-amzn-ErrorType"] == "AccessDeniedException"
    assert json.loads(body)["message"].endswith(
        "on resource: arn:x with an explicit deny in an identity-based policy"
    )
    _, _, plain = access_denied("execute-api", ROUTER_ROLE, "execute-api:ManageConnections", "r")
    assert json.loads(plain)["message"].endswith("on resource: r")
    with pytest.raises(ValueError):
        access_denied("s3", ROUTER_ROLE, "s3:GetObject", "arn:aws:s3:::b/k")


def test_assumed_role_arn_and_denial_line() -> None:
    assert assumed_role_arn(INFERENCE_ROLE, "inference") == (
        f"arn:aws:sts::{ACCOUNT}:assumed-role/Dev-Stateless-InferenceRole-2/inference"
    )
    assert assumed_role_arn(ROUTER_ROLE).endswith("/Dev-Stateless-RouterRuntimeRole-1")
    with pytest.raises(ValueError):
        assumed_role_arn("arn:aws:iam::1:user/bob")
    line = denial_line("router", ROUTER_ROLE, "dynamodb:GetItem", TABLE_ARN)
    for part in ("router", ROUTER_ROLE, "dynamodb:GetItem", TABLE_ARN):
        assert part in line
    assert "\n" not in line

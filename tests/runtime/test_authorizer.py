"""The $connect authorizer against moto's Secrets Manager."""

from __future__ import annotations

import uuid

import pytest

from llambda.handlers import authorizer

ARN = "arn:aws:execute-api:us-east-1:123456789012:abcdef/dev/$connect"


@pytest.fixture
def secret(lambda_env, moto_server, monkeypatch):
    # One moto server serves the whole session: every secret needs a name no other test
    # (nor a rerun) can pick. id() cannot promise that: CPython reuses freed objects' ids.
    created = moto_server.client("secretsmanager").create_secret(
        Name=_unique_name("token"), SecretString="s3cret-token"
    )
    monkeypatch.setenv("TOKEN_SECRET_ARN", created["ARN"])
    authorizer.DEPS.reset()
    return created["ARN"]


def _unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def authorize(context, token=None):
    event = {
        "type": "REQUEST",
        "methodArn": ARN,
        "headers": {},
        "requestContext": {"identity": {"sourceIp": "203.0.113.9"}},
    }
    if token is not None:
        event["queryStringParameters"] = {"token": token}
    answer = authorizer.handler(event, context)
    [statement] = answer["policyDocument"]["Statement"]
    # Just the route asked for, never the whole API.
    assert statement["Resource"] == [ARN] and statement["Action"] == "execute-api:Invoke"
    return statement["Effect"]


@pytest.mark.parametrize(
    ("required", "token", "effect"),
    [
        (True, "s3cret-token", "Allow"),
        (True, "wrong", "Deny"),
        (True, None, "Deny"),
        (True, "", "Deny"),
        (False, None, "Allow"),
        (False, "s3cret-token", "Allow"),
        (False, "wrong", "Deny"),  # a token that is given must be right
    ],
)
def test_token_decisions(secret, monkeypatch, context, required, token, effect):
    monkeypatch.setenv("REQUIRE_TOKEN", "true" if required else "false")
    authorizer.DEPS.reset()
    assert authorize(context, token) == effect


def test_deny_is_logged_without_the_token(secret, monkeypatch, context, caplog):
    monkeypatch.setenv("REQUIRE_TOKEN", "true")
    authorizer.DEPS.reset()
    assert authorize(context, "guess-123") == "Deny"
    [denied] = [r for r in caplog.records if r.getMessage() == "connection denied"]
    assert denied.reason == "wrong token"
    logged = " ".join(str(vars(r)) for r in caplog.records)
    assert "guess-123" not in logged and "s3cret-token" not in logged


def test_unreadable_secret_denies(lambda_env, monkeypatch, context):
    monkeypatch.setenv("TOKEN_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:1:secret:nope")
    monkeypatch.setenv("REQUIRE_TOKEN", "true")
    authorizer.DEPS.reset()
    assert authorize(context, "anything") == "Deny"


def test_json_secret_value(lambda_env, moto_server):
    from llambda.handlers import aws

    arn = moto_server.client("secretsmanager").create_secret(
        Name=_unique_name("json-token"), SecretString='{"token": "abc"}'
    )["ARN"]
    assert aws.read_secret(aws.secrets(), arn, json_key="token") == "abc"

"""REQUEST authorizer on $connect: `?token=` checked in constant time against a secret.

Where the stage does not require a token, a connection without one is allowed; a token
that is given must still be right. A deny answers the handshake with 403. The reason is
logged; the token never is.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import cache
from typing import Any

from llambda.handlers import aws
from llambda.observability import count_error, logger

PRINCIPAL = "websocket-client"


def decide(
    token: str | None, *, require_token: bool, expected: Callable[[], str]
) -> tuple[bool, str]:
    """(allowed, reason). `expected` is only read when a token must be compared."""
    if not token:
        if require_token:
            return False, "no token given"
        return True, "no token, none required"
    try:
        secret = expected()
    except Exception:
        logger.exception("token secret unavailable")
        return False, "token secret unavailable"
    if not secret:
        return False, "token secret is empty"
    if hmac.compare_digest(token.encode(), secret.encode()):
        return True, "token matches"
    return False, "wrong token"


def policy(allowed: bool, method_arn: str) -> dict[str, Any]:
    return {
        "principalId": PRINCIPAL,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Action": "execute-api:Invoke",
                    "Effect": "Allow" if allowed else "Deny",
                    "Resource": method_arn,
                }
            ],
        },
    }


@cache
def _expected_token() -> str:
    """The token secret, read once per instance (a failed read is retried next time)."""
    arn = aws.settings().token_secret_arn
    if not arn:
        raise RuntimeError("TOKEN_SECRET_ARN is not set")
    return aws.read_secret(arn, json_key="token")


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    token = (event.get("queryStringParameters") or {}).get("token")
    allowed, reason = decide(
        token, require_token=aws.settings().require_token, expected=_expected_token
    )
    ctx = event.get("requestContext") or {}
    extra = {"reason": reason, "source_ip": (ctx.get("identity") or {}).get("sourceIp")}
    if allowed:
        logger.info("connection allowed", extra=extra)
    else:
        logger.warning("connection denied", extra=extra)
        count_error("unauthorized")
    return policy(allowed, event.get("methodArn", "*"))

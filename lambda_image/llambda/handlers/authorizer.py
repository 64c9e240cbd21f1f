"""REQUEST authorizer on $connect: `?token=` checked in constant time against a secret.

Where the stage does not require a token, a connection without one is allowed; a token
that is given must still be right. A deny answers the handshake with 403. The reason is
logged; the token never is. An allowed token's hash goes in the authorizer's context as
`identity` (API Gateway hands it to every route of the connection): the client its token
budget is counted for (llambda.budgets).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerRequestEvent,
    APIGatewayAuthorizerResponseWebSocket,
    parse_api_gateway_arn,
)
from aws_lambda_powertools.utilities.parameters import SecretsProvider

from llambda.budgets import IDENTITY_KEY, identity_of
from llambda.cost_meter import metered
from llambda.handlers import aws
from llambda.observability import count_error, logger
from llambda.settings import AuthorizerSettings

PRINCIPAL = "websocket-client"


@dataclass(frozen=True)
class AuthorizerDeps:
    """What the authorizer uses, built once per instance (`DEPS`) or by a test."""

    settings: AuthorizerSettings
    secrets: SecretsProvider  # caches the token for a while (aws.SECRET_MAX_AGE_SECONDS)

    @classmethod
    def from_environment(cls) -> AuthorizerDeps:
        return cls(settings=AuthorizerSettings.from_env(), secrets=aws.secrets())

    def expected_token(self) -> str:
        arn = self.settings.token_secret_arn
        if not arn:
            raise RuntimeError("TOKEN_SECRET_ARN is not set")
        return aws.read_secret(self.secrets, arn, json_key="token")


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


def policy(allowed: bool, method_arn: str, token: str | None = None) -> dict[str, Any]:
    """Allow or deny invoking just the route asked for (`$connect`); an allowed token's
    hash goes with it."""
    context = {IDENTITY_KEY: identity_of(token)} if allowed and token else None
    answer = APIGatewayAuthorizerResponseWebSocket.from_route_arn(
        method_arn, PRINCIPAL, context=context
    )
    route = parse_api_gateway_arn(method_arn, is_websocket_authorizer=True).resource
    if allowed:
        answer.allow_route(route)
    else:
        answer.deny_route(route)
    return answer.asdict()


def authorize(event: APIGatewayAuthorizerRequestEvent, deps: AuthorizerDeps) -> dict[str, Any]:
    # Powertools' `query_string_parameters` raises when API Gateway leaves the key out,
    # as it does for a handshake with no query string.
    token = (event.get("queryStringParameters") or {}).get("token")
    allowed, reason = decide(
        token, require_token=deps.settings.require_token, expected=deps.expected_token
    )
    extra = {"reason": reason, "source_ip": event.request_context.identity.source_ip}
    if allowed:
        logger.info("connection allowed", extra=extra)
    else:
        logger.warning("connection denied", extra=extra)
        count_error("unauthorized")
    return policy(allowed, event.method_arn, token)


DEPS = aws.PerInstance(AuthorizerDeps.from_environment)


@logger.inject_lambda_context(clear_state=True)
@metered
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return authorize(APIGatewayAuthorizerRequestEvent(event), DEPS.get())

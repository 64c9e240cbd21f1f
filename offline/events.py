"""API Gateway WebSocket events, shaped as API Gateway gives them to a Lambda proxy
integration and to a REQUEST authorizer on `$connect`.

The handlers read these events in Lambda and in `offline/` alike, so the shapes follow
the documented ones field by field: `requestContext` (routeKey, eventType, connectionId,
domainName, stage, requestId, ...), headers and query string on `$connect`, `body` and
`isBase64Encoded` on messages, `disconnectStatusCode`/`disconnectReason` on `$disconnect`.
"""

from __future__ import annotations

import base64
import fnmatch
import secrets
import string
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

_ID_ALPHABET = string.ascii_letters + string.digits


def new_id() -> str:
    """An id shaped like API Gateway's connection and request ids: 15 characters and "=".

    Only letters and digits before the "=": the id travels in the `@connections/{id}` path.
    """
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(15)) + "="


def now_ms() -> int:
    return int(time.time() * 1000)


def request_time(epoch_ms: int) -> str:
    """API Gateway's `requestTime` format, e.g. `09/Feb/2024:18:11:43 +0000`."""
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")


@dataclass(frozen=True, kw_only=True)
class Api:
    """What every event says about the API itself."""

    api_id: str
    stage: str  # the stage as it appears in the URL, e.g. "dev"
    region: str
    account_id: str

    def method_arn(self, route_key: str) -> str:
        return (
            f"arn:aws:execute-api:{self.region}:{self.account_id}:{self.api_id}"
            f"/{self.stage}/{route_key}"
        )


@dataclass(kw_only=True)
class ConnectionInfo:
    """What API Gateway knows about one connection from its handshake."""

    connection_id: str
    connected_at_ms: int
    domain_name: str
    source_ip: str
    user_agent: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    query: list[tuple[str, str]] = field(default_factory=list)
    authorizer: dict[str, Any] | None = None


def _request_context(
    api: Api,
    conn: ConnectionInfo,
    *,
    route_key: str,
    event_type: str,
    request_id: str,
    request_ms: int,
) -> dict[str, Any]:
    context: dict[str, Any] = {
        "routeKey": route_key,
        "eventType": event_type,
        "extendedRequestId": request_id,
        "requestTime": request_time(request_ms),
        "messageDirection": "IN",
        "stage": api.stage,
        "connectedAt": conn.connected_at_ms,
        "requestTimeEpoch": request_ms,
        "identity": {"userAgent": conn.user_agent, "sourceIp": conn.source_ip},
        "requestId": request_id,
        "domainName": conn.domain_name,
        "connectionId": conn.connection_id,
        "apiId": api.api_id,
    }
    if conn.authorizer is not None:
        context["authorizer"] = dict(conn.authorizer)
    return context


def _single_and_multi(pairs: list[tuple[str, str]]) -> tuple[dict[str, str], dict[str, list]]:
    """API Gateway's two views of repeated keys: the last value, and every value."""
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for key, value in pairs:
        single[key] = value
        multi.setdefault(key, []).append(value)
    return single, multi


def _with_headers_and_query(event: dict[str, Any], conn: ConnectionInfo) -> dict[str, Any]:
    headers, multi_headers = _single_and_multi(conn.headers)
    event["headers"] = headers
    event["multiValueHeaders"] = multi_headers
    if conn.query:  # API Gateway leaves both keys out when there is no query string
        query, multi_query = _single_and_multi(conn.query)
        event["queryStringParameters"] = query
        event["multiValueQueryStringParameters"] = multi_query
    return event


def authorizer_event(api: Api, conn: ConnectionInfo, *, request_id: str) -> dict[str, Any]:
    """The REQUEST authorizer's input on `$connect`."""
    event: dict[str, Any] = {"type": "REQUEST", "methodArn": api.method_arn("$connect")}
    _with_headers_and_query(event, conn)
    event["stageVariables"] = {}
    event["requestContext"] = _request_context(
        api,
        conn,
        route_key="$connect",
        event_type="CONNECT",
        request_id=request_id,
        request_ms=conn.connected_at_ms,
    )
    event["requestContext"].pop("authorizer", None)
    return event


def connect_event(api: Api, conn: ConnectionInfo, *, request_id: str) -> dict[str, Any]:
    event: dict[str, Any] = {}
    _with_headers_and_query(event, conn)
    event["requestContext"] = _request_context(
        api,
        conn,
        route_key="$connect",
        event_type="CONNECT",
        request_id=request_id,
        request_ms=conn.connected_at_ms,
    )
    event["isBase64Encoded"] = False
    return event


def message_event(
    api: Api,
    conn: ConnectionInfo,
    *,
    route_key: str,
    data: str | bytes,
    request_id: str,
    message_id: str,
) -> dict[str, Any]:
    """A MESSAGE event: text frames as they are, binary frames base64-encoded."""
    context = _request_context(
        api,
        conn,
        route_key=route_key,
        event_type="MESSAGE",
        request_id=request_id,
        request_ms=now_ms(),
    )
    context["messageId"] = message_id
    if isinstance(data, bytes):
        return {
            "requestContext": context,
            "body": base64.b64encode(data).decode(),
            "isBase64Encoded": True,
        }
    return {"requestContext": context, "body": data, "isBase64Encoded": False}


def disconnect_event(
    api: Api,
    conn: ConnectionInfo,
    *,
    request_id: str,
    status_code: int,
    reason: str,
) -> dict[str, Any]:
    host = dict(conn.headers).get("Host", conn.domain_name)
    event: dict[str, Any] = {
        "headers": {"Host": host, "x-api-key": "", "X-Forwarded-For": "", "x-restapi": ""},
        "multiValueHeaders": {
            "Host": [host],
            "x-api-key": [""],
            "X-Forwarded-For": [""],
            "x-restapi": [""],
        },
    }
    context = _request_context(
        api,
        conn,
        route_key="$disconnect",
        event_type="DISCONNECT",
        request_id=request_id,
        request_ms=now_ms(),
    )
    context["disconnectStatusCode"] = status_code
    context["disconnectReason"] = reason
    event["requestContext"] = context
    event["isBase64Encoded"] = False
    return event


def policy_allows(policy: Mapping[str, Any] | None, method_arn: str) -> bool:
    """Whether an authorizer's IAM policy allows `execute-api:Invoke` on `method_arn`.

    An explicit Deny wins over any Allow, as in IAM.
    """
    if not isinstance(policy, Mapping):
        return False
    document = policy.get("policyDocument")
    if not isinstance(document, Mapping):
        return False
    statements = document.get("Statement", [])
    if isinstance(statements, Mapping):
        statements = [statements]
    allowed = False
    for statement in statements if isinstance(statements, list) else []:
        if not isinstance(statement, Mapping) or not _matches(statement, method_arn):
            continue
        if statement.get("Effect") == "Deny":
            return False
        if statement.get("Effect") == "Allow":
            allowed = True
    return allowed


def _matches(statement: Mapping[str, Any], method_arn: str) -> bool:
    actions = statement.get("Action", [])
    actions = [actions] if isinstance(actions, str) else actions
    if not any(a in ("execute-api:Invoke", "execute-api:*", "*") for a in actions):
        return False
    resources = statement.get("Resource", [])
    resources = [resources] if isinstance(resources, str) else resources
    return any(_arn_glob(r, method_arn) for r in resources if isinstance(r, str))


def _arn_glob(pattern: str, arn: str) -> bool:
    return fnmatch.fnmatchcase(arn, pattern.replace("?", "[?]"))

"""The router: $connect, $disconnect and $default of the WebSocket API.

It answers within milliseconds (API Gateway gives an integration 29 s): it validates,
updates the connection table, answers ping/stop/reset and every error itself, and hands a
chat to the inference function asynchronously (ack-and-dispatch). It imports no engine.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llambda import protocol
from llambda.connections import Busy, ConnectionStore
from llambda.handlers import aws
from llambda.observability import count_error, logger
from llambda.sender import ConnectionGone, connection_poster
from llambda.settings import Settings

OK = {"statusCode": 200}
FORBIDDEN = {"statusCode": 403}

Send = Callable[[dict[str, Any]], None]
Invoke = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class RouterDeps:
    settings: Settings
    store: ConnectionStore
    invoke: Invoke  # asynchronous invocation of the inference alias
    new_id: Callable[[], str] = lambda: uuid.uuid4().hex


def header(event: dict[str, Any], name: str) -> str:
    headers = event.get("headers") or {}
    return next((str(v) for k, v in headers.items() if k.lower() == name.lower()), "")


def on_connect(event: dict[str, Any], deps: RouterDeps) -> dict[str, Any]:
    ctx = event.get("requestContext") or {}
    origin = header(event, "origin")
    allowed = deps.settings.allowed_origins
    # The allow-list keeps other web pages from using a visitor's browser; a client with no
    # Origin is not a browser (and could send any Origin it liked), so the token, not this
    # check, is what guards it.
    if allowed and origin and origin not in allowed:
        logger.warning("refused: origin not allowed", extra={"origin": origin[:200]})
        count_error("forbidden_origin")
        return FORBIDDEN
    deps.store.put(
        ctx["connectionId"],
        source_ip=str((ctx.get("identity") or {}).get("sourceIp", "")),
        origin=origin,
        ttl_seconds=deps.settings.connection_ttl_seconds,
    )
    logger.info("connected")
    return OK


def on_disconnect(event: dict[str, Any], deps: RouterDeps) -> dict[str, Any]:
    deps.store.delete(event["requestContext"]["connectionId"])
    logger.info("disconnected")
    return OK


def on_message(event: dict[str, Any], deps: RouterDeps, send: Send) -> None:
    """Handle one $default frame; every outcome the client should know is `send`-ed."""
    ctx = event.get("requestContext") or {}
    connection_id = ctx["connectionId"]
    try:
        message = protocol.parse_client_message(
            event.get("body"),
            is_base64=bool(event.get("isBase64Encoded")),
            limits=deps.settings.limits,
        )
    except protocol.ProtocolError as refused:
        logger.info("refused message", extra={"code": refused.code})
        count_error(refused.code)
        send(protocol.error(refused.code, refused.message))
        return
    logger.info("message", extra={"action": message.action})
    if isinstance(message, protocol.Ping):
        send(protocol.pong())
    elif isinstance(message, protocol.Stop):
        # The running reply ends with `done` reason `stopped`; with none running, no-op.
        deps.store.request_stop(connection_id)
    elif isinstance(message, protocol.Reset):
        send(protocol.reset_done(stopped=deps.store.reset(connection_id)))
    else:
        dispatch_chat(message, ctx, deps, send)


def dispatch_chat(
    chat: protocol.Chat, ctx: dict[str, Any], deps: RouterDeps, send: Send
) -> str | None:
    """Rate-limit, take the lease and invoke the inference alias; the reply id or None."""
    connection_id = ctx["connectionId"]
    settings = deps.settings
    if not deps.store.count_message(connection_id, settings.messages_per_minute):
        count_error(protocol.RATE_LIMITED)
        send(
            protocol.error(
                protocol.RATE_LIMITED,
                f"Too many messages: at most {settings.messages_per_minute} chats a minute.",
            )
        )
        return None
    reply_id = deps.new_id()
    try:
        deps.store.acquire_lease(
            connection_id,
            reply_id,
            settings.lease_seconds,
            ttl_seconds=settings.connection_ttl_seconds,
        )
    except Busy:
        count_error(protocol.BUSY)
        send(protocol.error(protocol.BUSY, "A reply is still running; wait for it or stop it."))
        return None
    event = {
        "connectionId": connection_id,
        "replyId": reply_id,
        "requestId": ctx.get("requestId", ""),
        "callbackUrl": aws.callback_url(ctx.get("domainName", ""), ctx.get("stage", "")),
        "prompt": chat.prompt,
        "options": chat.options.to_json(),
        "dispatchedAt": int(time.time() * 1000),
    }
    try:
        deps.invoke(event)
    except Exception:
        logger.exception("dispatch failed")
        deps.store.release_lease(connection_id, reply_id)
        count_error(protocol.UNAVAILABLE)
        send(protocol.error(protocol.UNAVAILABLE, "The model is unavailable; try again shortly."))
        return None
    logger.info("dispatched", extra={"reply_id": reply_id, "prompt_chars": len(chat.prompt)})
    return reply_id


def client_sender(event: dict[str, Any], store: ConnectionStore) -> Send:
    """Post messages back to this event's connection; a gone client's record is deleted."""
    ctx = event.get("requestContext") or {}
    connection_id = ctx.get("connectionId", "")
    url = aws.callback_url(ctx.get("domainName", ""), ctx.get("stage", ""))
    post = connection_poster(aws.management_api(url), connection_id)

    def send(message: dict[str, Any]) -> None:
        try:
            post(protocol.encode(message))
        except ConnectionGone:
            logger.info("client gone before the answer")
            store.delete(connection_id)
        except Exception:
            logger.exception("could not answer the client", extra={"type": message["type"]})

    return send


def lambda_invoker(function_name: str) -> Invoke:
    def invoke(event: dict[str, Any]) -> None:
        aws.lambda_client().invoke(
            FunctionName=function_name,
            InvocationType="Event",
            Payload=json.dumps(event).encode(),
        )

    return invoke


def route(event: dict[str, Any], deps: RouterDeps, send: Send | None = None) -> dict[str, Any]:
    """Dispatch on the route; $default always answers 200 so API Gateway adds nothing."""
    ctx = event.get("requestContext") or {}
    route_key = ctx.get("routeKey", "$default")
    if route_key == "$connect":
        return on_connect(event, deps)
    if route_key == "$disconnect":
        try:
            return on_disconnect(event, deps)
        except Exception:
            logger.exception("disconnect cleanup failed")  # the TTL removes it later
            return OK
    send = send or client_sender(event, deps.store)
    try:
        on_message(event, deps, send)
    except Exception:
        logger.exception("message handling failed")
        count_error(protocol.UNAVAILABLE)
        send(protocol.error(protocol.UNAVAILABLE, "Something went wrong; try again."))
    return OK


def default_deps() -> RouterDeps:
    settings = aws.settings()
    return RouterDeps(
        settings=settings,
        store=ConnectionStore(aws.dynamodb(), settings.table_name),
        invoke=lambda_invoker(settings.inference_function),
    )


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    ctx = event.get("requestContext") or {}
    logger.append_keys(
        connection_id=ctx.get("connectionId"),
        route=ctx.get("routeKey"),
        api_request_id=ctx.get("requestId"),
    )
    return route(event, default_deps())

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

from aws_lambda_powertools.utilities.data_classes import APIGatewayWebSocketEvent

from llambda import protocol
from llambda.connections import Busy, ConnectionStore, RateLimited
from llambda.dispatch import Dispatch
from llambda.handlers import aws
from llambda.observability import count_error, logger
from llambda.sender import ConnectionGone
from llambda.settings import RouterSettings

OK = {"statusCode": 200}
FORBIDDEN = {"statusCode": 403}

Send = Callable[[dict[str, Any]], None]
Invoke = Callable[[Dispatch], None]


@dataclass(frozen=True)
class RouterDeps:
    """What the router uses, built once per instance (`DEPS`) or by a test."""

    settings: RouterSettings
    store: ConnectionStore
    invoke: Invoke  # asynchronous invocation of the inference alias
    connections: aws.ManagementApis
    new_id: Callable[[], str] = lambda: uuid.uuid4().hex

    @classmethod
    def from_environment(cls) -> RouterDeps:
        settings = RouterSettings.from_env()
        return cls(
            settings=settings,
            store=ConnectionStore(aws.dynamodb(), settings.table_name),
            invoke=lambda_invoker(aws.lambda_client(), settings.inference_function),
            connections=aws.ManagementApis(),
        )


def on_connect(event: APIGatewayWebSocketEvent, deps: RouterDeps) -> dict[str, Any]:
    ctx = event.request_context
    origin = event.headers.get("origin") or ""
    allowed = deps.settings.allowed_origins
    # The allow-list keeps other web pages from using a visitor's browser; a client with no
    # Origin is not a browser (and could send any Origin it liked), so the token, not this
    # check, is what guards it.
    if allowed and origin and origin not in allowed:
        logger.warning("refused: origin not allowed", extra={"origin": origin[:200]})
        count_error("forbidden_origin")
        return FORBIDDEN
    deps.store.put(
        ctx.connection_id,
        source_ip=ctx.identity.source_ip,
        origin=origin,
        ttl_seconds=deps.settings.connection_ttl_seconds,
    )
    logger.info("connected")
    return OK


def on_disconnect(event: APIGatewayWebSocketEvent, deps: RouterDeps) -> dict[str, Any]:
    deps.store.delete(event.request_context.connection_id)
    logger.info("disconnected")
    return OK


def on_message(event: APIGatewayWebSocketEvent, deps: RouterDeps, send: Send) -> None:
    """Handle one $default frame; every outcome the client should know is `send`-ed."""
    connection_id = event.request_context.connection_id
    try:
        message = protocol.parse_client_message(
            event.body,
            is_base64=event.is_base64_encoded,
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
        dispatch_chat(message, event, deps, send)


def dispatch_chat(
    chat: protocol.Chat, event: APIGatewayWebSocketEvent, deps: RouterDeps, send: Send
) -> str | None:
    """Rate-limit and take the lease (one write), then invoke the inference alias; the
    reply id or None."""
    ctx = event.request_context
    connection_id = ctx.connection_id
    settings = deps.settings
    reply_id = deps.new_id()
    try:
        history = deps.store.admit_chat(
            connection_id,
            reply_id,
            per_minute=settings.messages_per_minute,
            lease_seconds=settings.lease_seconds,
            ttl_seconds=settings.connection_ttl_seconds,
        )
    except RateLimited:
        count_error(protocol.RATE_LIMITED)
        send(
            protocol.error(
                protocol.RATE_LIMITED,
                f"Too many messages: at most {settings.messages_per_minute} chats a minute.",
            )
        )
        return None
    except Busy:
        count_error(protocol.BUSY)
        send(protocol.error(protocol.BUSY, "A reply is still running; wait for it or stop it."))
        return None
    dispatch = Dispatch(
        connection_id=connection_id,
        reply_id=reply_id,
        request_id=ctx.request_id,
        callback_url=_callback_url(event),
        prompt=chat.prompt,
        options=chat.options,
        dispatched_at_ms=int(time.time() * 1000),
        history=tuple(history.turns),
        epoch=history.epoch,
    )
    try:
        deps.invoke(dispatch)
    except Exception:
        logger.exception("dispatch failed")
        deps.store.release_lease(connection_id, reply_id)
        count_error(protocol.UNAVAILABLE)
        send(protocol.error(protocol.UNAVAILABLE, "The model is unavailable; try again shortly."))
        return None
    logger.info("dispatched", extra={"reply_id": reply_id, "prompt_chars": len(chat.prompt)})
    return reply_id


def _callback_url(event: APIGatewayWebSocketEvent) -> str:
    ctx = event.request_context
    return aws.callback_url(ctx.domain_name, ctx.stage)


def client_sender(event: APIGatewayWebSocketEvent, deps: RouterDeps) -> Send:
    """Post messages back to this event's connection; a gone client's record is deleted."""
    connection_id = event.request_context.connection_id
    post = deps.connections.poster(_callback_url(event), connection_id)

    def send(message: dict[str, Any]) -> None:
        try:
            post(protocol.encode(message))
        except ConnectionGone:
            logger.info("client gone before the answer")
            deps.store.delete(connection_id)
        except Exception:
            logger.exception("could not answer the client", extra={"type": message["type"]})

    return send


def lambda_invoker(client: Any, function_name: str) -> Invoke:
    def invoke(dispatch: Dispatch) -> None:
        client.invoke(
            FunctionName=function_name,
            InvocationType="Event",
            Payload=json.dumps(dispatch.to_event()).encode(),
        )

    return invoke


def route(event: dict[str, Any], deps: RouterDeps, send: Send | None = None) -> dict[str, Any]:
    """Dispatch on the route; $default always answers 200 so API Gateway adds nothing."""
    ws_event = APIGatewayWebSocketEvent(event)
    route_key = ws_event.request_context.route_key
    if route_key == "$connect":
        return on_connect(ws_event, deps)
    if route_key == "$disconnect":
        try:
            return on_disconnect(ws_event, deps)
        except Exception:
            logger.exception("disconnect cleanup failed")  # the TTL removes it later
            return OK
    send = send or client_sender(ws_event, deps)
    try:
        on_message(ws_event, deps, send)
    except Exception:
        logger.exception("message handling failed")
        count_error(protocol.UNAVAILABLE)
        send(protocol.error(protocol.UNAVAILABLE, "Something went wrong; try again."))
    return OK


DEPS = aws.PerInstance(RouterDeps.from_environment)


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    ctx = APIGatewayWebSocketEvent(event).request_context
    logger.append_keys(
        connection_id=ctx.connection_id, route=ctx.route_key, api_request_id=ctx.request_id
    )
    return route(event, DEPS.get())

"""The router: $connect, $disconnect and $default of the WebSocket API.

It answers within milliseconds (API Gateway gives an integration 29 s): it validates,
updates the table, answers every action but `chat` and every error itself, and hands a
chat to the inference function asynchronously (ack-and-dispatch). It imports no engine.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.data_classes import APIGatewayWebSocketEvent

from llambda import budgets, contract, protocol
from llambda.budgets import BudgetExhausted, BudgetStore, Reservation
from llambda.contract import ErrorCode
from llambda.conversations import (
    Admitted,
    Busy,
    ConversationStore,
    NotAttached,
    NotFound,
    RateLimited,
)
from llambda.cost_meter import METER, metered
from llambda.dispatch import Dispatch
from llambda.generation_switch import GenerationSwitch
from llambda.handlers import aws
from llambda.observability import count_error, log_safe, logger
from llambda.sender import ConnectionGone
from llambda.settings import RouterSettings

OK = {"statusCode": 200}
FORBIDDEN = {"statusCode": 403}

Send = Callable[[dict[str, Any]], None]
Invoke = Callable[[Dispatch], None]

# 24 random bytes: a 32-character URL-safe conversation id holding 192 bits (a capability,
# docs/protocol.md).
CONVERSATION_ID_BYTES = 24


def new_conversation_id() -> str:
    return secrets.token_urlsafe(CONVERSATION_ID_BYTES)


@dataclass(frozen=True)
class RouterDeps:
    """What the router uses, built once per instance (`DEPS`) or by a test."""

    settings: RouterSettings
    conversations: ConversationStore
    invoke: Invoke  # asynchronous invocation of the inference alias
    connections: aws.ManagementApis
    budgets: BudgetStore | None = None  # None: no budgets counted (a test's choice)
    switch: GenerationSwitch | None = None  # the kill switch; None: always on
    new_id: Callable[[], str] = lambda: uuid.uuid4().hex
    new_conversation_id: Callable[[], str] = new_conversation_id

    @classmethod
    def from_environment(cls) -> RouterDeps:
        settings = RouterSettings.from_env()
        dynamodb = aws.dynamodb()
        return cls(
            settings=settings,
            conversations=ConversationStore(dynamodb, settings.table_name),
            invoke=lambda_invoker(aws.lambda_client(), settings.inference_function),
            connections=aws.ManagementApis(),
            budgets=BudgetStore(dynamodb, settings.table_name),
            switch=GenerationSwitch(aws.ssm(), settings.generation_parameter),
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
        count_error(contract.ERRORS_CODE_FORBIDDEN_ORIGIN)
        return FORBIDDEN
    # Nothing is stored per connection: API Gateway knows its connections, and where a
    # conversation's replies go is on the conversation's item.
    logger.info("connected", extra={"origin": origin[:200], "source_ip": ctx.identity.source_ip})
    return OK


def on_message(event: APIGatewayWebSocketEvent, deps: RouterDeps, send: Send) -> None:
    """Handle one $default frame; every outcome the client should know is `send`-ed."""
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
    elif isinstance(message, protocol.Chat):
        dispatch_chat(message, event, deps, send)
    else:
        logger.append_keys(conversation=log_safe(message.conversation))
        try:
            on_conversation_message(message, event, deps, send)
        except (NotFound, NotAttached) as refused:
            refuse(refused, deps.settings, send)


def on_conversation_message(
    message: protocol.Attach
    | protocol.FetchHistory
    | protocol.Forget
    | protocol.Stop
    | protocol.Reset,
    event: APIGatewayWebSocketEvent,
    deps: RouterDeps,
    send: Send,
) -> None:
    """attach, history, forget, stop and reset; `NotFound`/`NotAttached` propagate."""
    connection_id = event.request_context.connection_id
    conversations, conversation = deps.conversations, message.conversation
    if isinstance(message, protocol.Attach):
        found = conversations.attach(
            conversation,
            connection_id,
            seen_seq=message.seq,
            ttl_seconds=deps.settings.conversation_ttl_seconds,
        )
        if found.running_prompt is None:
            send(
                protocol.attached(
                    conversation, found.turns, running_prompt=None, interrupted=found.interrupted
                )
            )
        # Else the running reply answers, then sends what the client lacks: from one
        # sender, the answer cannot be overtaken by the deltas it announces.
        if found.previous_connection is not None:
            tell_detached(found.previous_connection, conversation, event, deps)
    elif isinstance(message, protocol.FetchHistory):
        send(protocol.history(conversation, conversations.history(conversation)))
    elif isinstance(message, protocol.Forget):
        conversations.forget(conversation)
        send(protocol.forgotten(conversation))
    elif isinstance(message, protocol.Stop):
        # The running reply ends with `done` reason `stopped`; with none running, no-op.
        conversations.request_stop(conversation, connection_id)
    else:
        send(protocol.reset_done(stopped=conversations.reset(conversation, connection_id)))


def tell_detached(
    connection_id: str, conversation: str, event: APIGatewayWebSocketEvent, deps: RouterDeps
) -> None:
    """The newest attach won: the connection that had the conversation is told (if it is
    still there)."""
    try:
        deps.connections.poster(_callback_url(event), connection_id)(
            protocol.encode(protocol.detached(conversation))
        )
    except ConnectionGone:
        pass  # it is the connection that dropped: the usual case of a resume
    except Exception:
        logger.exception("could not tell the previous connection")


def client_identity(event: APIGatewayWebSocketEvent) -> str:
    """Who a chat's client budget is counted for: the hash of its connection's token (the
    authorizer's context), else the hash of its source IP. An OpenAI-compatible endpoint
    would pass `budgets.identity_of(api_key)` for each API key."""
    context = event.request_context.get("authorizer") or {}
    identity = context.get(budgets.IDENTITY_KEY) if isinstance(context, dict) else None
    if isinstance(identity, str) and identity:
        return identity
    return budgets.identity_of("ip:" + (event.request_context.identity.source_ip or ""))


def reserve_budget(
    chat: protocol.Chat, conversation: str, event: APIGatewayWebSocketEvent, deps: RouterDeps
) -> Reservation | None:
    """Reserve the chat's `max_tokens` on its budgets; None where none are counted.
    Raises `BudgetExhausted`."""
    if deps.budgets is None:
        return None
    counters = deps.budgets.counters(
        deps.settings.budgets,
        conversation_id=conversation,
        identity=client_identity(event),
        ttl_seconds=deps.settings.conversation_ttl_seconds,
    )
    if not counters:
        return None
    return deps.budgets.reserve(counters, chat.options.max_tokens)


def give_back(reservation: Reservation | None, deps: RouterDeps) -> None:
    """The chat will not run: its whole reservation goes back."""
    if reservation is not None and deps.budgets is not None:
        try:
            deps.budgets.release(reservation)
        except Exception:  # counted against the budget until the day ends: the safe side
            logger.exception("budget release failed")


def dispatch_chat(
    chat: protocol.Chat, event: APIGatewayWebSocketEvent, deps: RouterDeps, send: Send
) -> str | None:
    """Reserve the reply's tokens on its budgets, rate-limit and take the conversation's
    lease (one write; a new conversation is created by it), then invoke the inference
    alias; the reply id or None."""
    ctx = event.request_context
    connection_id = ctx.connection_id
    settings = deps.settings
    reply_id = deps.new_id()
    new = chat.conversation is None
    conversation = deps.new_conversation_id() if chat.conversation is None else chat.conversation
    logger.append_keys(conversation=log_safe(conversation))
    if deps.switch is not None and not deps.switch.is_on():
        logger.info("refused: generation is off")
        count_error(ErrorCode.GENERATION_OFF)
        send(
            protocol.error(
                ErrorCode.GENERATION_OFF,
                "Replies are turned off on this site for now; try again later.",
            )
        )
        return None
    try:
        reservation = reserve_budget(chat, conversation, event, deps)
    except BudgetExhausted as exhausted:
        logger.info("refused: budget used up", extra={"scope": exhausted.counter.scope.value})
        count_error(ErrorCode.BUDGET_EXHAUSTED)
        send(budgets.refusal(exhausted))
        return None
    if reservation is not None and reservation.allowed < chat.options.max_tokens:
        # Less room than asked for: the reply stops where the budget does.
        chat = dataclasses.replace(
            chat, options=dataclasses.replace(chat.options, max_tokens=reservation.allowed)
        )
    try:
        if new:
            admitted = deps.conversations.start(
                conversation,
                connection_id,
                reply_id,
                prompt=chat.prompt,
                lease_seconds=settings.lease_seconds,
                ttl_seconds=settings.conversation_ttl_seconds,
            )
            send(protocol.conversation_started(conversation))
        else:
            admitted = deps.conversations.admit_chat(
                conversation,
                connection_id,
                reply_id,
                per_minute=settings.messages_per_minute,
                prompt=chat.prompt,
                lease_seconds=settings.lease_seconds,
                ttl_seconds=settings.conversation_ttl_seconds,
            )
    except (NotFound, NotAttached, RateLimited, Busy) as refused:
        give_back(reservation, deps)
        refuse(refused, settings, send)
        return None
    return _invoke(chat, conversation, reply_id, admitted, reservation, event, deps, send)


def refuse(
    refused: NotFound | NotAttached | RateLimited | Busy, settings: RouterSettings, send: Send
) -> None:
    """Tell the client why the conversation store refused its message, and count it."""
    if isinstance(refused, NotFound):
        code = ErrorCode.NOT_FOUND
        text = "No such conversation: it expired or was forgotten. Start a new one."
    elif isinstance(refused, NotAttached):
        code = ErrorCode.NOT_ATTACHED
        text = "This conversation is open on another connection; attach it to continue here."
    elif isinstance(refused, RateLimited):
        code = ErrorCode.RATE_LIMITED
        text = f"Too many messages: at most {settings.messages_per_minute} chats a minute."
    else:
        code, text = ErrorCode.BUSY, "A reply is still running; wait for it or stop it."
    count_error(code)
    send(protocol.error(code, text))


def _invoke(
    chat: protocol.Chat,
    conversation: str,
    reply_id: str,
    admitted: Admitted,
    reservation: Reservation | None,
    event: APIGatewayWebSocketEvent,
    deps: RouterDeps,
    send: Send,
) -> str | None:
    ctx = event.request_context
    dispatch = Dispatch(
        connection_id=ctx.connection_id,
        conversation_id=conversation,
        reply_id=reply_id,
        request_id=ctx.request_id,
        callback_url=_callback_url(event),
        prompt=chat.prompt,
        options=chat.options,
        dispatched_at_ms=int(time.time() * 1000),
        history=tuple(admitted.turns),
        epoch=admitted.epoch,
        attach_count=admitted.attachment.count,
        budget=reservation,
    )
    try:
        deps.invoke(dispatch)
    except Exception:
        logger.exception("dispatch failed")
        deps.conversations.release_lease(conversation, reply_id)
        give_back(reservation, deps)
        count_error(ErrorCode.UNAVAILABLE)
        send(protocol.error(ErrorCode.UNAVAILABLE, "The model is unavailable; try again shortly."))
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
        # A running reply notices by itself (its posts answer 410) and waits for an attach.
        logger.info("disconnected")
        ctx = ws_event.request_context
        connected_at = ctx.get("connectedAt")
        if connected_at is not None:  # every $disconnect API Gateway sends has it
            METER.connection_ended(
                int(connected_at), int(ctx.get("requestTimeEpoch") or time.time() * 1000)
            )
        return OK
    METER.received(len((ws_event.body or "").encode()))
    send = send or client_sender(ws_event, deps)
    try:
        on_message(ws_event, deps, send)
    except Exception:
        logger.exception("message handling failed")
        count_error(ErrorCode.UNAVAILABLE)
        send(protocol.error(ErrorCode.UNAVAILABLE, "Something went wrong; try again."))
    return OK


DEPS = aws.PerInstance(RouterDeps.from_environment)


@logger.inject_lambda_context(clear_state=True)
@metered
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    ctx = APIGatewayWebSocketEvent(event).request_context
    logger.append_keys(
        connection_id=ctx.connection_id, route=ctx.route_key, api_request_id=ctx.request_id
    )
    return route(event, DEPS.get())

"""The inference function's asynchronous on-failure destination.

Lambda calls it with a record when a dispatched chat could not run (throttled until
`EventAgeExceeded`, or `RetriesExhausted`), or when the reply crashed (a timeout or out of
memory: `responseContext.functionError`). The client is told, and the lease released so
the conversation takes a new chat at once. A chat that never ran gives its budget
reservation back; a reply that crashed keeps it counted (it may have generated it all).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from llambda import protocol
from llambda.budgets import BudgetStore
from llambda.contract import ErrorCode
from llambda.conversations import ConversationStore
from llambda.cost_meter import metered
from llambda.dispatch import Dispatch, MalformedDispatch
from llambda.handlers import aws
from llambda.observability import count_error, log_safe, logger
from llambda.sender import ConnectionGone
from llambda.settings import DispatchFailureSettings


@dataclass(frozen=True)
class DispatchFailureDeps:
    """What this function uses, built once per instance (`DEPS`) or by a test."""

    conversations: ConversationStore
    connections: aws.ManagementApis
    budgets: BudgetStore | None = None

    @classmethod
    def from_environment(cls) -> DispatchFailureDeps:
        settings = DispatchFailureSettings.from_env()
        dynamodb = aws.dynamodb()
        return cls(
            conversations=ConversationStore(dynamodb, settings.table_name),
            connections=aws.ManagementApis(),
            budgets=BudgetStore(dynamodb, settings.table_name),
        )


def failure_message(record: dict[str, Any]) -> dict[str, Any]:
    """What to tell the client about a failed dispatch record."""
    condition = (record.get("requestContext") or {}).get("condition", "")
    if (record.get("responseContext") or {}).get("functionError"):
        return protocol.error(
            ErrorCode.ENGINE_ERROR, "The reply failed before it finished; try again."
        )
    if condition == "EventAgeExceeded":
        return protocol.error(
            ErrorCode.UNAVAILABLE, "The server was too busy to answer in time; try again."
        )
    return protocol.error(ErrorCode.UNAVAILABLE, "The server could not answer; try again.")


def notify(record: dict[str, Any], deps: DispatchFailureDeps) -> bool:
    """Tell the client and free its lease; True when the client was told."""
    try:
        dispatch = Dispatch.from_event(record.get("requestPayload"))
    except MalformedDispatch as malformed:
        logger.error("failure record without a dispatch payload", extra={"why": str(malformed)})
        return False
    logger.append_keys(
        connection_id=dispatch.connection_id,
        conversation=log_safe(dispatch.conversation_id),
        reply_id=dispatch.reply_id,
    )
    message = failure_message(record)
    logger.warning(
        "dispatch failed",
        extra={
            "condition": (record.get("requestContext") or {}).get("condition"),
            "code": message["code"],
        },
    )
    count_error(message["code"])
    # A client may have attached from another connection while the reply waited: it is
    # the one to tell, and it is owed the answer to its `attach` first (the reply would
    # have sent it).
    check = deps.conversations.reply_check(dispatch.conversation_id, dispatch.reply_id)
    connection_id, frames = dispatch.connection_id, [message]
    if check.attachment is not None and check.attachment.count != dispatch.attach_count:
        connection_id = check.attachment.connection_id
        frames = [dispatch.attached(reset=check.epoch != dispatch.epoch), message]
    told = False
    try:
        post = deps.connections.poster(dispatch.callback_url, connection_id)
        for frame in frames:
            post(protocol.encode(protocol.in_conversation(frame, dispatch.conversation_id)))
        told = True
    except ConnectionGone:
        logger.info("client gone; it hears of the failure when it attaches again")
    except Exception:
        logger.exception("could not tell the client")
    deps.conversations.release_lease(dispatch.conversation_id, dispatch.reply_id)
    crashed = bool((record.get("responseContext") or {}).get("functionError"))
    if dispatch.budget is not None and deps.budgets is not None and not crashed:
        deps.budgets.release(dispatch.budget)
    return told


def _records(event: dict[str, Any]) -> list[dict[str, Any]]:
    # Delivered directly (Lambda destination) or through a queue (SQS records).
    if "Records" in event:
        out = []
        for item in event["Records"]:
            try:
                out.append(json.loads(item.get("body") or "{}"))
            except ValueError:
                logger.error("unreadable failure record")
        return out
    return [event]


DEPS = aws.PerInstance(DispatchFailureDeps.from_environment)


@logger.inject_lambda_context(clear_state=True)
@metered
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    deps = DEPS.get()
    told = [notify(record, deps) for record in _records(event)]
    return {"notified": sum(told), "records": len(told)}

"""The inference function's asynchronous on-failure destination.

Lambda calls it with a record when a dispatched chat could not run (throttled until
`EventAgeExceeded`, or `RetriesExhausted`), or when the reply crashed (a timeout or out of
memory: `responseContext.functionError`). The client is told, and the lease released so
the connection takes a new chat at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from llambda import protocol
from llambda.connections import ConnectionStore
from llambda.handlers import aws
from llambda.observability import count_error, logger
from llambda.sender import ConnectionGone, connection_poster

Poster = Callable[[str, str], Callable[[bytes], None]]  # (callback url, connection id)


def failure_message(record: dict[str, Any]) -> dict[str, Any]:
    """What to tell the client about a failed dispatch record."""
    condition = (record.get("requestContext") or {}).get("condition", "")
    if (record.get("responseContext") or {}).get("functionError"):
        return protocol.error(
            protocol.ENGINE_ERROR, "The reply failed before it finished; try again."
        )
    if condition == "EventAgeExceeded":
        return protocol.error(
            protocol.UNAVAILABLE, "The server was too busy to answer in time; try again."
        )
    return protocol.error(protocol.UNAVAILABLE, "The server could not answer; try again.")


def notify(record: dict[str, Any], *, store: ConnectionStore, poster: Poster) -> bool:
    """Tell the client and free its lease; True when the client was told."""
    payload = record.get("requestPayload") or {}
    connection_id = payload.get("connectionId")
    reply_id = payload.get("replyId")
    callback_url = payload.get("callbackUrl")
    if not (connection_id and reply_id and callback_url):
        logger.error("failure record without a dispatch payload")
        return False
    logger.append_keys(connection_id=connection_id, reply_id=reply_id)
    message = failure_message(record)
    logger.warning(
        "dispatch failed",
        extra={
            "condition": (record.get("requestContext") or {}).get("condition"),
            "code": message["code"],
        },
    )
    count_error(message["code"])
    told = False
    try:
        poster(callback_url, connection_id)(protocol.encode(message))
        told = True
    except ConnectionGone:
        store.delete(connection_id)
    except Exception:
        logger.exception("could not tell the client")
    store.release_lease(connection_id, reply_id)
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


def _poster(callback_url: str, connection_id: str) -> Callable[[bytes], None]:
    return connection_poster(aws.management_api(callback_url), connection_id)


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    store = ConnectionStore(aws.dynamodb(), aws.settings().table_name)
    told = [notify(record, store=store, poster=_poster) for record in _records(event)]
    return {"notified": sum(told), "records": len(told)}

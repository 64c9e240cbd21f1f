"""The connection store: one DynamoDB item per WebSocket connection (docs/architecture.md).

Everything goes through a low-level boto3 DynamoDB client passed in. Every write that
races another function is conditional, and a missing item never raises: a connection
whose record vanished is treated as idle, empty and (for a running reply) gone.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from botocore.exceptions import ClientError

from llambda.history import drop_oldest_turns

Turn = dict[str, str]  # {"role": "user" | "assistant", "content": "..."}


class Busy(Exception):
    """Another reply holds the connection's lease."""


class ReplyState(Enum):
    RUN = "run"  # carry on
    STOP = "stop"  # the client asked to stop (or reset), or another reply took over
    GONE = "gone"  # the connection's record is gone ($disconnect)


@dataclass(frozen=True)
class History:
    turns: list[Turn]
    epoch: int


def _now_ms() -> int:
    return int(time.time() * 1000)


def _is_conditional_failure(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def trim_history(turns: list[Turn], max_chars: int) -> list[Turn]:
    """Drop the oldest exchanges (user + assistant) until the contents fit in `max_chars`."""
    return drop_oldest_turns(
        turns, lambda kept: sum(len(t.get("content", "")) for t in kept) <= max_chars, keep=0
    )


class ConnectionStore:
    def __init__(
        self, client: Any, table_name: str, *, clock_ms: Callable[[], int] = _now_ms
    ) -> None:
        self._db = client
        self._table = table_name
        self._now_ms = clock_ms

    def _key(self, connection_id: str) -> dict[str, Any]:
        return {"connectionId": {"S": connection_id}}

    def _update(self, connection_id: str, **kwargs: Any) -> dict[str, Any] | None:
        """An UpdateItem; None when its condition failed."""
        try:
            return self._db.update_item(
                TableName=self._table, Key=self._key(connection_id), **kwargs
            )
        except ClientError as error:
            if _is_conditional_failure(error):
                return None
            raise

    # $connect / $disconnect --------------------------------------------------------

    def put(self, connection_id: str, *, source_ip: str, origin: str, ttl_seconds: int) -> None:
        now = self._now_ms()
        self._db.put_item(
            TableName=self._table,
            Item={
                "connectionId": {"S": connection_id},
                "connectedAt": {"N": str(now)},
                "expiresAt": {"N": str(now // 1000 + ttl_seconds)},
                "sourceIp": {"S": source_ip},
                "origin": {"S": origin},
                "history": {"S": "[]"},
                "epoch": {"N": "0"},
            },
        )

    def delete(self, connection_id: str) -> None:
        self._db.delete_item(TableName=self._table, Key=self._key(connection_id))

    def get(self, connection_id: str) -> dict[str, Any] | None:
        """The raw item (consistent read), or None."""
        answer = self._db.get_item(
            TableName=self._table, Key=self._key(connection_id), ConsistentRead=True
        )
        return answer.get("Item")

    # The reply lease -----------------------------------------------------------------

    def acquire_lease(
        self, connection_id: str, reply_id: str, lease_seconds: int, *, ttl_seconds: int
    ) -> None:
        """Take the connection for one reply, or raise `Busy`.

        Succeeds when no reply runs or the running one's lease lapsed (it crashed). A
        missing record is recreated rather than refused: the socket is evidently alive.
        """
        now = self._now_ms()
        updated = self._update(
            connection_id,
            UpdateExpression=(
                "SET replyId = :r, leaseUntil = :until, "
                "expiresAt = if_not_exists(expiresAt, :exp), "
                "connectedAt = if_not_exists(connectedAt, :now) REMOVE stopRequested"
            ),
            ConditionExpression="attribute_not_exists(replyId) OR leaseUntil < :now",
            ExpressionAttributeValues={
                ":r": {"S": reply_id},
                ":until": {"N": str(now + lease_seconds * 1000)},
                ":now": {"N": str(now)},
                ":exp": {"N": str(now // 1000 + ttl_seconds)},
            },
        )
        if updated is None:
            raise Busy(connection_id)

    def renew_lease(self, connection_id: str, reply_id: str, lease_seconds: int) -> bool:
        """Extend the running reply's lease; False if it is no longer this reply's."""
        return (
            self._update(
                connection_id,
                UpdateExpression="SET leaseUntil = :until",
                ConditionExpression="replyId = :r",
                ExpressionAttributeValues={
                    ":r": {"S": reply_id},
                    ":until": {"N": str(self._now_ms() + lease_seconds * 1000)},
                },
            )
            is not None
        )

    def release_lease(self, connection_id: str, reply_id: str) -> bool:
        """Free the connection if `reply_id` still holds it (never someone else's lease)."""
        return (
            self._update(
                connection_id,
                UpdateExpression="REMOVE replyId, leaseUntil, stopRequested",
                ConditionExpression="replyId = :r",
                ExpressionAttributeValues={":r": {"S": reply_id}},
            )
            is not None
        )

    # Stop ------------------------------------------------------------------------------

    def request_stop(self, connection_id: str) -> str | None:
        """Mark the running reply to stop; its id, or None when no reply runs."""
        item = self.get(connection_id)
        reply_id = (item or {}).get("replyId", {}).get("S")
        if reply_id is None:
            return None
        updated = self._update(
            connection_id,
            UpdateExpression="SET stopRequested = :r",
            ConditionExpression="replyId = :r",
            ExpressionAttributeValues={":r": {"S": reply_id}},
        )
        return reply_id if updated is not None else None

    def reply_state(self, connection_id: str, reply_id: str) -> ReplyState:
        """What the running reply should do now (a consistent read of the item)."""
        item = self.get(connection_id)
        if item is None:
            return ReplyState.GONE
        if item.get("replyId", {}).get("S") != reply_id:
            return ReplyState.STOP
        if item.get("stopRequested", {}).get("S") == reply_id:
            return ReplyState.STOP
        return ReplyState.RUN

    def is_stop_requested(self, connection_id: str, reply_id: str) -> bool:
        return self.reply_state(connection_id, reply_id) is not ReplyState.RUN

    # Conversation memory ---------------------------------------------------------------

    def load_history(self, connection_id: str) -> History:
        item = self.get(connection_id) or {}
        try:
            turns = json.loads(item.get("history", {}).get("S", "[]"))
        except ValueError:
            turns = []
        if not isinstance(turns, list):
            turns = []
        turns = [
            t
            for t in turns
            if isinstance(t, dict)
            and t.get("role") in ("user", "assistant")
            and isinstance(t.get("content"), str)
        ]
        return History(turns=turns, epoch=int(item.get("epoch", {}).get("N", "0")))

    def save_history(
        self, connection_id: str, turns: list[Turn], *, epoch: int, max_chars: int
    ) -> bool:
        """Store `turns` (trimmed oldest first) unless a `reset` bumped `epoch` meanwhile."""
        kept = trim_history(turns, max_chars)
        return (
            self._update(
                connection_id,
                UpdateExpression="SET history = :h",
                ConditionExpression=(
                    "attribute_exists(connectionId) AND "
                    "(epoch = :e OR (attribute_not_exists(epoch) AND :e = :zero))"
                ),
                ExpressionAttributeValues={
                    ":h": {"S": json.dumps(kept, ensure_ascii=False)},
                    ":e": {"N": str(epoch)},
                    ":zero": {"N": "0"},
                },
            )
            is not None
        )

    def reset(self, connection_id: str) -> bool:
        """Forget the conversation, bump `epoch`, and mark a running reply to stop.

        The lease stays with the running reply until it has ended (so two replies never
        stream at once). Returns True when a running reply was asked to stop.
        """
        updated = self._update(
            connection_id,
            UpdateExpression="SET history = :empty, epoch = if_not_exists(epoch, :zero) + :one",
            ConditionExpression="attribute_exists(connectionId)",
            ExpressionAttributeValues={
                ":empty": {"S": "[]"},
                ":zero": {"N": "0"},
                ":one": {"N": "1"},
            },
            ReturnValues="ALL_NEW",
        )
        if updated is None:
            return False
        attributes = updated.get("Attributes", {})
        running = (
            "replyId" in attributes
            and int(attributes.get("leaseUntil", {}).get("N", "0")) >= self._now_ms()
        )
        return running and self.request_stop(connection_id) is not None

    # Rate limit --------------------------------------------------------------------------

    def count_message(self, connection_id: str, per_minute: int) -> bool:
        """Count one message in the current one-minute window; False when over the limit."""
        window = str(self._now_ms() // 60_000)
        counted = self._update(
            connection_id,
            UpdateExpression="SET rateCount = rateCount + :one",
            ConditionExpression="rateWindow = :w AND rateCount < :limit",
            ExpressionAttributeValues={
                ":one": {"N": "1"},
                ":w": {"N": window},
                ":limit": {"N": str(per_minute)},
            },
        )
        if counted is not None:
            return True
        # A new window (or the first message): start counting from one.
        started = self._update(
            connection_id,
            UpdateExpression="SET rateWindow = :w, rateCount = :one",
            ConditionExpression=(
                "attribute_exists(connectionId) AND "
                "(attribute_not_exists(rateWindow) OR rateWindow <> :w)"
            ),
            ExpressionAttributeValues={":one": {"N": "1"}, ":w": {"N": window}},
        )
        if started is not None:
            return per_minute >= 1
        # Either over the limit in this window, or no record to count on (allow: the
        # lease that follows recreates the record, and nothing else may break on it).
        return self.get(connection_id) is None

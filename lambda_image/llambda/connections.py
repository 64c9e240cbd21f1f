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

from llambda.history import drop_oldest_turns, valid_turns

Turn = dict[str, str]  # {"role": "user" | "assistant", "content": "..."}


class Busy(Exception):
    """Another reply holds the connection's lease."""


class RateLimited(Exception):
    """The connection sent more chats this minute than the stage allows."""


class ReplyState(Enum):
    RUN = "run"  # carry on
    STOP = "stop"  # the client asked to stop (or reset), or another reply took over
    GONE = "gone"  # the connection's record is gone ($disconnect)


@dataclass(frozen=True)
class History:
    turns: list[Turn]
    epoch: int


# No `reset` since the history was read (an item from before epochs counts as epoch 0).
_SAME_EPOCH = "(epoch = :e OR (attribute_not_exists(epoch) AND :e = :zero))"


def _now_ms() -> int:
    return int(time.time() * 1000)


def _is_conditional_failure(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def _history_of(item: dict[str, Any]) -> History:
    try:
        turns = json.loads(item.get("history", {}).get("S", "[]"))
    except ValueError:
        turns = []
    return History(turns=valid_turns(turns), epoch=int(item.get("epoch", {}).get("N", "0")))


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
                # The rate window opens with the connection, so its first chat is counted
                # and admitted in one write.
                "rateWindow": {"N": str(now // 60_000)},
                "rateCount": {"N": "0"},
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

    def admit_chat(
        self,
        connection_id: str,
        reply_id: str,
        *,
        per_minute: int,
        lease_seconds: int,
        ttl_seconds: int,
    ) -> History:
        """Count a chat against the rate limit and take the connection's lease for its reply,
        in one conditional write (two when a new minute starts); the history as it stood.

        Raises `RateLimited` or `Busy` and changes nothing then. The lease is free when no
        reply runs or the running one's lapsed (it crashed). A missing record is recreated
        rather than refused: the socket is evidently alive.
        """
        if per_minute < 1:
            raise RateLimited(connection_id)
        now = self._now_ms()
        window = now // 60_000
        values = {
            ":r": {"S": reply_id},
            ":until": {"N": str(now + lease_seconds * 1000)},
            ":now": {"N": str(now)},
            ":exp": {"N": str(now // 1000 + ttl_seconds)},
            ":w": {"N": str(window)},
            ":one": {"N": "1"},
        }
        take = (
            "replyId = :r, leaseUntil = :until, expiresAt = if_not_exists(expiresAt, :exp), "
            "connectedAt = if_not_exists(connectedAt, :now)"
        )
        free = "(attribute_not_exists(replyId) OR leaseUntil < :now)"
        attempts = (
            # This minute's window is open: count on.
            (
                f"SET {take}, rateCount = rateCount + :one REMOVE stopRequested",
                f"{free} AND rateWindow = :w AND rateCount < :limit",
                {":limit": {"N": str(per_minute)}},
            ),
            # The first chat of a minute (or of the record): start counting from one.
            (
                f"SET {take}, rateWindow = :w, rateCount = :one REMOVE stopRequested",
                f"{free} AND (attribute_not_exists(rateWindow) OR rateWindow <> :w)",
                {},
            ),
        )
        for update, condition, extra in attempts:
            try:
                answer = self._db.update_item(
                    TableName=self._table,
                    Key=self._key(connection_id),
                    UpdateExpression=update,
                    ConditionExpression=condition,
                    ExpressionAttributeValues={**values, **extra},
                    ReturnValues="ALL_NEW",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except ClientError as error:
                if not _is_conditional_failure(error):
                    raise
                old = error.response.get("Item") or {}
            else:
                return _history_of(answer.get("Attributes") or {})
            if "replyId" in old and int(old.get("leaseUntil", {}).get("N", "0")) >= now:
                raise Busy(connection_id)
            counted = old.get("rateCount", {}).get("N", "0")
            if old.get("rateWindow", {}).get("N") == str(window) and int(counted) >= per_minute:
                raise RateLimited(connection_id)
        # The item changed between the two writes: another chat got in first.
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
        return _history_of(self.get(connection_id) or {})

    def save_history(
        self, connection_id: str, turns: list[Turn], *, epoch: int, max_chars: int
    ) -> bool:
        """Store `turns` (trimmed oldest first) unless a `reset` bumped `epoch` meanwhile."""
        kept = trim_history(turns, max_chars)
        return (
            self._update(
                connection_id,
                UpdateExpression="SET history = :h",
                ConditionExpression=f"attribute_exists(connectionId) AND {_SAME_EPOCH}",
                ExpressionAttributeValues={
                    ":h": {"S": json.dumps(kept, ensure_ascii=False)},
                    ":e": {"N": str(epoch)},
                    ":zero": {"N": "0"},
                },
            )
            is not None
        )

    def finish_reply(
        self,
        connection_id: str,
        reply_id: str,
        turns: list[Turn],
        *,
        epoch: int,
        max_chars: int,
    ) -> bool:
        """Save the finished reply's turns and free the connection in one write; True when
        the turns were saved. After a `reset` (the epoch moved on) the connection is freed
        and nothing saved; a lease that is no longer this reply's is left alone."""
        saved = self._update(
            connection_id,
            UpdateExpression="SET history = :h REMOVE replyId, leaseUntil, stopRequested",
            ConditionExpression=f"replyId = :r AND {_SAME_EPOCH}",
            ExpressionAttributeValues={
                ":h": {"S": json.dumps(trim_history(turns, max_chars), ensure_ascii=False)},
                ":r": {"S": reply_id},
                ":e": {"N": str(epoch)},
                ":zero": {"N": "0"},
            },
        )
        if saved is None:
            self.release_lease(connection_id, reply_id)
            return False
        return True

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

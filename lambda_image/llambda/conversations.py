"""The conversation store: one DynamoDB item per conversation (docs/architecture.md).

The item holds the conversation's memory (its turns, trimmed oldest first), the connection
it is attached to (where its replies stream), the reply lease (one reply at a time), the
stop mark and the rate window. Everything goes through a low-level boto3 DynamoDB client
passed in, with items built and read by boto3's own type (de)serializer
(`llambda.table.attributes` / `plain`); every write that races another function is
conditional.

Why the item can never reach DynamoDB's 400 KB: the turns are trimmed to `max_chars`
characters on every save, the running reply's prompt is at most the stage's prompt cap,
and a character is at most 4 bytes of UTF-8. `infra/config.py` refuses a stage whose
`4 * (historyMaxChars + maxPromptChars)` plus room for the other attributes exceeds it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import Any

from botocore.exceptions import ClientError

from llambda.history import Message, drop_oldest_turns, valid_turns
from llambda.table import (
    PARTITION_KEY,
    TTL_ATTRIBUTE,
    ItemStore,
    attributes,
    is_conditional_failure,
    plain,
)


class NotFound(Exception):
    """No such conversation: never issued, expired, or forgotten."""


class NotAttached(Exception):
    """The conversation is attached to another connection."""


class Busy(Exception):
    """Another reply holds the conversation's lease."""


class RateLimited(Exception):
    """The conversation had more chats this minute than the stage allows."""


class ReplyState(Enum):
    RUN = "run"  # carry on
    STOP = "stop"  # the client asked to stop (or reset), or another reply took over
    GONE = "gone"  # the conversation was forgotten


@dataclass(frozen=True)
class Attachment:
    """Where a conversation's replies go: the connection, the count of attaches so far
    (a new attach, even by the same connection, is a new count), and the last delta the
    attaching client already had."""

    connection_id: str
    count: int
    seen_seq: int = -1


@dataclass(frozen=True)
class Admitted:
    """A chat the store took: the conversation as it stood, and its attachment."""

    turns: list[Message]
    epoch: int
    attachment: Attachment


@dataclass(frozen=True)
class Attached:
    """What `attach` found: the turns, the running reply's prompt, whether the last reply
    was cut short, and the connection that had it before (None when none or the same)."""

    turns: list[Message]
    running_prompt: str | None
    interrupted: bool
    previous_connection: str | None


@dataclass(frozen=True)
class Finished:
    """What `finish_reply` did: whether the turns were saved, and where the conversation
    is attached now (a client may have attached while the reply ran its last tokens)."""

    saved: bool
    attachment: Attachment | None


@dataclass(frozen=True)
class ReplyCheck:
    state: ReplyState
    attachment: Attachment | None
    epoch: int = 0


# No `reset` since the history was read (an item from before epochs counts as epoch 0).
_SAME_EPOCH = "(epoch = :e OR (attribute_not_exists(epoch) AND :e = :zero))"


def trim_history(turns: list[Message], max_chars: int) -> list[Message]:
    """Drop the oldest exchanges (user + assistant) until the contents fit in `max_chars`."""
    return drop_oldest_turns(
        turns, lambda kept: sum(len(t.get("content", "")) for t in kept) <= max_chars, keep=0
    )


# The readers below take an item's values (`plain`), not its attribute values.


def _turns_of(item: dict[str, Any]) -> list[Message]:
    try:
        return valid_turns(json.loads(item.get("history", "[]")))
    except (TypeError, ValueError):
        return []


def _number(item: dict[str, Any], name: str, default: int = 0) -> int:
    return int(item.get(name, default))


def _attachment_of(item: dict[str, Any]) -> Attachment | None:
    connection = item.get("connectionId")
    if connection is None:
        return None
    return Attachment(
        connection_id=connection,
        count=_number(item, "attachCount"),
        seen_seq=_number(item, "seenSeq", -1),
    )


def _running(item: dict[str, Any], now_ms: int) -> bool:
    """A reply holds the item's lease (one that crashed holds it until it lapses)."""
    return "replyId" in item and _number(item, "leaseUntil") >= now_ms


def _require_attached(item: dict[str, Any] | None, connection_id: str) -> dict[str, Any]:
    """The item, if it exists and is attached to `connection_id`; else why not."""
    if not item:
        raise NotFound()
    if item.get("connectionId") != connection_id:
        raise NotAttached()
    return item


def _encode(turns: list[Message]) -> str:
    return json.dumps(turns, ensure_ascii=False)


class ConversationStore(ItemStore):
    PREFIX = "conversation#"

    def _update(self, conversation_id: str, **kwargs: Any) -> dict[str, Any] | None:
        """An UpdateItem; None when its condition failed."""
        try:
            answer: dict[str, Any] = self._db.update_item(
                TableName=self._table, Key=self._key(conversation_id), **kwargs
            )
            return answer
        except ClientError as error:
            if is_conditional_failure(error):
                return None
            raise

    def _expires(self, ttl_seconds: int) -> int:
        """The TTL attribute's value: epoch seconds."""
        return self._now_ms() // 1000 + ttl_seconds

    # A chat ----------------------------------------------------------------------------

    def start(
        self,
        conversation_id: str,
        connection_id: str,
        reply_id: str,
        *,
        prompt: str,
        lease_seconds: int,
        ttl_seconds: int,
    ) -> Admitted:
        """Create the conversation attached to `connection_id`, its first reply admitted
        (and counted). The id is fresh and random, so the condition only guards a clash."""
        now = self._now_ms()
        self._db.put_item(
            TableName=self._table,
            Item={
                **self._key(conversation_id),
                **attributes(
                    {
                        "createdAt": now,
                        TTL_ATTRIBUTE: self._expires(ttl_seconds),
                        "history": "[]",
                        "epoch": 0,
                        "connectionId": connection_id,
                        "attachCount": 0,
                        "replyId": reply_id,
                        "replyPrompt": prompt,
                        "leaseUntil": now + lease_seconds * 1000,
                        "rateWindow": now // 60_000,
                        "rateCount": 1,
                    }
                ),
            },
            ConditionExpression=f"attribute_not_exists({PARTITION_KEY})",
        )
        return Admitted([], 0, Attachment(connection_id, 0))

    def admit_chat(
        self,
        conversation_id: str,
        connection_id: str,
        reply_id: str,
        *,
        prompt: str,
        per_minute: int,
        lease_seconds: int,
        ttl_seconds: int,
    ) -> Admitted:
        """Count a chat against the rate limit and take the lease for its reply, in one
        conditional write (two when a new minute starts); the conversation as it stood.

        Raises `NotFound`, `NotAttached`, `RateLimited` or `Busy`, changing nothing. The
        lease is free when no reply runs or the running one's lapsed (it crashed).
        """
        now = self._now_ms()
        window = now // 60_000
        values = {
            ":r": reply_id,
            ":c": connection_id,
            ":p": prompt,
            ":until": now + lease_seconds * 1000,
            ":now": now,
            ":exp": self._expires(ttl_seconds),
            ":w": window,
            ":one": 1,
        }
        take = f"replyId = :r, replyPrompt = :p, leaseUntil = :until, {TTL_ATTRIBUTE} = :exp"
        clear = "REMOVE stopRequested, interrupted"
        ours = (
            f"attribute_exists({PARTITION_KEY}) AND connectionId = :c "
            "AND (attribute_not_exists(replyId) OR leaseUntil < :now)"
        )
        attempts: tuple[tuple[str, str, dict[str, Any]], ...] = (
            # This minute's window is open: count on.
            (
                f"SET {take}, rateCount = rateCount + :one {clear}",
                f"{ours} AND rateWindow = :w AND rateCount < :limit",
                {":limit": per_minute},
            ),
            # The first chat of a minute: start counting from one.
            (
                f"SET {take}, rateWindow = :w, rateCount = :one {clear}",
                f"{ours} AND rateWindow <> :w",
                {},
            ),
        )
        if per_minute < 1:  # no chats allowed: still say why first if it is not ours
            self._refusal(self.read(conversation_id) or {}, connection_id, now, window, 0)
            raise RateLimited()
        for update, condition, extra in attempts:
            try:
                answer = self._db.update_item(
                    TableName=self._table,
                    Key=self._key(conversation_id),
                    UpdateExpression=update,
                    ConditionExpression=condition,
                    ExpressionAttributeValues=attributes({**values, **extra}),
                    ReturnValues="ALL_NEW",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except ClientError as error:
                if not is_conditional_failure(error):
                    raise
                self._refusal(
                    plain(error.response.get("Item")), connection_id, now, window, per_minute
                )
                continue
            item = plain(answer.get("Attributes"))
            attachment = _attachment_of(item) or Attachment(connection_id, 0)
            return Admitted(_turns_of(item), _number(item, "epoch"), attachment)
        # The item changed between the two writes: another chat got in first.
        raise Busy()

    @staticmethod
    def _refusal(
        old: dict[str, Any], connection_id: str, now: int, window: int, per_minute: int
    ) -> None:
        """Raise why a chat was refused, from the item as it stood; return if it was only
        the wrong rate window."""
        _require_attached(old, connection_id)
        if _running(old, now):
            raise Busy()
        counted = _number(old, "rateCount")
        if _number(old, "rateWindow", -1) == window and counted >= per_minute:
            raise RateLimited()

    # Attaching -------------------------------------------------------------------------

    def attach(
        self, conversation_id: str, connection_id: str, *, seen_seq: int, ttl_seconds: int
    ) -> Attached:
        """Attach the conversation to `connection_id` (the newest attach wins); a running
        reply resumes there after delta `seen_seq`. Raises `NotFound`."""
        answer = self._update(
            conversation_id,
            UpdateExpression=(
                f"SET connectionId = :c, seenSeq = :s, {TTL_ATTRIBUTE} = :exp, "
                "attachCount = if_not_exists(attachCount, :zero) + :one"
            ),
            ConditionExpression=f"attribute_exists({PARTITION_KEY})",
            ExpressionAttributeValues=attributes(
                {
                    ":c": connection_id,
                    ":s": seen_seq,
                    ":exp": self._expires(ttl_seconds),
                    ":zero": 0,
                    ":one": 1,
                }
            ),
            ReturnValues="ALL_OLD",
        )
        if answer is None:
            raise NotFound()
        old = plain(answer.get("Attributes"))
        previous = old.get("connectionId")
        return Attached(
            turns=_turns_of(old),
            running_prompt=old.get("replyPrompt") if _running(old, self._now_ms()) else None,
            interrupted=bool(old.get("interrupted", False)),
            previous_connection=None if previous == connection_id else previous,
        )

    def history(self, conversation_id: str) -> list[Message]:
        """The stored turns. Raises `NotFound`."""
        item = self.read(conversation_id)
        if item is None:
            raise NotFound()
        return _turns_of(item)

    def forget(self, conversation_id: str) -> None:
        """Delete the conversation; a running reply sees it gone and stops. Raises
        `NotFound`."""
        try:
            self._db.delete_item(
                TableName=self._table,
                Key=self._key(conversation_id),
                ConditionExpression=f"attribute_exists({PARTITION_KEY})",
            )
        except ClientError as error:
            if is_conditional_failure(error):
                raise NotFound() from None
            raise

    # Stop and reset ----------------------------------------------------------------------

    def request_stop(self, conversation_id: str, connection_id: str) -> str | None:
        """Mark the running reply to stop; its id, or None when no reply runs. Raises
        `NotFound` or `NotAttached`."""
        item = _require_attached(self.read(conversation_id), connection_id)
        reply_id = item.get("replyId")
        if reply_id is None:
            return None
        updated = self._update(
            conversation_id,
            UpdateExpression="SET stopRequested = :r",
            ConditionExpression="replyId = :r",
            ExpressionAttributeValues=attributes({":r": reply_id}),
        )
        return reply_id if updated is not None else None

    def reset(self, conversation_id: str, connection_id: str) -> bool:
        """Forget the turns, bump `epoch`, and mark a running reply to stop. The lease stays
        with the running reply until it has ended (two replies never stream at once).
        True when a running reply was asked to stop. Raises `NotFound` or `NotAttached`."""
        updated = self._update(
            conversation_id,
            UpdateExpression=(
                "SET history = :empty, epoch = if_not_exists(epoch, :zero) + :one "
                "REMOVE interrupted"
            ),
            ConditionExpression=f"attribute_exists({PARTITION_KEY}) AND connectionId = :c",
            ExpressionAttributeValues=attributes(
                {":empty": "[]", ":zero": 0, ":one": 1, ":c": connection_id}
            ),
            ReturnValues="ALL_NEW",
        )
        if updated is None:
            _require_attached(self.read(conversation_id), connection_id)
            raise NotAttached()  # attached here a moment ago, elsewhere now
        running = _running(plain(updated.get("Attributes")), self._now_ms())
        return running and self.request_stop(conversation_id, connection_id) is not None

    # The running reply (inference and dispatch failure) --------------------------------

    def reply_check(self, conversation_id: str, reply_id: str) -> ReplyCheck:
        """What the running reply should do now, and where it should stream (a consistent
        read of the item)."""
        item = self.read(conversation_id)
        if item is None:
            return ReplyCheck(ReplyState.GONE, None)
        attachment, epoch = _attachment_of(item), _number(item, "epoch")
        if item.get("replyId") != reply_id:
            return ReplyCheck(ReplyState.STOP, attachment, epoch)
        if item.get("stopRequested") == reply_id:
            return ReplyCheck(ReplyState.STOP, attachment, epoch)
        return ReplyCheck(ReplyState.RUN, attachment, epoch)

    def renew_lease(self, conversation_id: str, reply_id: str, lease_seconds: int) -> bool:
        """Extend the running reply's lease; False if it is no longer this reply's."""
        return (
            self._update(
                conversation_id,
                UpdateExpression="SET leaseUntil = :until",
                ConditionExpression="replyId = :r",
                ExpressionAttributeValues=attributes(
                    {":r": reply_id, ":until": self._now_ms() + lease_seconds * 1000}
                ),
            )
            is not None
        )

    def release_lease(self, conversation_id: str, reply_id: str) -> bool:
        """Free the conversation if `reply_id` still holds it (never another reply's)."""
        return (
            self._update(
                conversation_id,
                UpdateExpression="REMOVE replyId, replyPrompt, leaseUntil, stopRequested",
                ConditionExpression="replyId = :r",
                ExpressionAttributeValues=attributes({":r": reply_id}),
            )
            is not None
        )

    def finish_reply(
        self,
        conversation_id: str,
        reply_id: str,
        turns: list[Message],
        *,
        epoch: int,
        max_chars: int,
        ttl_seconds: int,
        interrupted: bool = False,
    ) -> Finished:
        """Save the finished reply's turns and free the conversation in one write; the
        attachment as it stands then, so a client that attached meanwhile gets the end.

        After a `reset` (the epoch moved on) the lease is freed and nothing saved; a lease
        that is no longer this reply's is left alone.
        """
        saved = self._update(
            conversation_id,
            UpdateExpression=(
                f"SET history = :h, {TTL_ATTRIBUTE} = :exp, interrupted = :cut "
                "REMOVE replyId, replyPrompt, leaseUntil, stopRequested"
            ),
            ConditionExpression=f"replyId = :r AND {_SAME_EPOCH}",
            ExpressionAttributeValues=attributes(
                {
                    ":h": _encode(trim_history(turns, max_chars)),
                    ":r": reply_id,
                    ":e": epoch,
                    ":zero": 0,
                    ":exp": self._expires(ttl_seconds),
                    ":cut": interrupted,
                }
            ),
            ReturnValues="ALL_NEW",
        )
        if saved is None:
            self.release_lease(conversation_id, reply_id)
            return Finished(False, _attachment_of(self.read(conversation_id) or {}))
        return Finished(True, _attachment_of(plain(saved.get("Attributes"))))

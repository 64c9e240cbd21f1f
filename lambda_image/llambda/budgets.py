"""Token budgets: counters in the stack's one table that cap how many tokens replies may
generate, per conversation, per client identity a day and for the whole stage a day
(docs/spending.md, "Budgets"). Both doors count them: the WebSocket's router for a chat,
the OpenAI-compatible endpoint for a completion (no conversation: the daily ones).

A chat reserves its `max_tokens` on every counter before its reply is dispatched. In the
usual case every counter has room for all of it, and it is added to all of them at once,
each on that condition (one round trip on the first token's path). Otherwise it takes
one conditional UpdateItem per counter that adds the reservation only while the counter
is under its cap. The counter's value after the add says how much of the reservation fits
under the cap; the reply's `max_tokens` becomes that, so concurrent chats can never
generate past a cap (each one's room is what the counter had left when it added, and the
counter only ever holds reservations and real use). When the reply ends, however it
ends, the unused part of the reservation is given back. A reply whose function died
(a timeout, a crash) keeps its whole reservation counted: the safe side.

Days are UTC days. A counter's item expires (TTL) a day after its window closes; a
conversation's counter lives as long as a conversation may.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from llambda import protocol
from llambda.contract import DoneReason, ErrorCode
from llambda.observability import logger
from llambda.table import TTL_ATTRIBUTE, ItemStore, is_conditional_failure

DAY_SECONDS = 86_400
# The counters' writes of one reservation go out together (botocore's clients are
# thread-safe); a chat meets at most three.
_PARALLEL = ThreadPoolExecutor(max_workers=3, thread_name_prefix="budget")
# The key of the hash of a connection's token in the $connect authorizer's context.
IDENTITY_KEY = "identity"


class Scope(StrEnum):
    """Which budget a counter keeps (the `scope` of a budget error)."""

    CONVERSATION = "conversation"
    CLIENT = "client"
    STAGE = "stage"


@dataclass(frozen=True, kw_only=True)
class BudgetLimits:
    """Caps in generated tokens; 0 means no cap."""

    conversation_tokens: int = 0
    client_tokens_per_day: int = 0
    stage_tokens_per_day: int = 0


@dataclass(frozen=True)
class Counter:
    """One budget's counter as one reply meets it."""

    scope: Scope
    item_id: str
    cap: int
    expires_at: int  # epoch seconds (the item's TTL)
    resets_at: str | None  # ISO 8601 UTC; None: it never resets (a conversation's)


@dataclass(frozen=True)
class Reservation:
    """What a chat holds on its counters until its reply ends."""

    reserved: int  # tokens added to every counter
    allowed: int  # the reply's max_tokens: what fits under every cap (<= reserved)
    counters: tuple[str, ...]  # item ids
    # The budget that left less room than the chat asked for, if any.
    limited_by: Scope | None = None
    resets_at: str | None = None

    def to_event(self) -> dict[str, Any]:
        return {
            "reserved": self.reserved,
            "allowed": self.allowed,
            "counters": list(self.counters),
            "limitedBy": self.limited_by.value if self.limited_by else None,
            "resetsAt": self.resets_at,
        }

    @classmethod
    def from_event(cls, event: Any) -> Reservation | None:
        """The reservation a dispatch carries, or None (no budget on the stage)."""
        if not isinstance(event, dict):
            return None
        limited = event.get("limitedBy")
        return cls(
            reserved=int(event["reserved"]),
            allowed=int(event["allowed"]),
            counters=tuple(str(item) for item in event.get("counters") or ()),
            limited_by=Scope(limited) if limited else None,
            resets_at=event.get("resetsAt"),
        )


class BudgetExhausted(Exception):
    """A counter was at its cap: nothing was reserved."""

    def __init__(self, counter: Counter) -> None:
        super().__init__(counter.scope.value)
        self.counter = counter


def identity_of(secret: str) -> str:
    """The identity a client's credential (a WebSocket token, an API key) stands for: a
    hash, so no credential is ever stored. 32 hex characters (128 bits)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()[:32]


def _day_window(now_s: int) -> tuple[str, int]:
    """The UTC day `now_s` falls in (YYYY-MM-DD) and the epoch second it ends."""
    day = dt.datetime.fromtimestamp(now_s, dt.UTC).date()
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC)
    return day.isoformat(), int(end.timestamp())


def _iso(epoch_s: int) -> str:
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def refusal(error: BudgetExhausted) -> dict[str, Any]:
    """The `budget_exhausted` error for a refused chat."""
    counter = error.counter
    return budget_error(ErrorCode.BUDGET_EXHAUSTED, counter.scope, counter.resets_at, refused=True)


def cut_short(
    reservation: Reservation | None, reason: str, usage: dict[str, int]
) -> dict[str, Any] | None:
    """The `budget_cut_short` error that ends a reply in place of `done`, when a budget
    gave it less room than it asked for and it used all of it; else None."""
    if reservation is None or reservation.limited_by is None or reason != DoneReason.LENGTH:
        return None
    return {
        **budget_error(
            ErrorCode.BUDGET_CUT_SHORT,
            reservation.limited_by,
            reservation.resets_at,
            refused=False,
        ),
        "usage": usage,
    }


def budget_error(
    code: str, scope: Scope, resets_at: str | None, *, refused: bool
) -> dict[str, Any]:
    """An error message naming the budget and when it resets."""
    return {
        **protocol.error(code, budget_message(scope, resets_at, refused=refused)),
        "scope": scope.value,
        "resets_at": resets_at,
    }


def budget_message(scope: Scope, resets_at: str | None, *, refused: bool) -> str:
    """Which budget was used up and when it resets, in words (both doors say this)."""
    what = {
        Scope.CONVERSATION: "This conversation has used its token budget",
        Scope.CLIENT: "You have used today's token budget",
        Scope.STAGE: "This site has used today's token budget",
    }[scope]
    if resets_at is None:
        when = "; start a new conversation to go on."
    else:
        when = f"; it resets at {resets_at} (UTC)."
    prefix = "" if refused else "The reply was cut short. "
    return f"{prefix}{what}{when}"


class BudgetStore(ItemStore):
    PREFIX = "budget#"

    def counters(
        self,
        limits: BudgetLimits,
        *,
        identity: str,
        conversation_id: str | None = None,
        ttl_seconds: int = 0,
    ) -> list[Counter]:
        """The counters a chat meets now, narrowest first (the caps that are set); a
        request of no conversation (the OpenAI-compatible door's) meets the daily ones."""
        now_s = self._now_ms() // 1000
        day, day_end = _day_window(now_s)
        found = []
        if conversation_id is not None and limits.conversation_tokens > 0:
            found.append(
                Counter(
                    Scope.CONVERSATION,
                    f"conversation#{conversation_id}",
                    limits.conversation_tokens,
                    now_s + ttl_seconds,
                    None,
                )
            )
        for scope, cap, item_id in (
            (Scope.CLIENT, limits.client_tokens_per_day, f"client#{identity}#{day}"),
            (Scope.STAGE, limits.stage_tokens_per_day, f"stage#{day}"),
        ):
            if cap > 0:
                found.append(Counter(scope, item_id, cap, day_end + DAY_SECONDS, _iso(day_end)))
        return found

    def reserve(self, counters: list[Counter], tokens: int) -> Reservation:
        """Reserve `tokens` on every counter, or on none (`BudgetExhausted`)."""
        if self._reserve_whole(counters, tokens):
            return Reservation(
                reserved=tokens,
                allowed=tokens,
                counters=tuple(counter.item_id for counter in counters),
            )
        return self._reserve_each(counters, tokens)

    def _reserve_whole(self, counters: list[Counter], tokens: int) -> bool:
        """The usual case in one round trip, on the first token's path: every counter has
        room for all of `tokens`, and all of them are written at once, each on that
        condition. False when one has less: what the others added is given back, and
        `_reserve_each` finds out how much fits. (A transaction would do the same in one
        request at twice the write units, and answers slower.)"""
        if len(counters) < 2 or any(counter.cap < tokens for counter in counters):
            return False
        results = list(_PARALLEL.map(lambda c: self._add_whole(c, tokens), counters))
        errors = [result for result in results if isinstance(result, Exception)]
        if not errors and all(results):
            return True
        self._give_back(
            [c for c, done in zip(counters, results, strict=True) if done is True], tokens
        )
        if errors:
            raise errors[0]
        return False

    def _add_whole(self, counter: Counter, tokens: int) -> bool | Exception:
        """Add `tokens` if all of them fit under the counter's cap; whether they did (or
        the error, returned so the other writes' results are not lost)."""
        try:
            self._add_reservation(counter, tokens, most=counter.cap - tokens)
        except ClientError as error:
            return False if is_conditional_failure(error) else error
        except Exception as error:  # handed to the caller, which raises it
            return error
        return True

    def _add_reservation(self, counter: Counter, tokens: int, *, most: int) -> Any:
        """Add `tokens` to the counter if it holds at most `most` now (the UpdateItem's
        answer, with the counter's new `used`)."""
        return self._db.update_item(
            TableName=self._table,
            Key=self._key(counter.item_id),
            UpdateExpression=(
                f"ADD used :n SET {TTL_ATTRIBUTE} = if_not_exists({TTL_ATTRIBUTE}, :exp), "
                "cap = :cap"
            ),
            ConditionExpression="attribute_not_exists(used) OR used <= :most",
            ExpressionAttributeValues={
                ":n": {"N": str(tokens)},
                ":cap": {"N": str(counter.cap)},
                ":most": {"N": str(most)},
                ":exp": {"N": str(counter.expires_at)},
            },
            ReturnValues="UPDATED_NEW",
        )

    def _reserve_each(self, counters: list[Counter], tokens: int) -> Reservation:
        """One conditional write per counter: each says how much room it had."""
        taken: list[Counter] = []
        allowed, limited_by, resets_at = tokens, None, None
        for counter in counters:
            try:
                answer = self._add_reservation(counter, tokens, most=counter.cap - 1)
            except ClientError as error:
                if not is_conditional_failure(error):
                    self._give_back(taken, tokens)
                    raise
                self._give_back(taken, tokens)
                raise BudgetExhausted(counter) from None
            taken.append(counter)
            before = int(answer["Attributes"]["used"]["N"]) - tokens
            room = counter.cap - before
            if room < allowed:
                allowed, limited_by, resets_at = room, counter.scope, counter.resets_at
        return Reservation(
            reserved=tokens,
            allowed=allowed,
            counters=tuple(counter.item_id for counter in counters),
            limited_by=limited_by,
            resets_at=resets_at,
        )

    def settle(self, reservation: Reservation, used: int) -> None:
        """The reply ended having generated `used` tokens: give back the rest."""
        unused = reservation.reserved - max(0, min(used, reservation.reserved))
        if unused:
            self._add(reservation.counters, -unused)

    def reply_ended(self, reservation: Reservation | None, used: int) -> None:
        """`settle` for a reply that ended however it did; never raises (a refund that
        fails leaves the reservation counted: the safe side)."""
        if reservation is None:
            return
        try:
            self.settle(reservation, used)
        except Exception:
            logger.exception("budget refund failed")

    def release(self, reservation: Reservation) -> None:
        """The reply never ran (its dispatch failed): give back all of it."""
        self.settle(reservation, 0)

    def used(self, item_id: str) -> int:
        """A counter's tokens (reservations included); 0 when it has none."""
        item = self.get(item_id) or {}
        return int(item.get("used", {}).get("N", "0"))

    def _give_back(self, counters: list[Counter], tokens: int) -> None:
        self._add(tuple(counter.item_id for counter in counters), -tokens)

    def _add(self, item_ids: tuple[str, ...], tokens: int) -> None:
        for item_id in item_ids:
            # Only an existing counter: a refund never recreates an expired one.
            try:
                self._db.update_item(
                    TableName=self._table,
                    Key=self._key(item_id),
                    UpdateExpression="ADD used :n",
                    ConditionExpression="attribute_exists(used)",
                    ExpressionAttributeValues={":n": {"N": str(tokens)}},
                )
            except ClientError as error:
                if not is_conditional_failure(error):
                    raise

"""Lambda's asynchronous invocation, locally: the event queue of one function.

An `Event` invoke is accepted at once (202) and queued; it runs when an instance is free.
Each qualifier has its own settings (`AWS::Lambda::EventInvokeConfig`): maximum event age,
retry attempts and the on-failure destination. An event older than its maximum age is
dropped, and one whose attempts all failed is given up; either way the destination gets
Lambda's destination record.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger("offline")


@dataclass(frozen=True, kw_only=True)
class AsyncConfig:
    """One qualifier's `EventInvokeConfig` (Lambda's defaults when there is none)."""

    max_event_age_seconds: float = 6 * 3600
    max_retry_attempts: int = 2
    on_failure: str | None = None  # the destination function's ARN


@dataclass
class QueuedEvent:
    request_id: str
    payload: bytes
    enqueued_at: float
    invoked_arn: str
    qualifier: str
    config: AsyncConfig
    attempts: int = 0

    def too_old(self) -> bool:
        return time.monotonic() - self.enqueued_at > self.config.max_event_age_seconds


# One attempt at an event on an instance: the error Lambda records, or None.
Attempt = Callable[[], Awaitable[dict[str, Any] | None]]
Destination = Callable[[str, dict[str, Any]], Awaitable[None]]


class EventQueue:
    """Queued events of one function, run as room allows."""

    def __init__(self, *, function_arn: str, destination: Destination) -> None:
        self.function_arn = function_arn
        self._destination = destination
        self._events: deque[QueuedEvent] = deque()
        self._tasks: set[asyncio.Task] = set()
        self.expired = 0
        self.closed = False

    def __len__(self) -> int:
        return len(self._events)

    def submit(
        self,
        payload: bytes,
        *,
        invoked_arn: str,
        qualifier: str,
        config: AsyncConfig,
        expire: bool = False,
    ) -> str:
        event = QueuedEvent(
            str(uuid.uuid4()), payload, time.monotonic(), invoked_arn, qualifier, config
        )
        if expire:
            self._spawn(self._fail(event, "EventAgeExceeded", None))
        else:
            self._events.append(event)
        return event.request_id

    def head(self) -> QueuedEvent | None:
        """The next event to run (events past their age are failed on the way), kept queued."""
        while self._events:
            event = self._events[0]
            if not event.too_old():
                return event
            self._events.popleft()
            self._spawn(self._fail(event, "EventAgeExceeded", None))
        return None

    def pop(self) -> QueuedEvent:
        return self._events.popleft()

    def expire_old(self) -> None:
        """Drop queued events past their maximum age (called about once a second)."""
        for event in [e for e in self._events if e.too_old()]:
            self._events.remove(event)
            self._spawn(self._fail(event, "EventAgeExceeded", None))

    def run(self, event: QueuedEvent, attempt: Attempt, pump: Callable[[], None]) -> None:
        """Run one attempt at `event` (already popped); retry or fail it as configured."""
        self._spawn(self._attempt(event, attempt, pump))

    async def _attempt(
        self, event: QueuedEvent, attempt: Attempt, pump: Callable[[], None]
    ) -> None:
        event.attempts += 1
        error = await attempt()
        if error is None:
            return
        if event.attempts <= event.config.max_retry_attempts and not self.closed:
            await asyncio.sleep(1.0)  # Lambda waits minutes; locally a second is enough
            self._events.appendleft(event)
            pump()
            return
        await self._fail(event, "RetriesExhausted", error)

    async def _fail(self, event: QueuedEvent, condition: str, error: dict[str, Any] | None) -> None:
        if condition == "EventAgeExceeded":
            self.expired += 1
            log.warning(
                "%s: event %s dropped: older than the maximum event age (%ss)",
                self.function_arn.rsplit(":", 1)[-1],
                event.request_id[:8],
                event.config.max_event_age_seconds,
            )
        if event.config.on_failure is None:
            return
        record = destination_record(
            function_arn=f"{self.function_arn}:{event.qualifier}",
            request_id=event.request_id,
            condition=condition,
            attempts=event.attempts,
            payload=event.payload,
            error=error,
        )
        await self._destination(event.config.on_failure, record)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        self.closed = True
        self._events.clear()
        for task in list(self._tasks):
            task.cancel()


def destination_record(
    *,
    function_arn: str,
    request_id: str,
    condition: str,
    attempts: int,
    payload: bytes,
    error: dict[str, Any] | None,
) -> dict[str, Any]:
    """The record Lambda sends to an asynchronous invocation's on-failure destination."""
    try:
        request_payload: Any = json.loads(payload) if payload else None
    except ValueError:
        request_payload = payload.decode("utf-8", errors="replace")
    record: dict[str, Any] = {
        "version": "1.0",
        "timestamp": utc_now(),
        "requestContext": {
            "requestId": request_id,
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": attempts,
        },
        "requestPayload": request_payload,
    }
    if error is not None:
        record["responseContext"] = {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": "Unhandled",
        }
        record["responsePayload"] = error
    return record


def utc_now() -> str:
    return datetime.now(tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

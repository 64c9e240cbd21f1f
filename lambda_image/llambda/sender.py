"""The streaming sender: generation hands it text and never waits on the network.

A background thread posts, in order: control messages (status, error, done) as they come,
and the text pushed meanwhile as coalesced `delta`s, at most one post per `coalesce_ms`
while tokens flow and everything left at once when the reply closes. A post the client
cannot receive any more (`GoneException`) sets `gone`, so generation stops at its next
token; any other failure sets `failed` (after the SDK's own bounded retries).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from llambda import protocol
from llambda.observability import logger

# One delta carries at most this many characters: even if each became a 6-byte JSON
# escape the frame stays under 32 KB (API Gateway's WebSocket frame size).
MAX_DELTA_CHARS = 4000


class ConnectionGone(Exception):
    """The client's connection no longer exists (the @connections API answered 410)."""


def connection_poster(client: Any, connection_id: str) -> Callable[[bytes], None]:
    """`post(data)` for one connection over a boto3 `apigatewaymanagementapi` client."""

    def post(data: bytes) -> None:
        try:
            client.post_to_connection(ConnectionId=connection_id, Data=data)
        except client.exceptions.GoneException as error:  # before ClientError: a subclass
            raise ConnectionGone(connection_id) from error

    return post


class _Text:
    __slots__ = ("parts",)

    def __init__(self, text: str) -> None:
        self.parts = [text]


class StreamSender:
    def __init__(
        self,
        post: Callable[[bytes], None],
        *,
        coalesce_ms: float = 50,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._post = post
        self._interval = coalesce_ms / 1000
        self._clock = clock
        self._items: deque[_Text | dict[str, Any]] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="stream-sender", daemon=True)
        self._last_post = -1e9
        self.seq = 0  # the next delta's seq
        self.posts = 0
        self.gone = False
        self.failed = False

    # Called by the generating thread -------------------------------------------------

    def start(self) -> StreamSender:
        self._thread.start()
        return self

    @property
    def broken(self) -> bool:
        """The client cannot be reached: stop generating."""
        return self.gone or self.failed

    def push(self, text: str) -> None:
        """Queue generated text; returns at once."""
        if not text or self.broken:
            return
        with self._cond:
            tail = self._items[-1] if self._items else None
            if isinstance(tail, _Text):
                tail.parts.append(text)
            else:
                self._items.append(_Text(text))
            self._cond.notify()

    def send(self, message: dict[str, Any]) -> None:
        """Queue a control message, posted after everything queued before it."""
        with self._cond:
            self._items.append(message)
            self._cond.notify()

    def close(self, final: dict[str, Any] | None = None, timeout: float = 30) -> None:
        """Flush what is queued, post `final` last, and wait for the thread to finish."""
        with self._cond:
            if final is not None:
                self._items.append(final)
            self._closing = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # The sender thread -----------------------------------------------------------------

    def _next(self) -> _Text | dict[str, Any] | None:
        with self._cond:
            while True:
                if self.broken:
                    return None
                if not self._items:
                    if self._closing:
                        return None
                    self._cond.wait()
                    continue
                head = self._items[0]
                # Text alone in the queue while tokens still flow: wait out the interval
                # so more text joins this delta.
                if isinstance(head, _Text) and len(self._items) == 1 and not self._closing:
                    left = self._last_post + self._interval - self._clock()
                    if left > 0:
                        self._cond.wait(left)
                        continue
                return self._items.popleft()

    def _run(self) -> None:
        while (item := self._next()) is not None:
            if isinstance(item, _Text):
                text = "".join(item.parts)
                for start in range(0, len(text), MAX_DELTA_CHARS):
                    self._send(protocol.delta(text[start : start + MAX_DELTA_CHARS], self.seq))
                    self.seq += 1
                # Only deltas pace deltas: the first text after `status` goes at once.
                self._last_post = self._clock()
            else:
                self._send(item)
            if self.broken:
                break
        with self._cond:
            self._items.clear()

    def _send(self, message: dict[str, Any]) -> None:
        if self.broken:
            return
        try:
            self._post(protocol.encode(message))
        except ConnectionGone:
            logger.info("client gone; stopping the reply")
            self.gone = True
        except Exception:  # retried by the SDK already: the reply cannot reach the client
            logger.exception("posting to the client failed", extra={"type": message["type"]})
            self.failed = True
        else:
            self.posts += 1

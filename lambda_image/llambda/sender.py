"""The streaming sender: generation hands it text and never waits on the network.

A background thread posts, in order: control messages (status, error, done) as they come,
and the text pushed meanwhile as coalesced `delta`s, at most one post per `coalesce_ms`
while tokens flow and everything left at once when the reply closes.

Every delta is kept, so the reply can resume elsewhere: a post the client cannot receive
any more (`GoneException`) leaves the sender `detached` (generation goes on, deltas are
kept, nothing is posted), and `retarget` points it at the newly attached connection, which
first gets the kept deltas after the ones it has, then the rest as it comes. Any other
post failure sets `failed` (after the SDK's own bounded retries), and generation stops.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from llambda import protocol
from llambda.contract import MAX_FRAME_BYTES, split_message
from llambda.observability import logger

# One delta carries at most this many characters: even if each became a 6-byte JSON
# escape the frame stays under API Gateway's 32 KB, so a delta is never split in parts.
MAX_DELTA_CHARS = (MAX_FRAME_BYTES - 8 * 1024) // 6


class ConnectionGone(Exception):
    """The client's connection no longer exists (the @connections API answered 410)."""


def connection_poster(client: Any, connection_id: str) -> Callable[[bytes], None]:
    """`post(data)` for one connection over a boto3 `apigatewaymanagementapi` client.

    A message over API Gateway's 32 KB frame goes as `part` messages, one post each: a
    larger post reaches the client as a frame over the limit, which closes it with 1009."""

    def post(data: bytes) -> None:
        frames = (
            [data]
            if len(data) <= MAX_FRAME_BYTES
            else [frame.encode() for frame in split_message(data.decode())]
        )
        try:
            for frame in frames:
                client.post_to_connection(ConnectionId=connection_id, Data=frame)
        except client.exceptions.GoneException as error:  # before ClientError: a subclass
            raise ConnectionGone(connection_id) from error

    return post


class _Text:
    __slots__ = ("parts",)

    def __init__(self, text: str) -> None:
        self.parts = [text]


class _Replay:
    """Post `greeting`, then the kept deltas from `first_seq` on (to a newly attached
    connection)."""

    __slots__ = ("first_seq", "greeting")

    def __init__(self, first_seq: int, greeting: dict[str, Any] | None) -> None:
        self.first_seq = first_seq
        self.greeting = greeting


class StreamSender:
    def __init__(
        self,
        post: Callable[[bytes], None],
        *,
        conversation_id: str,
        coalesce_ms: float = 50,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._post = post
        self._conversation_id = conversation_id
        self._interval = coalesce_ms / 1000
        self._clock = clock
        self._items: deque[_Text | _Replay | dict[str, Any]] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="stream-sender", daemon=True)
        self._last_post = -1e9
        self.deltas: list[str] = []  # every delta's text, by seq (the next seq is its length)
        self.posts = 0
        self.detached_since: float | None = None  # when a post found the client gone
        self.failed = False
        # A retarget's replay is queued: new deltas are kept and left to it, or a delta
        # cut while the target changed would reach the new client twice.
        self._replay_pending = False

    @property
    def seq(self) -> int:
        """The next delta's seq."""
        return len(self.deltas)

    @property
    def detached(self) -> bool:
        """No client is attached: deltas are kept, not posted."""
        return self.detached_since is not None

    def detached_seconds(self) -> float:
        """How long no client has been attached (0 while one is)."""
        since = self.detached_since
        return 0.0 if since is None else self._clock() - since

    # Called by the generating thread -------------------------------------------------

    def start(self) -> StreamSender:
        self._thread.start()
        return self

    @property
    def broken(self) -> bool:
        """Posting failed for good: stop generating."""
        return self.failed

    def retarget(
        self,
        post: Callable[[bytes], None],
        *,
        seen_seq: int,
        greeting: dict[str, Any] | None = None,
    ) -> None:
        """Stream to another connection from now on: first `greeting` (the answer to its
        `attach`), then the kept deltas after `seen_seq`, then whatever comes next. The old
        target gets nothing more."""
        with self._cond:
            self._post = post
            self.detached_since = None
            # One replay, before anything queued (queued text has later seqs than every
            # kept delta), to the newest target only.
            self._items = deque(i for i in self._items if not isinstance(i, _Replay))
            self._items.appendleft(_Replay(max(seen_seq + 1, 0), greeting))
            self._replay_pending = True
            self._cond.notify()

    def push(self, text: str) -> None:
        """Queue generated text; returns at once."""
        if not text or self.broken:
            return
        with self._cond:
            tail = self._items[-1] if self._items else None
            if isinstance(tail, _Text):
                # Joining text already queued changes nothing the sender thread waits on,
                # so it is not woken: a wake per token takes a core from the engine.
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

    def _next(self) -> _Text | _Replay | dict[str, Any] | None:
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
                    with self._cond:
                        seq = len(self.deltas)
                        self.deltas.append(text[start : start + MAX_DELTA_CHARS])
                        left_to_replay = self._replay_pending
                    if not left_to_replay:
                        self._send(protocol.delta(self.deltas[seq], seq))
                # Only deltas pace deltas: the first text after `status` goes at once.
                self._last_post = self._clock()
            elif isinstance(item, _Replay):
                logger.info("resuming the reply", extra={"from_seq": item.first_seq})
                with self._cond:
                    self._replay_pending = False
                if item.greeting is not None:
                    self._send(item.greeting)
                # Only this thread adds deltas, so the range cannot grow meanwhile.
                for seq in range(item.first_seq, len(self.deltas)):
                    self._send(protocol.delta(self.deltas[seq], seq))
            else:
                self._send(item)
            if self.broken:
                break
        with self._cond:
            self._items.clear()

    def _send(self, message: dict[str, Any]) -> None:
        with self._cond:
            post = None if self.broken or self.detached else self._post
        if post is None:
            return
        try:
            post(protocol.encode(protocol.in_conversation(message, self._conversation_id)))
        except ConnectionGone:
            with self._cond:
                if post is self._post:  # not retargeted meanwhile
                    logger.info("client gone; keeping the reply for a resume")
                    self.detached_since = self._clock()
        except Exception:  # retried by the SDK already: the reply cannot reach the client
            logger.exception("posting to the client failed", extra={"type": message["type"]})
            self.failed = True
        else:
            self.posts += 1

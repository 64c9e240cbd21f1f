"""`ChatClient`: llambda's WebSocket protocol (docs/protocol.md) from a program.

One connection at a time, to a conversation that lives on the server: the client keeps
the id the server issued and the last delta (`seq`) it has of the running reply. When the
connection drops mid-reply, `reply()` connects again and sends `attach` with that seq, so
the rest of the reply arrives with no gap and no duplicate (the server keeps a reply for
its 60 s grace).

Every received message is timestamped on arrival (`time.perf_counter()`) by a reader
thread and handed to the optional `on_message(at, message)` hook before anything else
sees it: `make bench` measures with that hook.
"""

from __future__ import annotations

import collections
import json
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from websockets import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.protocol import State
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin

from llambda.contract import REFUSED_CHAT_CODES, PartJoiner
from terminal_client import messages
from terminal_client.messages import REPLY_END

Message = dict[str, Any]
OnMessage = Callable[[float, Message], None]

# Waits between reconnection attempts after a drop: quick at first (a blip), then
# spaced, adding up to a little over the server's 60 s grace for a reply.
RECONNECT_DELAYS = (0.1, 0.25, 0.5, 1, 2, 4, 8, 8, 8, 8, 8, 8, 8)
# While a reply is awaited: a ping after this long without a frame, and the connection
# is taken for dead when the next `DEAD_S` bring none (the web page's rule).
QUIET_S = 5.0
DEAD_S = 8.0


class ConnectionLost(Exception):
    """The connection closed, or could not be (re)opened."""


class HandshakeRefused(ConnectionLost):
    """The server refused the WebSocket handshake (401: no token, 403: a wrong one)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"handshake refused: HTTP {status}")
        self.status = status


class ServerError(Exception):
    """An `error` the server answered a request with."""

    def __init__(self, message: Message) -> None:
        self.code = str(message.get("code"))
        self.text = str(message.get("message", ""))
        super().__init__(f"{self.code}: {self.text}")


@dataclass(frozen=True)
class _Closed:
    """The reader's last word on a connection: why it ended."""

    reason: str


class ChatClient:
    """A conversation with a llambda stage over one WebSocket at a time.

    `conversation` is the server's id (None until the first reply names one, or after
    `new_conversation()`); `last_seq` and `reply_text` are what the client has of the
    reply it awaits or last had; `resumes` counts the drops that reply survived.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        origin: str | None = None,
        open_timeout: float = 30.0,
        on_message: OnMessage | None = None,
        reconnect_delays: Iterable[float] = RECONNECT_DELAYS,
        quiet_s: float = QUIET_S,
        dead_s: float = DEAD_S,
    ) -> None:
        self.url = messages.with_token(url, token)
        self.origin = origin
        self.open_timeout = open_timeout
        self.on_message = on_message
        self.reconnect_delays = tuple(reconnect_delays)
        self.quiet_s, self.dead_s = quiet_s, dead_s
        self.conversation: str | None = None
        self.last_seq = -1
        self.reply_text = ""
        self.reply_prompt: str | None = None
        self.resumes = 0
        self._ws: ClientConnection | None = None
        # Bumped on every (re)connect and close: what an older connection's reader puts in
        # the inbox is ignored, so a reply's messages never mix two connections.
        self._generation = 0
        self._inbox: queue.Queue[tuple[int, float, Message | _Closed]] = queue.Queue()
        # Messages read past while awaiting an answer (a delta can arrive before the
        # `attached` it follows): handed out first by `receive()`, so none is lost.
        self._pending: collections.deque[Message] = collections.deque()
        self._stop_pending = False

    # -- the connection ---------------------------------------------------------------
    def connect(self) -> ChatClient:
        """Open a connection (closing any other). Raises `HandshakeRefused` or
        `ConnectionLost`."""
        self._abandon()
        try:
            # legacy=True: a plain connection whose life this class runs (websockets' own
            # reconnecting iterator cannot attach the conversation to the new one).
            ws = connect(
                self.url,
                origin=None if self.origin is None else Origin(self.origin),
                open_timeout=self.open_timeout,
                legacy=True,
            )
        except InvalidStatus as error:
            raise HandshakeRefused(error.response.status_code) from error
        except (OSError, TimeoutError, WebSocketException) as error:
            raise ConnectionLost(f"could not connect: {error}") from error
        self._generation += 1
        self._ws = ws
        self._pending.clear()
        threading.Thread(
            target=self._read, args=(ws, self._generation), daemon=True, name="chat-reader"
        ).start()
        return self

    @property
    def connected(self) -> bool:
        return self._ws is not None and self._ws.state is State.OPEN

    def close(self) -> None:
        ws, self._ws = self._ws, None
        self._generation += 1
        if ws is not None:
            ws.close()

    def __enter__(self) -> ChatClient:
        return self if self._ws else self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _abandon(self) -> None:
        """Leave the current connection without waiting for its closing handshake (it
        may be dead: a close would wait out its timeout)."""
        ws, self._ws = self._ws, None
        self._generation += 1
        if ws is not None:
            threading.Thread(target=ws.close, daemon=True).start()

    def _read(self, ws: ClientConnection, generation: int) -> None:
        reason = ""
        # A message over API Gateway's 32 KB frame comes as `part`s: handled once whole.
        joiner = PartJoiner()
        try:
            for raw in ws:
                at = time.perf_counter()
                try:
                    message = json.loads(raw)
                except ValueError:
                    message = None
                if not isinstance(message, dict):
                    message = {"type": "unreadable", "text": str(raw)[:200]}
                message = joiner.feed(message)
                if message is None:
                    continue
                if self.on_message is not None:
                    self.on_message(at, message)
                self._inbox.put((generation, at, message))
        except Exception as error:  # ConnectionClosedError, or the socket failed
            reason = f": {error}"
        if ws.close_code is not None:
            said = f" ({ws.close_reason})" if ws.close_reason else ""
            reason = f": code {ws.close_code}{said}"
        closed = _Closed(f"the connection closed{reason}")
        self._inbox.put((generation, time.perf_counter(), closed))

    def send(self, message: Message) -> None:
        """Send one frame as it is. Raises `ConnectionLost` when not connected."""
        if self._ws is None:
            raise ConnectionLost("not connected")
        try:
            self._ws.send(json.dumps(message))
        except ConnectionClosed as error:
            raise ConnectionLost(f"the connection closed: {error}") from error

    def receive(self, timeout: float | None = None) -> Message | None:
        """The next message on this connection, or None after `timeout` seconds.
        Raises `ConnectionLost` once the connection has closed."""
        if self._pending:
            return self._pending.popleft()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._ws is None:
                raise ConnectionLost("not connected")
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                generation, _, item = self._inbox.get(timeout=left)
            except queue.Empty:
                return None
            if generation != self._generation:
                continue
            if isinstance(item, _Closed):
                self._ws = None
                raise ConnectionLost(item.reason)
            return item

    def _await(self, kinds: set[str], timeout: float) -> Message:
        """The next message of one of `kinds`; an `error` is raised. Others are kept for
        `receive()`, in order."""
        deadline = time.monotonic() + timeout
        passed: list[Message] = []
        try:
            while True:
                message = self._next_fresh(max(0.0, deadline - time.monotonic()))
                if message is None:
                    raise TimeoutError(f"no {'/'.join(sorted(kinds))} within {timeout:g} s")
                if message.get("type") in kinds:
                    return message
                if message.get("type") == "error" and message.get("code") in REFUSED_CHAT_CODES:
                    raise ServerError(message)
                passed.append(message)
        finally:
            self._pending.extendleft(reversed(passed))

    def _next_fresh(self, timeout: float) -> Message | None:
        """`receive()` past the messages already set aside."""
        pending, self._pending = self._pending, collections.deque()
        try:
            return self.receive(timeout)
        finally:
            self._pending = pending

    def _drop_stale(self) -> None:
        """Forget what arrived while no request was waiting (a `detached` while idle, an
        old reply's leftovers): what comes next answers the request about to be sent. A
        close among them is noted, so the request goes out on a new connection."""
        self._pending.clear()
        while True:
            try:
                generation, _, item = self._inbox.get_nowait()
            except queue.Empty:
                return
            if generation == self._generation and isinstance(item, _Closed):
                self._ws = None

    def ensure_connected(self) -> Message | None:
        """Connect again if the connection has gone, attaching the conversation to the
        new one (`chat`, `stop` and `reset` need it attached); its `attached` answer."""
        if self.connected:
            return None
        self.connect()
        if self.conversation is None:
            return None
        return self._attach(self.conversation, None)

    # -- requests ---------------------------------------------------------------------
    def new_conversation(self) -> None:
        """The next `chat` starts a new conversation (the old one stays on the server)."""
        self.conversation = None

    def chat(self, prompt: str, options: dict[str, Any] | None = None) -> None:
        """Ask in the current conversation (a new one when there is none); read the reply
        with `reply()`."""
        self._drop_stale()
        self.ensure_connected()
        self.last_seq, self.reply_text, self.reply_prompt, self.resumes = -1, "", prompt, 0
        self._stop_pending = False
        try:
            self.send(messages.chat(prompt, conversation=self.conversation, options=options))
        except ConnectionLost:  # it closed since it was checked: once more on a new one
            self.ensure_connected()
            self.send(messages.chat(prompt, conversation=self.conversation, options=options))

    def attach(self, conversation: str, *, timeout: float = 30.0) -> Message:
        """Make `conversation` this client's (the newest attach wins) and answer with the
        server's `attached`: its `turns`, and `reply` when one is running, which `reply()`
        then streams from its first delta. Raises `ServerError` (`not_found`)."""
        self._drop_stale()
        if not self.connected:
            self.connect()
        answer = self._attach(conversation, None, timeout=timeout)
        running = answer.get("reply")
        self.last_seq, self.reply_text, self.resumes = -1, "", 0
        self.reply_prompt = running.get("prompt") if isinstance(running, dict) else None
        return answer

    def _attach(self, conversation: str, seq: int | None, *, timeout: float = 30.0) -> Message:
        self.send(messages.attach(conversation, seq))
        answer = self._await({"attached"}, timeout)
        self.conversation = conversation
        return answer

    def history(self, conversation: str | None = None, *, timeout: float = 30.0) -> list[Message]:
        """The conversation's turns as the server keeps them, oldest first."""
        wanted = conversation or self.conversation
        if wanted is None:
            return []
        self.ensure_connected()
        self.send(messages.history(wanted))
        return list(self._await({"history"}, timeout).get("turns") or [])

    def forget(self, conversation: str | None = None, *, timeout: float = 30.0) -> None:
        """Delete the conversation on the server (stopping its reply)."""
        wanted = conversation or self.conversation
        if wanted is None:
            return
        self.ensure_connected()
        self.send(messages.forget(wanted))
        self._await({"forgotten"}, timeout)
        if wanted == self.conversation:
            self.conversation = None

    def stop(self) -> None:
        """Ask the running reply to end (it ends with `done`, reason `stopped`); sent
        after the reconnection when the connection is down."""
        if self.conversation is None:
            self._stop_pending = True  # sent once the server names the conversation
            return
        try:
            self.send(messages.stop(self.conversation))
            self._stop_pending = False
        except ConnectionLost:
            self._stop_pending = True

    def reset(self) -> None:
        """Empty the conversation's memory; the server answers `reset` (read it with
        `receive()`)."""
        if self.conversation is not None:
            self.send(messages.reset(self.conversation))

    def ping(self) -> None:
        self.send(messages.ping())

    # -- one reply --------------------------------------------------------------------
    def reply(
        self,
        *,
        timeout: float | None = None,
        resume: bool = True,
        tick: Callable[[], None] | None = None,
        tick_s: float = 0.1,
    ) -> Iterator[Message]:
        """The awaited reply's messages as they arrive, up to the one that ends it: its
        `done` or `error`, or `detached` (another connection took the conversation).

        `conversation` (a new one's id) and `status` come through; a delta the client
        already has is left out. After a drop (`resume`), the client reconnects and
        attaches; `attached` comes through, then the rest of the reply. A reply that ended
        while the client was away ends with its missing text taken from the `turns`: a
        delta and a `done`, both marked `"from_history": true` (the `done` has no reason
        or usage, and `"interrupted": true` when the server cut the reply short); when no
        reply runs and none was kept, the `chat` was lost with the connection: an `error`
        with code `lost`, also marked.

        `tick()` is called about every `tick_s` seconds while waiting, e.g. to `stop()`
        on Ctrl-C; whatever it raises ends the iteration. Raises `TimeoutError` after
        `timeout` seconds, `ConnectionLost` when the reply cannot be resumed.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        heard = time.monotonic()
        pinged = False
        while True:
            if tick is not None:
                tick()
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise TimeoutError(f"the reply did not end within {timeout:g} s")
            silence_limit = heard + self.quiet_s + (self.dead_s if pinged else 0)
            wait = min(tick_s if tick is not None else 1.0, max(0.01, silence_limit - now))
            if deadline is not None:
                wait = min(wait, deadline - now)
            try:
                if self._stop_pending and self.conversation is not None:
                    self.stop()
                if now >= silence_limit:
                    if pinged:  # no frame in answer to the ping: a dead connection
                        self._abandon()
                        raise ConnectionLost("the connection went silent")
                    self.ping()
                    pinged = True
                message = self.receive(wait)
            except ConnectionLost:
                if not resume:
                    raise
                attached = self._resume(tick, deadline)
                heard, pinged = time.monotonic(), False
                yield attached
                if attached.get("reply") is None:
                    yield from self._finished_while_away(attached)
                    return
                continue
            if message is None:
                continue
            heard, pinged = time.monotonic(), False
            kind = message.get("type")
            if kind == "pong":
                continue
            if kind == "conversation":
                self.conversation = str(message.get("id"))
            elif message.get("conversation") not in (None, self.conversation):
                continue  # a stale message of a conversation this client has left
            elif kind == "delta":
                seq = int(message.get("seq", self.last_seq + 1))
                if seq <= self.last_seq:
                    continue  # already had: never shown twice
                self.last_seq = seq
                self.reply_text += str(message.get("text", ""))
            yield message
            if kind in REPLY_END or kind == "detached":
                return

    def _resume(self, tick: Callable[[], None] | None, deadline: float | None) -> Message:
        """Reconnect and attach the conversation with the last seq had; its `attached`."""
        if self.conversation is None:
            raise ConnectionLost(
                "the connection dropped before the server named the conversation: "
                "this reply cannot be resumed"
            )
        last_error: Exception | None = None
        for delay in (0.0, *self.reconnect_delays):
            _sleep(delay, tick, deadline)
            try:
                self.connect()
                answer = self._attach(self.conversation, self.last_seq)
            except HandshakeRefused as error:
                if 400 <= error.status < 500 and error.status != 429:
                    raise  # a token refused: retrying will not change that
                last_error = error
                continue
            except (ConnectionLost, TimeoutError) as error:
                last_error = error
                continue
            self.resumes += 1
            if self._stop_pending:
                self.stop()
            return answer
        raise ConnectionLost(f"could not reconnect: {last_error}")

    def _finished_while_away(self, attached: Message) -> Iterator[Message]:
        """What the server kept of a reply that ended while no client was attached."""
        turns = attached.get("turns") or []
        marks = {"conversation": self.conversation, "from_history": True}
        ours = (
            len(turns) >= 2
            and turns[-1].get("role") == "assistant"
            and (self.reply_prompt is None or turns[-2].get("content") == self.reply_prompt)
        )
        text = str(turns[-1].get("content", "")) if ours else ""
        if not ours or not text.startswith(self.reply_text):
            # No reply runs and none was kept: the `chat` went down with the connection.
            lost = "the connection dropped before the server took the message: send it again"
            yield {"type": "error", "code": "lost", "message": lost, **marks}
            return
        rest = text[len(self.reply_text) :]  # only what follows the text already had
        if rest:
            self.last_seq += 1
            self.reply_text += rest
            yield {"type": "delta", "text": rest, "seq": self.last_seq, **marks}
        yield {
            "type": "done",
            "reason": None,
            "interrupted": bool(attached.get("interrupted")),
            **marks,
        }


def _sleep(seconds: float, tick: Callable[[], None] | None, deadline: float | None) -> None:
    """Sleep, calling `tick` as `reply()` does and never past `deadline`."""
    end = time.monotonic() + seconds
    if deadline is not None:
        if time.monotonic() >= deadline:
            raise TimeoutError("the reply did not end in time")
        end = min(end, deadline)
    while True:
        if tick is not None:
            tick()
        left = end - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.1))

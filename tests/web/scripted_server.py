"""A scripted protocol server for page behaviour the real model cannot be made to produce.

It serves `web_client/` and answers each client message with canned protocol messages from
a script. It does NOT generate anything and no test that uses it claims to test generation:
it exists for a reply that carries markup (script injection), for refusals such as `busy`
at a chosen moment, for a reply held open until the test ends it (`push`), for a server
that goes silent or refuses handshakes, and for exact timings. Everything else runs
against the real local twin.

It keeps conversations as the real server does (docs/protocol.md, "Conversations"): a
chat without `conversation` gets a new id first; `attach`, `history` and `forget` are
answered from what it holds; a reply's messages carry its conversation and go to the
connection it is attached to (a reply whose connection dropped keeps its deltas, and an
`attach` with `seq` replays those after it); an `attach` from another connection sends
`detached` to the one it leaves. The script decides only what a chat, `stop`, `reset` and
`ping` get back. Like the real server, it sends a message larger than one API Gateway frame
as `part` messages (llambda.contract.split_message).

`config.json` is web_client/config.json's (the stage's caps as the file beside the page
has them) with this server's WebSocket URL, and any `config` given on top.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import WSMsgType, web

from llambda.contract import split_message
from offline.serving import Server

# The page under test; WEB_CLIENT_UNDER_TEST=<dir> serves another copy of it (an older
# page, to show that a test of a fix fails without the fix).
WEB_CLIENT_DIR = Path(
    os.environ.get("WEB_CLIENT_UNDER_TEST") or Path(__file__).resolve().parents[2] / "web_client"
)

# In a script, instead of a message: close the connection (as a dropped network would).
CLOSE = {"close": True}

# The messages of a reply, which carry its conversation and follow it to its connection.
REPLY_TYPES = {"status", "delta", "done"}
ENDING_ERRORS = {"engine_error", "activation_limit"}  # an error that ends a reply is one too

# Frames to send back, each after an optional pause in seconds.
Frames = list[tuple[float, dict]]
# One client message in, the frames to send back.
Script = Callable[[dict], Frames]


@dataclass
class Conversation:
    id: str
    turns: list[dict] = field(default_factory=list)
    socket: web.WebSocketResponse | None = None  # the connection it is attached to
    running: str | None = None  # the prompt of the reply running now
    deltas: list[dict] = field(default_factory=list)  # that reply's deltas so far
    interrupted: bool = False


def _is_reply(frame: dict) -> bool:
    return frame.get("type") in REPLY_TYPES or (
        frame.get("type") == "error" and frame.get("code") in ENDING_ERRORS
    )


class ScriptedChatServer:
    """Serves the page on http://127.0.0.1:PORT/ and a scripted WebSocket on /dev."""

    def __init__(self, script: Script, *, config: dict | None = None) -> None:
        self.script = script
        self.config = config or {}
        # While true, WebSocket handshakes are refused (503), as from a server that is down.
        self.refusing = False
        self.received: list[dict] = []
        self.split: list[str] = []  # the type of each message it sent in parts
        self.handshakes: list[dict[str, str]] = []  # the query of each WebSocket handshake
        self.conversations: dict[str, Conversation] = {}
        self._latest: Conversation | None = None  # whose reply `push` continues
        self._sockets: set[web.WebSocketResponse] = set()
        self._server = Server("127.0.0.1")

    @property
    def http_url(self) -> str:
        return self._server.url()

    @property
    def ws_url(self) -> str:
        return self._server.url("dev", scheme="ws")

    def start(self) -> None:
        self._server.start(self._setup, timeout=10)

    def stop(self) -> None:
        self._server.stop(self._close_sockets)

    async def _setup(self, app: web.Application) -> None:
        app.router.add_get("/", self._index)
        app.router.add_get("/config.json", self._config)
        app.router.add_get("/dev", self._socket)
        app.router.add_static("/", WEB_CLIENT_DIR)
        await self._server.serve_app(app, main=True)

    async def _close_sockets(self) -> None:
        # Close live sockets first: the runner would otherwise wait for their handlers.
        for socket in list(self._sockets):
            await socket.close()

    def push(self, message: dict) -> None:
        """Send `message` now on every open socket, unasked (CLOSE closes them instead)."""
        self._server.run(self._push(message), timeout=10)

    def cut_reply(self) -> None:
        """End the running reply as the server does when no connection came back for it within
        the grace: kept as far as it got, and `attached` says `interrupted`."""
        conversation = self._latest
        assert conversation is not None and conversation.running is not None
        self._end_reply(conversation)
        conversation.interrupted = True

    async def _push(self, message: dict) -> None:
        # A reply's message goes on the reply it names, else on the latest reply begun.
        named = message.get("conversation")
        conversation = (self.conversations.get(named) if isinstance(named, str) else None) or (
            self._latest
        )
        if _is_reply(message) and conversation is not None:
            await self._send_reply(conversation, message)
            return
        for socket in list(self._sockets):
            if message == CLOSE:
                await socket.close()
            else:
                await socket.send_str(json.dumps(message))

    async def _index(self, _request: web.Request) -> web.FileResponse:
        return web.FileResponse(WEB_CLIENT_DIR / "index.html")

    async def _config(self, _request: web.Request) -> web.Response:
        config = json.loads((WEB_CLIENT_DIR / "config.json").read_text())
        return web.json_response({**config, "websocketUrl": self.ws_url, **self.config})

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        if self.refusing:
            return web.Response(status=503, text="down")
        self.handshakes.append(dict(request.query))
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self._sockets.add(socket)
        try:
            await self._serve(socket)
        finally:
            self._sockets.discard(socket)
        return socket

    async def _serve(self, socket: web.WebSocketResponse) -> None:
        async for frame in socket:
            if frame.type != WSMsgType.TEXT:
                continue
            message = json.loads(frame.data)
            self.received.append(message)
            if not await self._answer(socket, message):
                return

    async def _answer(self, socket: web.WebSocketResponse, message: dict) -> bool:
        """Answer one message; False once the script has closed the connection."""
        action = message.get("action")
        named = message.get("conversation")
        conversation = self.conversations.get(named) if isinstance(named, str) else None
        if action in ("attach", "history", "forget") and (conversation is None or named is None):
            await self._send(socket, {"type": "error", "code": "not_found", "message": "gone"})
            return True
        if named and conversation is None and action != "ping":
            await self._send(socket, {"type": "error", "code": "not_found", "message": "gone"})
            return True
        if action == "attach":
            assert conversation is not None  # refused above otherwise
            await self._attach(socket, conversation, message.get("seq", -1))
            return True
        if action == "history":
            assert conversation is not None
            await self._send(
                socket, {"type": "history", "conversation": named, "turns": conversation.turns}
            )
            return True
        if action == "forget":
            assert isinstance(named, str)
            del self.conversations[named]
            await self._send(socket, {"type": "forgotten", "conversation": named})
            return True
        if conversation is not None and conversation.socket is not socket:
            refusal = {"type": "error", "code": "not_attached", "message": "attach it first"}
            await self._send(socket, refusal)
            return True
        if action == "reset" and conversation is not None:
            conversation.turns = []
        for pause, reply in self.script(message):
            if pause:
                await asyncio.sleep(pause)
            if reply == CLOSE:
                await socket.close()
                return False
            if not _is_reply(reply):
                await self._send(socket, reply)
                continue
            if conversation is None:
                # The first message of a reply to a chat that named none: a new conversation.
                conversation = Conversation(secrets.token_urlsafe(24), socket=socket)
                self.conversations[conversation.id] = conversation
                await self._send(socket, {"type": "conversation", "id": conversation.id})
            if action == "chat" and conversation.running != message["prompt"]:
                conversation.running, conversation.deltas = message["prompt"], []
                conversation.interrupted = False
                self._latest = conversation
            await self._send_reply(conversation, reply)
        return True

    async def _attach(self, socket, conversation: Conversation, seq: int) -> None:
        left = conversation.socket
        conversation.socket = socket
        if left is not None and left is not socket and not left.closed:
            await self._send(left, {"type": "detached", "conversation": conversation.id})
        running = None if conversation.running is None else {"prompt": conversation.running}
        await self._send(
            socket,
            {
                "type": "attached",
                "conversation": conversation.id,
                "turns": conversation.turns,
                "reply": running,
                "interrupted": conversation.interrupted,
            },
        )
        for delta in conversation.deltas:
            if delta["seq"] > seq:
                await self._send(socket, delta)

    async def _send_reply(self, conversation: Conversation, reply: dict) -> None:
        reply = {**reply, "conversation": conversation.id}
        if reply["type"] == "delta":
            conversation.deltas.append(reply)
        elif reply["type"] != "status":
            self._end_reply(conversation)
        socket = conversation.socket
        if socket is not None and not socket.closed:  # else kept: an attach replays it
            await self._send(socket, reply)

    def _end_reply(self, conversation: Conversation) -> None:
        if conversation.running is None:
            return
        text = "".join(delta["text"] for delta in conversation.deltas)
        conversation.turns += [
            {"role": "user", "content": conversation.running},
            {"role": "assistant", "content": text},
        ]
        conversation.running, conversation.deltas = None, []

    async def _send(self, socket: web.WebSocketResponse, message: dict) -> None:
        if socket.closed:
            return
        frames = split_message(json.dumps(message))
        if len(frames) > 1:
            self.split.append(message["type"])
        for frame in frames:
            await socket.send_str(frame)


def done(reason: str = "end", *, completion_tokens: int = 9, **timing: float | None) -> dict:
    """A `done` message, with figures a test can recognise."""
    return {
        "type": "done",
        "reason": reason,
        "usage": {"prompt_tokens": 5, "completion_tokens": completion_tokens},
        "timing": {"init_ms": 0, "ttft_ms": 12, "tokens_per_s": 99.5, **timing},
    }


def reply_frames(*texts: str, end: dict | None = None, pause: float = 0) -> Frames:
    """A reply as the server sends it: `status` generating, a delta per text (each `pause`
    seconds after the one before), then `end`; without one it stays open for `push`."""
    frames: Frames = [(0.0, {"type": "status", "state": "generating"})]
    frames += [(pause, {"type": "delta", "text": t, "seq": n}) for n, t in enumerate(texts)]
    return frames + ([(0.0, end)] if end else [])


def on_chat(frames: Frames) -> Script:
    """A script that answers every chat with `frames`, and nothing else (not even `ping`)."""
    return lambda message: frames if message.get("action") == "chat" else []


def answering(reply: Callable[[dict], str] | str) -> Script:
    """A script that answers every chat with one reply (text, or a function of the message)
    and every `reset` as the server does."""

    def script(message: dict) -> Frames:
        if message.get("action") == "reset":
            return [(0, {"type": "reset", "stopped": False})]
        if message.get("action") != "chat":
            return []
        return reply_frames(reply(message) if callable(reply) else reply, end=done())

    return script


def eventually(check: Callable[[], bool], timeout: float = 10) -> None:
    """The server runs in another thread: wait for what the page sent to arrive."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the server never saw it"
        time.sleep(0.02)

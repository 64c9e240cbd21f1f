"""A scripted protocol server for page behaviour the real model cannot be made to produce.

It serves `web_client/` and answers each client message with canned protocol messages from
a script. It does NOT generate anything and no test that uses it claims to test generation:
it exists for a reply that carries markup (script injection), for refusals such as `busy`
at a chosen moment, for a reply held open until the test ends it (`push`), for a server
that goes silent or refuses handshakes, and for exact timings. Everything else runs
against the real local twin.

`config.json` is web_client/config.json's (the stage's caps as the file beside the page
has them) with this server's WebSocket URL, and any `config` given on top.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from aiohttp import WSMsgType, web

from offline.serving import Server

# The page under test; WEB_CLIENT_UNDER_TEST=<dir> serves another copy of it (an older
# page, to show that a test of a fix fails without the fix).
WEB_CLIENT_DIR = Path(
    os.environ.get("WEB_CLIENT_UNDER_TEST") or Path(__file__).resolve().parents[2] / "web_client"
)

# In a script, instead of a message: close the connection (as a dropped network would).
CLOSE = {"close": True}

# Frames to send back, each after an optional pause in seconds.
Frames = list[tuple[float, dict]]
# One client message in, the frames to send back.
Script = Callable[[dict], Frames]


class ScriptedChatServer:
    """Serves the page on http://127.0.0.1:PORT/ and a scripted WebSocket on /dev."""

    def __init__(self, script: Script, *, config: dict | None = None) -> None:
        self.script = script
        self.config = config or {}
        # While true, WebSocket handshakes are refused (503), as from a server that is down.
        self.refusing = False
        self.received: list[dict] = []
        self.handshakes: list[dict[str, str]] = []  # the query of each WebSocket handshake
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

    async def _push(self, message: dict) -> None:
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
            for pause, reply in self.script(message):
                if pause:
                    await asyncio.sleep(pause)
                if reply == CLOSE:
                    await socket.close()
                    return
                await socket.send_str(json.dumps(reply))


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
    frames = [(0.0, {"type": "status", "state": "generating"})]
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

"""A scripted protocol server for page behaviour the real model cannot be made to produce.

It serves `web_client/` and answers each client message with canned protocol messages from
a script. It does NOT generate anything and no test that uses it claims to test generation:
it exists for a reply that carries markup (script injection), for refusals such as `busy`
at a chosen moment, and for a reply held open until the test ends it (`push`). Everything
else runs against the real local twin.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from pathlib import Path

from aiohttp import WSMsgType, web

WEB_CLIENT_DIR = Path(__file__).resolve().parents[2] / "web_client"

# In a script, instead of a message: close the connection (as a dropped network would).
CLOSE = {"close": True}

# One client message in, the frames to send back (each after an optional pause in seconds).
Script = Callable[[dict], list[tuple[float, dict]]]


class ScriptedChatServer:
    """Serves the page on http://127.0.0.1:PORT/ and a scripted WebSocket on /dev."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.received: list[dict] = []
        self.handshakes: list[dict[str, str]] = []  # the query of each WebSocket handshake
        self._sockets: set[web.WebSocketResponse] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/dev"

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/", self._index)
        app.router.add_get("/config.json", self._config)
        app.router.add_get("/dev", self._socket)
        app.router.add_static("/", WEB_CLIENT_DIR)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _stop(self) -> None:
        # Close live sockets first: the runner would otherwise wait for their handlers.
        for socket in list(self._sockets):
            await socket.close()
        await self._runner.cleanup()

    def push(self, message: dict) -> None:
        """Send `message` now on every open socket, unasked (CLOSE closes them instead)."""
        asyncio.run_coroutine_threadsafe(self._push(message), self._loop).result(timeout=10)

    async def _push(self, message: dict) -> None:
        for socket in list(self._sockets):
            if message == CLOSE:
                await socket.close()
            else:
                await socket.send_str(json.dumps(message))

    async def _index(self, _request: web.Request) -> web.FileResponse:
        return web.FileResponse(WEB_CLIENT_DIR / "index.html")

    async def _config(self, _request: web.Request) -> web.Response:
        return web.json_response({"websocketUrl": self.ws_url})

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
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

"""aiohttp servers on one event loop in a background thread (the twin's, and tests').

    server = Server("127.0.0.1")
    server.start(setup)          # runs `await setup(app)` on the loop, app is the main app
    port = server.port           # setup calls `await server.serve_app(app, 0, main=True)`
    server.url("dev", scheme="ws")  # ws://HOST:PORT/dev
    server.run(coroutine)        # from any other thread
    server.stop(teardown)

Ports come from aiohttp's public `AppRunner.addresses`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from aiohttp import web

log = logging.getLogger("offline")

T = TypeVar("T")
Setup = Callable[[web.Application], Coroutine[Any, Any, Any]]
Teardown = Callable[[], Awaitable[None]]


class Server:
    def __init__(self, host: str = "127.0.0.1", *, client_max_size: int = 8 * 1024 * 1024) -> None:
        self.host = host
        self.port = 0
        self._client_max_size = client_max_size
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runners: list[web.AppRunner] = []

    def url(self, path: str = "", *, scheme: str = "http") -> str:
        """The main app's address: `url("dev", scheme="ws")` is ws://HOST:PORT/dev."""
        return f"{scheme}://{self.host}:{self.port}/{path}"

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "the server is not running"
        return self._loop

    def start(self, setup: Setup, *, timeout: float = 60) -> None:
        """Start the loop thread and run `setup(app)` there; its errors are raised here."""
        ready = threading.Event()
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=self._run, args=(loop, ready), daemon=True)
        self._thread.start()
        ready.wait()
        app = web.Application(client_max_size=self._client_max_size)
        asyncio.run_coroutine_threadsafe(setup(app), loop).result(timeout)

    def _run(self, loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        loop.run_forever()
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    async def serve_app(self, app: web.Application, port: int = 0, *, main: bool = False) -> int:
        """Serve `app` on `port` (0: a free one); the bound port."""
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2)
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(runner, self.host, port)
        await site.start()
        bound = int(runner.addresses[-1][1])
        if main:
            self.port = bound
        return bound

    def run(self, coro: Awaitable[T], timeout: float = 60) -> T:
        """Run a coroutine on the server's loop from another thread."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    def stop(self, teardown: Teardown | None = None) -> None:
        """Run `teardown`, close every app, stop the loop. Safe to call twice."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            self._loop = self._thread = None
            return

        async def close() -> None:
            if teardown is not None:
                try:
                    await teardown()
                except Exception:
                    log.exception("error while stopping")
            for runner in reversed(self._runners):
                await runner.cleanup()
            self._runners.clear()

        try:
            asyncio.run_coroutine_threadsafe(close(), loop).result(30)
        except Exception:
            log.exception("error while stopping the server")
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        self._loop = self._thread = None

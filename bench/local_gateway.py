"""A minimal WebSocket gateway with the local `@connections` API, for the per-token sender.

The comparison sender needs only what API Gateway gives it: a connection id and an
`@connections` endpoint that delivers each POST to the socket. This serves both from one
aiohttp server on a background thread, with `offline.connections_api` (the same code the
twin uses, with its `latency_ms` fault).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from aiohttp import web

from offline.connections_api import ConnectionRegistry, ConnectionsFaults, add_connections_routes
from offline.serving import Server

STAGE = "bench"


class _Peer:
    def __init__(self, ws: web.WebSocketResponse, connection_id: str) -> None:
        self.ws = ws
        self.connection_id = connection_id
        self.source_ip = "127.0.0.1"
        self.user_agent = "bench"
        self.connected_at = self.last_active_at = time.time()

    async def send_text(self, text: str) -> None:
        await self.ws.send_str(text)

    async def close(self) -> None:
        await self.ws.close()


class LocalGateway:
    """Start with `with LocalGateway() as gw:`; `gw.ws_url`, `gw.endpoint_url`."""

    def __init__(self) -> None:
        self.registry = ConnectionRegistry()
        self.faults = ConnectionsFaults()
        self._server = Server("127.0.0.1")

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        peer = _Peer(ws, uuid.uuid4().hex[:16])
        self.registry.add(peer)
        try:
            async for _ in ws:  # the client sends nothing; wait for it to close
                pass
        finally:
            self.registry.remove(peer.connection_id)
        return ws

    async def _setup(self, app: web.Application) -> None:
        app.router.add_get(f"/{STAGE}", self._ws)
        add_connections_routes(app, self.registry, stage=STAGE, faults=self.faults)
        await self._server.serve_app(app, 0, main=True)

    def __enter__(self) -> LocalGateway:
        self._server.start(self._setup, timeout=30)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.stop()

    @property
    def ws_url(self) -> str:
        return self._server.url(STAGE, scheme="ws")

    @property
    def endpoint_url(self) -> str:
        return self._server.url(STAGE)

    def wait_for_connection(self, known: set[str], timeout: float = 10.0) -> str:
        """The id of a connection that is not in `known` (the one just opened)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            fresh = set(self.registry.ids()) - known
            if fresh:
                return fresh.pop()
            time.sleep(0.005)
        raise TimeoutError("the WebSocket connection never registered")

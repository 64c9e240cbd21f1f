"""API Gateway's `@connections` management API, locally, on aiohttp.

The inference function streams its reply by POSTing to
`https://{domain}/{stage}/@connections/{connectionId}`. This module answers those calls
the way API Gateway does, so the unchanged boto3 `apigatewaymanagementapi` client (given
`endpoint_url="http://127.0.0.1:PORT/{stage}"`) works against it, including the parts
moto's version lacks: `410 GoneException` for a closed or unknown connection,
`413 PayloadTooLargeException` for a message over 128 KB, and a post over the 32 KB
frame closing the client's connection with 1009 (the gateway's peer enforces it).

Wire format (rest-json, as boto3's service model reads it): errors carry the
`x-amzn-ErrorType` header and a JSON `{"message": ...}` body; GET answers with the
model's wire names (`connectedAt`, `identity.sourceIp`, ...), which boto3 turns into
`ConnectedAt`, `Identity.SourceIp`, ...
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from aiohttp import web

from llambda.contract import MAX_MESSAGE_BYTES
from offline.trace import POST, Trace, maybe_span

log = logging.getLogger(__name__)

# API Gateway's limit on one @connections POST body (the service model's `Data.max`).
MAX_POST_BYTES = MAX_MESSAGE_BYTES

# The error type boto3 maps each status to (the service model's exception shapes).
_ERROR_TYPES = {
    403: "ForbiddenException",
    410: "GoneException",
    413: "PayloadTooLargeException",
    429: "LimitExceededException",
}


class Peer(Protocol):
    """One live WebSocket, as the gateway holds it."""

    connection_id: str
    source_ip: str
    user_agent: str
    connected_at: float  # epoch seconds
    last_active_at: float  # epoch seconds

    async def send_text(self, text: str) -> None: ...

    async def close(self) -> None: ...


class ConnectionRegistry:
    """Live connections by id; safe to use from the server's loop and from other threads."""

    def __init__(self) -> None:
        self._peers: dict[str, Peer] = {}
        self._lock = threading.Lock()

    def add(self, peer: Peer) -> None:
        with self._lock:
            self._peers[peer.connection_id] = peer

    def remove(self, connection_id: str) -> None:
        """Forget a connection; removing an unknown id is not an error."""
        with self._lock:
            self._peers.pop(connection_id, None)

    def get(self, connection_id: str) -> Peer | None:
        with self._lock:
            return self._peers.get(connection_id)

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._peers)


Authorize = Callable[[web.Request, str], Awaitable[web.Response | None]]


@dataclass
class ConnectionsFaults:
    """Faults the local API can be told to inject (mutable at run time).

    `latency_ms` is added to every call (a stand-in for the real network round trip);
    `fail_next` makes that many following calls fail with `fail_status`.
    """

    latency_ms: float = 0
    fail_next: int = 0
    fail_status: int = 500

    def take_failure(self) -> int | None:
        """The status to fail this call with, or None; counts the failure down."""
        if self.fail_next > 0:
            self.fail_next -= 1
            return self.fail_status
        return None


def add_connections_routes(
    app: web.Application,
    registry: ConnectionRegistry,
    *,
    stage: str,
    faults: ConnectionsFaults | None = None,
    authorize: Authorize | None = None,
    trace: Trace | None = None,
) -> None:
    """Serve `/{stage}/@connections/{id}` (POST, GET, DELETE) on `app`.

    `authorize(request, connection_id)` answers a call the caller may not make (IAM).
    """
    faults = faults if faults is not None else ConnectionsFaults()
    base = f"/{stage}/@connections/{{connection_id}}"

    async def preamble(request: web.Request) -> tuple[str, web.Response | None]:
        connection_id = request.match_info["connection_id"]
        if authorize is not None:
            denied = await authorize(request, connection_id)
            if denied is not None:
                return connection_id, denied
        if faults.latency_ms > 0:
            await asyncio.sleep(faults.latency_ms / 1000)
        status = faults.take_failure()
        if status is not None:
            return connection_id, _error(status, f"injected fault ({status})")
        return connection_id, None

    async def post(request: web.Request) -> web.Response:
        with maybe_span(trace, POST, request.headers.get("Content-Length", "")):
            return await deliver(request)

    async def deliver(request: web.Request) -> web.Response:
        connection_id, failed = await preamble(request)
        if failed is not None:
            return failed
        body = await request.read()
        if len(body) > MAX_POST_BYTES:
            return _error(413, f"Data of {len(body)} bytes exceeds {MAX_POST_BYTES} bytes")
        peer = registry.get(connection_id)
        if peer is None:
            return _gone(connection_id)
        try:
            await peer.send_text(body.decode("utf-8", errors="replace"))
        except Exception:  # a socket that closed under us is gone, as in API Gateway
            log.info("send to %s failed; reporting it gone", connection_id, exc_info=True)
            registry.remove(connection_id)
            return _gone(connection_id)
        return web.Response(status=200)

    async def get(request: web.Request) -> web.Response:
        connection_id, failed = await preamble(request)
        if failed is not None:
            return failed
        peer = registry.get(connection_id)
        if peer is None:
            return _gone(connection_id)
        return web.json_response(
            {
                "connectedAt": _iso(peer.connected_at),
                "identity": {"sourceIp": peer.source_ip, "userAgent": peer.user_agent},
                "lastActiveAt": _iso(peer.last_active_at),
            }
        )

    async def delete(request: web.Request) -> web.Response:
        connection_id, failed = await preamble(request)
        if failed is not None:
            return failed
        peer = registry.get(connection_id)
        if peer is None:
            return _gone(connection_id)
        registry.remove(connection_id)
        try:
            await peer.close()
        except Exception:  # already closing: the connection is gone either way
            log.info("close of %s failed", connection_id, exc_info=True)
        return web.Response(status=204)

    app.router.add_post(base, post)
    app.router.add_get(base, get)
    app.router.add_delete(base, delete)


def _gone(connection_id: str) -> web.Response:
    return _error(410, f"Connection {connection_id} is gone")


def _error(status: int, message: str) -> web.Response:
    error_type = _ERROR_TYPES.get(status, "InternalServerErrorException")
    return web.json_response(
        {"message": message}, status=status, headers={"x-amzn-ErrorType": error_type}
    )


def _iso(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, tz=UTC).isoformat(timespec="milliseconds")

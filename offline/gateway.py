"""API Gateway's WebSocket API, locally: handshake, routes, limits, `$disconnect`.

- `$connect`: the REQUEST authorizer (when configured) then the `$connect` route; a Deny
  refuses the handshake with 403, a `$connect` answer other than 200 with that status.
- Messages: route selection on `$request.body.action` with `$default` as fallback; each
  message invokes its route at once (concurrently, as API Gateway does: no ordering
  promise, nothing dropped). A failed integration answers the client with API Gateway's
  `{"message": "Internal server error", ...}`.
- Limits as API Gateway enforces them: a frame over 32 KB either way closes the
  connection with 1009 (a client's message is taken as one frame, as a browser sends it;
  a `@connections` post is sent as one frame), idle timeout and maximum connection
  duration (close 1001), stage throttling (rate and burst).
- `$disconnect` after every close, whoever closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from llambda.contract import (
    CLOSE_MESSAGE_TOO_BIG,
    IDLE_TIMEOUT_SECONDS,
    MAX_CONNECTION_SECONDS,
    MAX_FRAME_BYTES,
)
from offline import events
from offline.connections_api import ConnectionRegistry
from offline.lambda_function import InvokeResult
from offline.trace import FRAME, Trace

log = logging.getLogger("offline")

Invoke = Callable[[str, dict[str, Any]], Awaitable[InvokeResult]]


@dataclass(kw_only=True)
class GatewayLimits:
    """API Gateway's WebSocket quotas (configurable so tests can shrink them)."""

    max_frame_bytes: int = MAX_FRAME_BYTES
    idle_timeout_seconds: float = IDLE_TIMEOUT_SECONDS
    max_connection_seconds: float = MAX_CONNECTION_SECONDS
    integration_timeout_seconds: float = 29
    # Stage throttling, a token bucket shared by the stage (0 disables it)
    throttle_rate: float = 0.0
    throttle_burst: int = 0


@dataclass(kw_only=True)
class GatewayConfig:
    api: events.Api
    routes: dict[str, str]  # route key → function name
    route_selection_expression: str = "$request.body.action"
    authorizer: str | None = None  # function name of the $connect REQUEST authorizer
    # Where the authorizer's identity comes from, e.g. "route.request.querystring.token"
    identity_sources: tuple[str, ...] = ()
    route_responses: set[str] = field(default_factory=set)  # two-way routes
    limits: GatewayLimits = field(default_factory=GatewayLimits)


class _TokenBucket:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = float(burst)
        self.updated = time.monotonic()

    def take(self) -> bool:
        if self.rate <= 0:
            return True
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


# Told of every frame the API sends a client (connection id, text): the console's hook.
FrameHook = Callable[[str, str], None]


class GatewayPeer:
    """One live WebSocket as the `@connections` API sees it."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        conn: events.ConnectionInfo,
        on_frame: FrameHook,
        *,
        max_frame_bytes: int = MAX_FRAME_BYTES,
    ) -> None:
        self.ws = ws
        self.max_frame_bytes = max_frame_bytes
        self.closed_too_big = False
        self.connection_id = conn.connection_id
        self.source_ip = conn.source_ip
        self.user_agent = conn.user_agent
        self.connected_at = conn.connected_at_ms / 1000
        self.last_active_at = self.connected_at
        self.closed_by_api = False
        self.frames_sent = 0
        self._on_frame = on_frame

    async def send_text(self, text: str) -> None:
        if self.ws.closed:
            raise ConnectionResetError("the WebSocket is closed")
        size = len(text.encode("utf-8"))
        if size > self.max_frame_bytes:
            # API Gateway sends a post as one frame; one over its 32 KB closes the socket.
            self.closed_too_big = True
            await self.ws.close(code=CLOSE_MESSAGE_TOO_BIG, message=b"Message too big")
            raise ConnectionResetError(f"a frame of {size} bytes is over {self.max_frame_bytes}")
        await self.ws.send_str(text)
        self.last_active_at = time.time()
        self.frames_sent += 1
        self._on_frame(self.connection_id, text)

    async def close(self) -> None:
        self.closed_by_api = True
        await self.ws.close(code=WSCloseCode.OK, message=b"Connection closed by the API")


class WebSocketGateway:
    """Serves `/{stage}` as API Gateway's WebSocket endpoint."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        invoke: Invoke,
        registry: ConnectionRegistry,
        on_frame: FrameHook = lambda connection_id, text: None,
        trace: Trace | None = None,
    ) -> None:
        self.config = config
        self._on_frame = on_frame
        self._trace = trace
        self._invoke = invoke
        self.registry = registry
        self._bucket = _TokenBucket(config.limits.throttle_rate, config.limits.throttle_burst)
        self._tasks: set[asyncio.Task] = set()
        self._sockets: set[web.WebSocketResponse] = set()
        self.connections_total = 0

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(f"/{self.config.api.stage}", self.handle)

    async def close_all(self) -> None:
        for ws in list(self._sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"Going away")

    async def drain(self) -> None:
        """Wait for in-flight route invocations (used at shutdown)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)

    # -- handshake ------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        limits = self.config.limits
        ws = web.WebSocketResponse(
            max_msg_size=limits.max_frame_bytes, autoping=True, heartbeat=None
        )
        if not ws.can_prepare(request).ok:
            return web.Response(status=426, text="Upgrade Required")
        if not self._bucket.take():
            log.info("refused  %s  429 stage throttled", request.remote)
            return web.json_response({"message": "Too Many Requests"}, status=429)
        started = time.perf_counter()
        conn = events.ConnectionInfo(
            connection_id=events.new_id(),
            connected_at_ms=events.now_ms(),
            domain_name=request.host,
            source_ip=request.headers.get("X-Forwarded-For", request.remote or "127.0.0.1"),
            user_agent=request.headers.get("User-Agent", ""),
            headers=_headers(request),
            query=list(request.query.items()),
        )
        refusal = await self._authorize(conn)
        if refusal is None:
            refusal = await self._connect(conn)
        if refusal is not None:
            status, why = refusal
            log.info(
                "refused  %s  %d %s (%.0f ms)",
                conn.connection_id[:8],
                status,
                why,
                (time.perf_counter() - started) * 1000,
            )
            return web.json_response({"message": _status_message(status)}, status=status)

        peer = GatewayPeer(ws, conn, self._on_frame, max_frame_bytes=limits.max_frame_bytes)
        # Registered before the handshake answer goes out, so the connection can be
        # posted to as soon as the client sees it open.
        self.registry.add(peer)
        self._sockets.add(ws)
        try:
            await ws.prepare(request)
        except BaseException:
            self.registry.remove(conn.connection_id)
            self._sockets.discard(ws)
            raise
        self.connections_total += 1
        log.info(
            "connect  %s  from %s (%.0f ms)%s",
            conn.connection_id[:8],
            conn.source_ip,
            (time.perf_counter() - started) * 1000,
            f" origin {request.headers['Origin']}" if "Origin" in request.headers else "",
        )
        close_code, reason = int(WSCloseCode.OK), ""
        try:
            close_code, reason = await self._serve(ws, peer, conn)
        finally:
            self._sockets.discard(ws)
            self.registry.remove(conn.connection_id)
            if not ws.closed:
                await ws.close()
            self._spawn(self._disconnect(conn, peer, close_code, reason))
        return ws

    async def _authorize(self, conn: events.ConnectionInfo) -> tuple[int, str] | None:
        name = self.config.authorizer
        if name is None:
            return None
        # Where an identity source is absent API Gateway answers 401 itself, without
        # calling the authorizer.
        missing = [s for s in self.config.identity_sources if not _identity_present(s, conn)]
        if missing:
            return 401, f"identity source missing: {', '.join(missing)}"
        event = events.authorizer_event(self.config.api, conn, request_id=events.new_id())
        result = await self._invoke(name, event)
        if result.function_error:
            error = result.json() or {}
            if error.get("errorMessage") == "Unauthorized":  # the documented way to say 401
                return 401, "authorizer: Unauthorized"
            return 500, f"authorizer failed: {error.get('errorType')}"
        policy = result.json()
        method_arn = self.config.api.method_arn("$connect")
        if not events.policy_allows(policy, method_arn):
            return 403, "authorizer denied"
        context = {k: v for k, v in (policy.get("context") or {}).items()}
        conn.authorizer = {
            "principalId": policy.get("principalId", ""),
            "integrationLatency": round(result.duration_ms),
            **context,
        }
        return None

    async def _connect(self, conn: events.ConnectionInfo) -> tuple[int, str] | None:
        name = self.config.routes.get("$connect")
        if name is None:
            return None
        event = events.connect_event(self.config.api, conn, request_id=events.new_id())
        result = await self._invoke(name, event)
        if result.function_error:
            return 500, "$connect failed"
        answer = result.json()
        status = answer.get("statusCode", 200) if isinstance(answer, dict) else 200
        if status != 200:
            return int(status), "$connect refused"
        return None

    # -- messages -------------------------------------------------------------------------
    async def _serve(
        self, ws: web.WebSocketResponse, peer: GatewayPeer, conn: events.ConnectionInfo
    ) -> tuple[int, str]:
        limits = self.config.limits
        connected = time.monotonic()
        last_message = connected
        while True:
            now = time.monotonic()
            idle_left = limits.idle_timeout_seconds - (now - last_message)
            life_left = limits.max_connection_seconds - (now - connected)
            try:
                msg = await ws.receive(timeout=max(0.001, min(idle_left, life_left)))
            except TimeoutError:
                why = "idle timeout" if idle_left <= life_left else "maximum connection duration"
                await ws.close(code=WSCloseCode.GOING_AWAY, message=b"Going away")
                return WSCloseCode.GOING_AWAY, f"Going away ({why})"
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                if self._trace is not None:
                    self._trace.add(FRAME, conn.connection_id, time.perf_counter())
                last_message = time.monotonic()
                peer.last_active_at = time.time()
                self._spawn(self._message(peer, conn, msg.data))
                continue
            if msg.type == WSMsgType.ERROR:
                code = ws.close_code or WSCloseCode.INTERNAL_ERROR
                if code == WSCloseCode.MESSAGE_TOO_BIG:
                    log.info("closed   %s  1009 message too big", conn.connection_id[:8])
                    return code, "Message too big"
                return code, f"Error: {msg.data}"
            # CLOSE / CLOSING / CLOSED
            code = ws.close_code if ws.close_code is not None else 1005
            if peer.closed_by_api:
                return code, "Connection deleted via @connections"
            if peer.closed_too_big:
                log.info("closed   %s  1009 a post over the frame size", conn.connection_id[:8])
                return code, "Message too big"
            return code, "Client-side close frame status not set" if code == 1005 else ""

    async def _message(
        self, peer: GatewayPeer, conn: events.ConnectionInfo, data: str | bytes
    ) -> None:
        request_id = events.new_id()
        if not self._bucket.take():
            await self._tell(peer, "Too Many Requests", conn, request_id)
            return
        route_key = self._select_route(data)
        function = self.config.routes.get(route_key)
        if function is None:
            await self._tell(peer, "Forbidden", conn, request_id)
            return
        event = events.message_event(
            self.config.api,
            conn,
            route_key=route_key,
            data=data,
            request_id=request_id,
            message_id=events.new_id(),
        )
        try:
            result = await asyncio.wait_for(
                asyncio.shield(self._invoke(function, event)),
                self.config.limits.integration_timeout_seconds,
            )
        except TimeoutError:
            log.warning("route    %s  %s: integration timed out", conn.connection_id[:8], route_key)
            await self._tell(peer, "Endpoint request timed out", conn, request_id)
            return
        if result.function_error:
            log.warning("route    %s  %s: integration failed", conn.connection_id[:8], route_key)
            await self._tell(peer, "Internal server error", conn, request_id)
            return
        if route_key in self.config.route_responses:
            answer = result.json()
            body = answer.get("body") if isinstance(answer, dict) else None
            if body is not None:
                await self._send_quietly(peer, body if isinstance(body, str) else json.dumps(body))

    def _select_route(self, data: str | bytes) -> str:
        """The route selection expression (`$request.body.<path>`), else `$default`."""
        expression = self.config.route_selection_expression
        if isinstance(data, str) and expression.startswith("$request.body."):
            try:
                value: Any = json.loads(data)
            except ValueError:
                value = None
            for key in expression.removeprefix("$request.body.").split("."):
                value = value.get(key) if isinstance(value, dict) else None
            routable = isinstance(value, str) and not value.startswith("$")
            if routable and value in self.config.routes:
                return value
        return "$default"

    async def _tell(
        self, peer: GatewayPeer, message: str, conn: events.ConnectionInfo, request_id: str
    ) -> None:
        """API Gateway's own error message to the client."""
        text = json.dumps(
            {"message": message, "connectionId": conn.connection_id, "requestId": request_id}
        )
        await self._send_quietly(peer, text)

    @staticmethod
    async def _send_quietly(peer: GatewayPeer, text: str) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await peer.send_text(text)

    async def _disconnect(
        self, conn: events.ConnectionInfo, peer: GatewayPeer, code: int, reason: str
    ) -> None:
        lived = time.time() - peer.connected_at
        log.info(
            "close    %s  code %s%s, %d frames sent, %.1f s",
            conn.connection_id[:8],
            code,
            f" ({reason})" if reason else "",
            peer.frames_sent,
            lived,
        )
        name = self.config.routes.get("$disconnect")
        if name is None:
            return
        event = events.disconnect_event(
            self.config.api,
            conn,
            request_id=events.new_id(),
            status_code=int(code),
            reason=reason,
        )
        result = await self._invoke(name, event)
        if result.function_error:
            log.warning("route    %s  $disconnect failed", conn.connection_id[:8])

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _identity_present(source: str, conn: events.ConnectionInfo) -> bool:
    """Whether `route.request.querystring.X` / `route.request.header.X` has a value."""
    kind, _, name = source.removeprefix("route.request.").partition(".")
    if kind == "querystring":
        return any(key == name and value for key, value in conn.query)
    if kind == "header":
        return any(key.lower() == name.lower() and value for key, value in conn.headers)
    return True  # context and stage variables are always there


def _headers(request: web.Request) -> list[tuple[str, str]]:
    """The handshake's headers plus the ones API Gateway adds in front of the integration."""
    pairs = [(k, v) for k, v in request.headers.items() if k.lower() != "x-forwarded-for"]
    pairs.append(("X-Forwarded-For", request.remote or "127.0.0.1"))
    pairs.append(("X-Forwarded-Port", str(request.url.port or 80)))
    pairs.append(("X-Forwarded-Proto", request.scheme))
    return pairs


def _status_message(status: int) -> str:
    return {401: "Unauthorized", 403: "Forbidden", 429: "Too Many Requests"}.get(
        status, "Internal server error" if status >= 500 else "Refused"
    )

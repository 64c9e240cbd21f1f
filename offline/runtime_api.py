"""Lambda's Runtime API for one execution environment, for an image whose entry point is
its own runtime (docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html).

The process is started with `AWS_LAMBDA_RUNTIME_API=127.0.0.1:<port>` and asks
`GET /2018-06-01/runtime/invocation/next` for work; its first such request ends its init
phase. It answers with `POST .../invocation/<id>/response` (whole, or streamed when it sends
`Lambda-Runtime-Function-Response-Mode: streaming` with chunked transfer encoding, an error
then arriving in the `Lambda-Runtime-Function-Error-Type`/`-Body` trailers), or
`POST .../invocation/<id>/error`; an init failure is `POST /runtime/init/error`.

A small HTTP/1.1 server of its own (asyncio streams): it must see chunk boundaries and
trailers as they arrive, which higher-level servers hide.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

PREFIX = "/2018-06-01/runtime"
STREAMING = "streaming"
MAX_HEADER_BYTES = 64 * 1024


@dataclass
class Invocation:
    """One event handed to the runtime, and how its answer comes back."""

    request_id: str
    payload: bytes
    deadline_ms: int
    function_arn: str
    # Called with each piece of a streamed body as it arrives (None: buffer it).
    on_chunk: Callable[[bytes], Awaitable[None]] | None = None
    # Resolved with {"ok": True, "payload"} or {"ok": False, "error"}; a stream resolves
    # with {"ok": True, "streamed": True} or its trailers' error.
    result: asyncio.Future = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    _writer: asyncio.StreamWriter | None = None
    was_cut: bool = False
    # The Content-Type of the runtime's answer (a stream's tells whether a prelude leads).
    content_type: str = ""

    def cut(self) -> None:
        """The reader of a streamed answer went away: close the runtime's connection. The
        invocation ends when the runtime asks for its next one (the instance is busy
        until then, as in Lambda)."""
        self.was_cut = True
        if self._writer is not None:
            self._writer.close()


class RuntimeApi:
    """The Runtime API of one instance: serve it, `submit` invocations, await answers."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._host = host
        self._server: asyncio.Server | None = None
        self._pending: asyncio.Queue[Invocation] = asyncio.Queue()
        self._running: dict[str, Invocation] = {}
        # Cut streams, finished when the runtime next asks for work.
        self._cut: list[Invocation] = []
        self._connections: set[asyncio.Task] = set()
        self.first_next: asyncio.Future = asyncio.get_running_loop().create_future()
        self.init_error: dict[str, Any] | None = None

    async def start(self, sock: socket.socket | None = None) -> str:
        """Serve on `sock` (already listening) or on a free port; the address to give."""
        if sock is not None:
            self._server = await asyncio.start_server(self._serve, sock=sock)
        else:
            self._server = await asyncio.start_server(self._serve, self._host, 0)
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"{host}:{port}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1)
        for invocation in self._running.values():
            invocation.cut()
        for task in list(self._connections):
            task.cancel()

    def submit(self, invocation: Invocation) -> None:
        self._pending.put_nowait(invocation)

    # -- HTTP ---------------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
            task.add_done_callback(self._connections.discard)
        try:
            while True:
                request = await _read_head(reader)
                if request is None:
                    return
                method, path, headers = request
                if not await self._route(method, path, headers, reader, writer):
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ValueError, asyncio.CancelledError):
            return
        finally:
            with contextlib.suppress(RuntimeError):  # the loop may be closing
                writer.close()

    async def _route(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        """Answer one request; False when the connection is done."""
        if method == "GET" and path == f"{PREFIX}/invocation/next":
            if not self.first_next.done():
                self.first_next.set_result(None)
            while self._cut:
                ended = self._cut.pop()
                if not ended.result.done():
                    ended.result.set_result({"ok": True, "streamed": True, "cut": True})
            invocation = await self._pending.get()
            self._running[invocation.request_id] = invocation
            _respond(
                writer,
                200,
                invocation.payload,
                {
                    "Content-Type": "application/json",
                    "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
                    "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
                    "Lambda-Runtime-Invoked-Function-Arn": invocation.function_arn,
                },
            )
            await writer.drain()
            return True
        if method == "POST" and path == f"{PREFIX}/init/error":
            body, _ = await _read_body(reader, headers, None)
            self.init_error = _error_of(body, headers.get("lambda-runtime-function-error-type"))
            if not self.first_next.done():
                self.first_next.set_result(None)
            _respond(writer, 202, b'{"status":"OK"}')
            await writer.drain()
            return True
        parts = path.removeprefix(f"{PREFIX}/invocation/").split("/")
        if method != "POST" or len(parts) != 2 or parts[1] not in ("response", "error"):
            _respond(writer, 404, b'{"errorType":"NotFound"}')
            await writer.drain()
            return True
        answered = self._running.pop(parts[0], None)
        if answered is None:
            body, _ = await _read_body(reader, headers, None)
            _respond(writer, 400, b'{"errorType":"InvalidRequestID"}')
            await writer.drain()
            return True
        invocation = answered
        streaming = headers.get("lambda-runtime-function-response-mode") == STREAMING
        invocation._writer = writer
        invocation.content_type = headers.get("content-type", "")
        on_chunk = invocation.on_chunk if streaming else None
        try:
            body, trailers = await _read_body(reader, headers, on_chunk)
        except (ConnectionError, asyncio.IncompleteReadError):
            if invocation.was_cut:
                self._cut.append(invocation)
            elif not invocation.result.done():
                invocation.result.set_exception(ConnectionError("the runtime closed its answer"))
            return False
        if parts[1] == "error":
            outcome = {
                "ok": False,
                "error": _error_of(body, headers.get("lambda-runtime-function-error-type")),
            }
        elif streaming and "lambda-runtime-function-error-type" in trailers:
            encoded = trailers.get("lambda-runtime-function-error-body", "")
            outcome = {
                "ok": False,
                "streamed": True,
                "error": _error_of(
                    base64.b64decode(encoded) if encoded else b"",
                    trailers["lambda-runtime-function-error-type"],
                ),
            }
        elif streaming:
            outcome = {"ok": True, "streamed": True}
        else:
            outcome = {"ok": True, "payload": body.decode("utf-8", errors="replace")}
        if not invocation.result.done():
            invocation.result.set_result(outcome)
        _respond(writer, 202, b'{"status":"OK"}')
        await writer.drain()
        return True


def _error_of(body: bytes, error_type: str | None) -> dict[str, Any]:
    try:
        error = json.loads(body) if body else {}
    except ValueError:
        error = {}
    if not isinstance(error, dict):
        error = {}
    error.setdefault("errorMessage", body.decode("utf-8", errors="replace"))
    error.setdefault("errorType", error_type or "Unhandled")
    return error


async def _read_head(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str]] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    except asyncio.LimitOverrunError as error:
        raise ValueError("request head too large") from error
    if len(head) > MAX_HEADER_BYTES:
        raise ValueError("request head too large")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    return method, path, _headers(lines[1:])


def _headers(lines: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in lines:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return headers


async def _read_body(
    reader: asyncio.StreamReader,
    headers: dict[str, str],
    on_chunk: Callable[[bytes], Awaitable[None]] | None,
) -> tuple[bytes, dict[str, str]]:
    """The body (empty when streamed to `on_chunk`) and the trailers."""
    if headers.get("transfer-encoding", "").lower() != "chunked":
        body = await reader.readexactly(int(headers.get("content-length") or 0))
        if on_chunk is not None and body:
            await on_chunk(body)
            return b"", {}
        return body, {}
    kept = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            break
        data = await reader.readexactly(size)
        await reader.readexactly(2)
        if on_chunk is not None:
            await on_chunk(data)
        else:
            kept += data
    trailer_lines = []
    while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
        trailer_lines.append(line.decode("latin-1").strip())
    return bytes(kept), _headers(trailer_lines)


def _respond(
    writer: asyncio.StreamWriter, status: int, body: bytes, headers: dict[str, str] | None = None
) -> None:
    lines = [f"HTTP/1.1 {status} {'OK' if status < 300 else 'Error'}"]
    for name, value in {**(headers or {}), "Content-Length": str(len(body))}.items():
        lines.append(f"{name}: {value}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)

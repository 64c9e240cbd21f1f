"""One execution environment of an image whose ENTRYPOINT is its own runtime: the
process talks to Lambda's Runtime API (`offline.runtime_api`), not to the twin's worker
protocol. The same interface as `offline.worker_process.WorkerProcess`, so the instance
pool and the function treat both alike; `call` may also stream (`on_chunk`).

Only a Python entry point is run (`python3 -m MODULE ARGS...`, with the image's CMD after
it, as Docker joins them): the twin has this machine's Python and nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from offline.runtime_api import Invocation, RuntimeApi
from offline.worker_process import WorkerGone, describe_exit

BOOTSTRAP = Path(__file__).resolve().parent / "runtime_bootstrap.py"
_PYTHON = re.compile(r"^(/var/lang/bin/|/usr/bin/|/usr/local/bin/)?python3?(\.[0-9]+)?$")

StreamSink = Callable[[bytes, str], Awaitable[None]]


class UnsupportedEntrypoint(Exception):
    pass


def python_module_command(entrypoint: Sequence[str]) -> list[str]:
    """`-m MODULE ARGS...` from an entry point that runs a Python module."""
    if len(entrypoint) < 3 or not _PYTHON.match(entrypoint[0]) or entrypoint[1] != "-m":
        raise UnsupportedEntrypoint(
            f"ENTRYPOINT {list(entrypoint)}: the twin runs an image's own runtime only as "
            "`python3 -m MODULE ...`"
        )
    return list(entrypoint[1:])


class RuntimeApiWorker:
    """A started runtime process and its Runtime API; `connect` waits for its init."""

    def __init__(self, proc: subprocess.Popen, sock: socket.socket, *, tag: str = "") -> None:
        self.proc = proc
        self.pid = proc.pid
        self._sock = sock
        self._api: RuntimeApi | None = None
        self._exited: asyncio.Future | None = None
        self.init_ms = 0.0
        self.invocations = 0
        self.alive = True
        self.tag = tag

    @classmethod
    def spawn(
        cls,
        *,
        entrypoint: Sequence[str],
        code_paths: Sequence[str],
        environment: Mapping[str, str],
        cwd: str,
        tag: str = "",
    ) -> RuntimeApiWorker:
        module_command = python_module_command(entrypoint)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        sock.setblocking(False)
        address = f"127.0.0.1:{sock.getsockname()[1]}"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-I",
                "-S",
                "-u",
                str(BOOTSTRAP),
                json.dumps(list(code_paths)),
                *module_command,
            ],
            env={**environment, "AWS_LAMBDA_RUNTIME_API": address},
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        return cls(proc, sock, tag=tag)

    async def connect(self, timeout: float) -> dict[str, Any]:
        """Ready once the runtime first asks for an invocation; or its init error."""
        self._api = RuntimeApi()
        await self._api.start(self._sock)
        self._exited = asyncio.ensure_future(asyncio.to_thread(self.proc.wait))
        done, _ = await asyncio.wait(
            {self._exited, asyncio.ensure_future(asyncio.shield(self._api.first_next))},
            timeout=timeout,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if not done:
            raise TimeoutError
        if self._api.init_error is not None:
            return {"ready": False, "error": self._api.init_error}
        if self._exited.done():
            raise WorkerGone(self.exit_description())
        return {"ready": True}

    async def call(
        self,
        request: dict[str, Any],
        timeout: float,
        *,
        on_chunk: StreamSink | None = None,
        cut: asyncio.Event | None = None,
    ) -> dict[str, Any]:
        """One invocation; a streamed answer goes to `on_chunk(data, content_type)` as it
        arrives, and setting `cut` closes the stream (its reader went away)."""
        assert self._api is not None and self._exited is not None
        invocation = Invocation(
            request_id=request["requestId"],
            payload=request["payload"].encode(),
            deadline_ms=request["deadlineMs"],
            function_arn=request["functionArn"],
        )
        if on_chunk is not None:

            async def sink(data: bytes) -> None:
                await on_chunk(data, invocation.content_type)

            invocation.on_chunk = sink
        self._api.submit(invocation)
        self.invocations += 1
        waits = {invocation.result, self._exited}
        cutter = None
        if cut is not None:
            cutter = asyncio.ensure_future(cut.wait())
            cutter.add_done_callback(lambda _: invocation.cut())
        try:
            done, _ = await asyncio.wait(
                waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            if cutter is not None:
                cutter.cancel()
        if invocation.result in done:
            return {"requestId": invocation.request_id, **invocation.result.result()}
        if self._exited in done:
            raise WorkerGone(self.exit_description())
        raise TimeoutError

    def exit_description(self) -> str:
        return describe_exit(self.proc)

    def kill(self) -> None:
        self.alive = False
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self._close()

    def _close(self) -> None:
        if self._api is not None:
            self._closing = asyncio.ensure_future(self._api.close())
        else:
            self._sock.close()

    async def stop(self) -> None:
        self.alive = False
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        for _ in range(20):
            if self.proc.poll() is not None:
                break
            await asyncio.sleep(0.05)
        else:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(self.proc.wait)
        if self._api is not None:
            await self._api.close()

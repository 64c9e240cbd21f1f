"""One execution environment, seen from the twin: a child process and its control socket.

The child (`offline/lambda_worker.py`) starts isolated as Lambda isolates a function:
`python -I -S` (no site-packages, no `.pth` files, no user site, no `PYTHONPATH`, not
even the folder of the script), with `sys.path` set to exactly the function's code, its
layers and the runtime's own packages, then the standard library. A handler that imports
what its artifact does not carry fails at init here as it would in Lambda.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import struct
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

WORKER_SCRIPT = Path(__file__).resolve().parent / "lambda_worker.py"


class WorkerGone(Exception):
    """The process ended or closed its socket."""


class InitFailed(Exception):
    """The init phase failed; `error` is what Lambda reports to the invocation."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("errorMessage"))
        self.error = error


class WorkerProcess:
    """A started child process; `connect` waits for the end of its init phase."""

    def __init__(self, proc: subprocess.Popen, sock: socket.socket, *, tag: str = "") -> None:
        self.proc = proc
        self.pid = proc.pid
        self._sock = sock
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.init_ms = 0.0
        self.invocations = 0
        self.alive = True
        # Which invocations may use this instance: "" for any, or the alias whose
        # provisioned concurrency started it.
        self.tag = tag

    @classmethod
    def spawn(
        cls,
        *,
        handler: str,
        code_paths: Sequence[str],
        environment: Mapping[str, str],
        cwd: str,
        tag: str = "",
    ) -> WorkerProcess:
        parent_sock, child_sock = socket.socketpair()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-I",
                "-S",
                "-u",  # -I ignores PYTHONUNBUFFERED: the function's logs stream as Lambda's do
                str(WORKER_SCRIPT),
                str(child_sock.fileno()),
                handler,
                json.dumps(list(code_paths)),
            ],
            env=dict(environment),
            cwd=cwd,
            pass_fds=(child_sock.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        child_sock.close()
        return cls(proc, parent_sock, tag=tag)

    async def connect(self, timeout: float) -> dict[str, Any]:
        """The child's first frame: ready, or the init error."""
        self._reader, self._writer = await asyncio.open_connection(sock=self._sock)
        return await asyncio.wait_for(self._read(), timeout)

    async def _read(self) -> dict[str, Any]:
        assert self._reader is not None
        try:
            header = await self._reader.readexactly(4)
            (size,) = struct.unpack(">I", header)
            return json.loads(await self._reader.readexactly(size))
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise WorkerGone(str(exc)) from exc

    async def call(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        assert self._writer is not None
        data = json.dumps(request).encode()
        self._writer.write(struct.pack(">I", len(data)) + data)
        await self._writer.drain()
        self.invocations += 1
        return await asyncio.wait_for(self._read(), timeout)

    def exit_description(self) -> str:
        return describe_exit(self.proc)

    def kill(self) -> None:
        self.alive = False
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self._close_socket()

    def _close_socket(self) -> None:
        if self._writer is not None:
            self._writer.close()
        else:
            self._sock.close()

    async def stop(self) -> None:
        """Close the control socket (the worker exits on EOF), then make sure it is gone."""
        self.alive = False
        self._close_socket()
        for _ in range(20):
            if self.proc.poll() is not None:
                return
            await asyncio.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(self.proc.wait)


def describe_exit(proc: subprocess.Popen[bytes]) -> str:
    """Lambda's words for how a process ended (`exit status 1`, `signal: killed`)."""
    code = proc.poll()
    if code is not None and code < 0:
        return f"signal: {signal.Signals(-code).name}"
    return f"exit status {code}"

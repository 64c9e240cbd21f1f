"""One Lambda execution environment: a child process that runs one function's handler.

Started by `offline.worker_process` as `python -I -S lambda_worker.py FD HANDLER PATHS`,
where PATHS (JSON) is the function's whole `sys.path` before the standard library: its
code, its layers, the runtime's packages. Like a Lambda runtime it imports the handler
module once (the init phase, module state kept), then serves invocations one at a time
for as long as it lives (warm reuse).

Frames on the inherited socket (FD) are a 4-byte big-endian length plus JSON:
  parent → worker: {"requestId", "payload", "deadlineMs", "functionArn"}
  worker → parent: {"ready": true, "initMs"} once, then per invocation
                   {"requestId", "ok": true, "payload"} or {"requestId", "ok": false, "error"}
Only the standard library is imported here, so the handler's imports are all its own.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from typing import Any


class LambdaContext:
    """The context object Lambda passes to a Python handler (the attributes handlers use)."""

    def __init__(self, *, request_id: str, deadline_ms: int, function_arn: str) -> None:
        self.aws_request_id = request_id
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = function_arn
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _send(sock: socket.socket, message: dict[str, Any]) -> None:
    data = json.dumps(message).encode()
    sock.sendall(struct.pack(">I", len(data)) + data)


def _recv(stream: Any) -> dict[str, Any] | None:
    header = stream.read(4)
    if len(header) < 4:
        return None
    (size,) = struct.unpack(">I", header)
    return json.loads(stream.read(size))


def _error(exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    return {
        "errorMessage": str(exc),
        "errorType": error_type or type(exc).__name__,
        "requestId": "",
        "stackTrace": traceback.format_tb(exc.__traceback__),
    }


def _watch_parent() -> None:
    """Exit when the parent dies, however it died (even SIGKILL): no orphaned workers."""
    parent = os.getppid()
    while True:
        if os.getppid() != parent:
            os._exit(1)
        time.sleep(0.5)


def main(argv: list[str]) -> int:
    fd, handler_path = int(argv[0]), argv[1]
    # The function's path, in Lambda's order, ahead of the standard library only.
    sys.path[:0] = json.loads(argv[2])
    # Ctrl-C reaches the whole process group; the parent decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, daemon=True, name="parent-watch").start()
    sock = socket.socket(fileno=fd)
    stream = sock.makefile("rb")

    started = time.perf_counter()
    module_name, _, function_name = handler_path.rpartition(".")
    try:
        handler = getattr(importlib.import_module(module_name), function_name)
    except Exception as exc:  # reported to the first invocation, as Lambda does
        kind = "Runtime.ImportModuleError" if isinstance(exc, ImportError) else None
        init_error = _error(exc, kind)
        init_error["errorMessage"] = f"Unable to import module '{module_name}': {exc}"
        _send(sock, {"ready": False, "error": init_error})
        return 1
    _send(sock, {"ready": True, "initMs": round((time.perf_counter() - started) * 1000, 1)})

    while True:
        request = _recv(stream)
        if request is None:  # the parent closed the socket: shut down
            return 0
        context = LambdaContext(
            request_id=request["requestId"],
            deadline_ms=request["deadlineMs"],
            function_arn=request["functionArn"],
        )
        try:
            event = json.loads(request["payload"]) if request["payload"] else {}
            result = handler(event, context)
            try:
                payload = json.dumps(result)
            except (TypeError, ValueError) as exc:
                raise _MarshalError(f"Unable to marshal response: {exc}") from exc
            reply = {"requestId": request["requestId"], "ok": True, "payload": payload}
        except _MarshalError as exc:
            reply = {"requestId": request["requestId"], "ok": False}
            reply["error"] = _error(exc, "Runtime.MarshalError")
        except Exception as exc:
            reply = {"requestId": request["requestId"], "ok": False, "error": _error(exc)}
            reply["error"]["requestId"] = request["requestId"]
            traceback.print_exc()
        sys.stdout.flush()
        sys.stderr.flush()
        _send(sock, reply)


class _MarshalError(Exception):
    pass


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

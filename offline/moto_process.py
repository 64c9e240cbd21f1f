"""moto's server (DynamoDB, Secrets Manager) in its own process on a free loopback port.

A separate process keeps its state apart from any other moto in the test process and its
request handling off the twin's interpreter. `MotoProcess` starts it and reads the port
it prints; the child exits when its stdin closes or its parent dies.

DynamoDB applies each write atomically (a conditional UpdateItem's check and change are
one step); moto's threaded server runs requests side by side on shared state, so two
concurrent updates of one item can both pass a check or lose an ADD. The child serves
DynamoDB's requests one at a time, as DynamoDB would see them ordered.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
import time
from typing import Any


class MotoProcess:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self._proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "offline.moto_process", self.host],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self._proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = ""
        while time.monotonic() < deadline:
            line = self._proc.stdout.readline()
            if line.startswith("port "):
                self.port = int(line.split()[1])
                return
            if not line and self._proc.poll() is not None:
                break
        self.stop()
        raise RuntimeError(f"moto's server did not start (last output: {line!r})")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(BrokenPipeError, OSError):
            assert proc.stdin is not None
            proc.stdin.close()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def one_dynamodb_request_at_a_time(app: Any) -> Any:
    """`app` (WSGI) with DynamoDB's requests (X-Amz-Target DynamoDB_…) serialized."""
    lock = threading.Lock()

    def serve(environ: dict[str, Any], start_response: Any) -> Any:
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            return app(environ, start_response)
        with lock:
            return list(app(environ, start_response))

    return serve


def _main() -> None:
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = one_dynamodb_request_at_a_time(DomainDispatcherApplication(create_backend_app))
    server = make_server(sys.argv[1], 0, app, threaded=True, request_handler=MotoRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"port {server.server_address[1]}", flush=True)
    parent = os.getppid()

    def watch_parent() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch_parent, daemon=True).start()
    sys.stdin.read()  # returns when the parent closes our stdin (or dies)
    server.shutdown()


if __name__ == "__main__":
    _main()

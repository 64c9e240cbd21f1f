"""A TCP forwarder the tests can break, as a network would: `cut()` resets every
connection through it at once (no WebSocket close frame either way); `freeze()` makes
them go silent without closing anything, as a dead mobile link does. Connections made
afterwards go through untouched."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from dataclasses import dataclass, field


@dataclass
class _Link:
    client: socket.socket
    upstream: socket.socket
    frozen: threading.Event = field(default_factory=threading.Event)


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.accepted = 0
        self._links: list[_Link] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True, name="proxy-accept").start()

    @classmethod
    def before(cls, ws_url: str) -> TcpProxy:
        host, port = ws_url.split("/")[2].rsplit(":", 1)
        return cls(host, int(port))

    def url(self, ws_url: str) -> str:
        """`ws_url` (the target's) as reached through this proxy."""
        return f"ws://127.0.0.1:{self.port}/{ws_url.split('/', 3)[3]}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            link = _Link(client, upstream)
            with self._lock:
                self.accepted += 1
                self._links.append(link)
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(link, src, dst), daemon=True).start()

    def cut(self) -> None:
        """Reset every live connection (RST to both ends)."""
        with self._lock:
            links, self._links = self._links, []
        for link in links:
            for sock in (link.client, link.upstream):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    # shutdown wakes the pump blocked in recv(): a close alone would wait
                    # for it, and the peers would hear nothing until then.
                    sock.shutdown(socket.SHUT_RDWR)
                    sock.close()

    def freeze(self) -> None:
        """From now on, swallow whatever either end of a live connection sends."""
        with self._lock:
            for link in self._links:
                link.frozen.set()

    def close(self) -> None:
        self._listener.close()
        self.cut()


def _pump(link: _Link, src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            if not link.frozen.is_set():
                dst.sendall(data)
        if not link.frozen.is_set():
            dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass

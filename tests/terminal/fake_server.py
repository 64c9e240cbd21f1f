"""A scripted stand-in for llambda's server, speaking docs/protocol.md's conversation part.

Its replies are canned words, not a model: it tests how the client handles the protocol
(ids, seq, attach, drops), never generation. The twin's tests do that with the real model.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.sync.server import Server, ServerConnection, serve

# A client that drops mid-frame is what these tests do on purpose: not worth a traceback.
QUIET = logging.getLogger("tests.terminal.fake_server")
QUIET.setLevel(logging.CRITICAL)
WORDS = tuple(f"word{n} " for n in range(12))


@dataclass
class Reply:
    prompt: str
    deltas: list[dict[str, Any]] = field(default_factory=list)
    stopped: threading.Event = field(default_factory=threading.Event)


@dataclass
class Conversation:
    id: str
    turns: list[dict[str, str]] = field(default_factory=list)
    attached: ServerConnection | None = None
    reply: Reply | None = None


class FakeServer:
    """`url` is ws://127.0.0.1:port/dev. Knobs, settable while it runs:
    `drop_after`: close the attached socket abruptly (no close frame) after that delta;
    `refuse_for`: after a drop, refuse handshakes (503) for that many seconds;
    `replay_overlap`: on attach, send that many deltas the client already has again;
    `replay_before_attached`: on attach, send the kept deltas before the `attached` answer;
    `token`: the token the handshake requires (401 without, 403 wrong)."""

    def __init__(self, *, words: tuple[str, ...] = WORDS, delta_s: float = 0.02) -> None:
        self.words = words
        self.delta_s = delta_s
        self.drop_after: int | None = None
        self.refuse_for = 0.0
        self.replay_overlap = 0
        self.replay_before_attached = False
        self.token: str | None = None
        self.received: list[dict[str, Any]] = []
        self.handshakes: list[str] = []  # the request paths, query included
        self.conversations: dict[str, Conversation] = {}
        self._refuse_until = 0.0
        self._lock = threading.RLock()
        self._server: Server | None = None

    # -- lifecycle --------------------------------------------------------------------
    def __enter__(self) -> FakeServer:
        self._server = serve(
            self._handle, "127.0.0.1", 0, process_request=self._handshake, logger=QUIET
        )
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"ws://127.0.0.1:{self._server.socket.getsockname()[1]}/dev"

    def _handshake(self, connection: ServerConnection, request: Any) -> Any:
        self.handshakes.append(request.path)
        if time.monotonic() < self._refuse_until:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "not now\n")
        if self.token is not None:
            given = parse_qs(urlsplit(request.path).query).get("token")
            if not given:
                return connection.respond(HTTPStatus.UNAUTHORIZED, "Unauthorized\n")
            if given != [self.token]:
                return connection.respond(HTTPStatus.FORBIDDEN, "Forbidden\n")
        return None

    # -- frames -----------------------------------------------------------------------
    def _handle(self, ws: ServerConnection) -> None:
        for raw in ws:
            message = json.loads(raw)
            self.received.append(message)
            action = message.get("action")
            handler = getattr(self, f"_on_{action}", None)
            if handler is None:
                self._send(ws, {"type": "error", "code": "unknown_action", "message": "?"})
            else:
                handler(ws, message)

    def _send(self, ws: ServerConnection | None, message: dict[str, Any]) -> None:
        if ws is None:
            return
        with contextlib.suppress(Exception):  # a dropped client: the reply goes on
            ws.send(json.dumps(message))

    def _find(self, ws: ServerConnection, message: dict[str, Any]) -> Conversation | None:
        conversation = self.conversations.get(message.get("conversation", ""))
        if conversation is None:
            self._send(ws, {"type": "error", "code": "not_found", "message": "No such one."})
        return conversation

    def _on_ping(self, ws: ServerConnection, message: dict[str, Any]) -> None:
        self._send(ws, {"type": "pong"})

    def _on_chat(self, ws: ServerConnection, message: dict[str, Any]) -> None:
        with self._lock:
            if "conversation" in message:
                conversation = self._find(ws, message)
                if conversation is None:
                    return
                if conversation.attached is not ws:
                    self._send(ws, {"type": "error", "code": "not_attached", "message": "!"})
                    return
                if conversation.reply is not None:
                    self._send(
                        ws,
                        {
                            "type": "error",
                            "code": "busy",
                            "message": "Busy.",
                            "conversation": conversation.id,
                        },
                    )
                    return
            else:
                conversation = Conversation(secrets.token_urlsafe(24), attached=ws)
                self.conversations[conversation.id] = conversation
                self._send(ws, {"type": "conversation", "id": conversation.id})
            conversation.reply = Reply(message["prompt"])
        threading.Thread(target=self._generate, args=(conversation,), daemon=True).start()

    def _generate(self, conversation: Conversation) -> None:
        reply = conversation.reply
        assert reply is not None
        tag = {"conversation": conversation.id}
        self._send(conversation.attached, {"type": "status", "state": "generating", **tag})
        reason = "end"
        for seq, word in enumerate(self.words):
            time.sleep(self.delta_s)
            if reply.stopped.is_set():
                reason = "stopped"
                break
            with self._lock:
                delta = {"type": "delta", "text": word, "seq": seq, **tag}
                reply.deltas.append(delta)
                self._send(conversation.attached, delta)
                if self.drop_after == seq and conversation.attached is not None:
                    self.drop_after = None
                    self._refuse_until = time.monotonic() + self.refuse_for
                    conversation.attached.socket.shutdown(socket.SHUT_RDWR)
                    conversation.attached = None
        with self._lock:
            text = "".join(d["text"] for d in reply.deltas)
            conversation.turns += [
                {"role": "user", "content": reply.prompt},
                {"role": "assistant", "content": text},
            ]
            conversation.reply = None
            usage = {"prompt_tokens": 3, "completion_tokens": len(reply.deltas)}
            done = {"type": "done", "reason": reason, "usage": usage, "timing": {}, **tag}
            self._send(conversation.attached, done)

    def _on_attach(self, ws: ServerConnection, message: dict[str, Any]) -> None:
        with self._lock:
            conversation = self._find(ws, message)
            if conversation is None:
                return
            if conversation.attached not in (None, ws):
                self._send(
                    conversation.attached, {"type": "detached", "conversation": conversation.id}
                )
            conversation.attached = ws
            reply = conversation.reply
            attached = {
                "type": "attached",
                "conversation": conversation.id,
                "turns": list(conversation.turns),
                "reply": None if reply is None else {"prompt": reply.prompt},
                "interrupted": False,
            }
            if not self.replay_before_attached:
                self._send(ws, attached)
            if reply is not None:
                after = int(message.get("seq", -1)) - self.replay_overlap
                for delta in reply.deltas:
                    if delta["seq"] > after:
                        self._send(ws, delta)
            if self.replay_before_attached:
                self._send(ws, attached)

    def drop(self, conversation_id: str) -> None:
        """Cut the conversation's connection abruptly, as a network failure would."""
        with self._lock:
            conversation = self.conversations[conversation_id]
            if conversation.attached is not None:
                conversation.attached.socket.shutdown(socket.SHUT_RDWR)
                conversation.attached = None

    def _on_stop(self, ws: ServerConnection, message: dict[str, Any]) -> None:
        conversation = self._find(ws, message)
        if conversation is not None and conversation.reply is not None:
            conversation.reply.stopped.set()

    def _on_history(self, ws: ServerConnection, message: dict[str, Any]) -> None:
        conversation = self._find(ws, message)
        if conversation is not None:
            turns = list(conversation.turns)
            self._send(ws, {"type": "history", "conversation": conversation.id, "turns": turns})

    def _on_forget(self, ws: ServerConnection, message: dict[str, Any]) -> None:
        with self._lock:
            conversation = self._find(ws, message)
            if conversation is not None:
                del self.conversations[conversation.id]
                if conversation.reply is not None:
                    conversation.reply.stopped.set()
                self._send(ws, {"type": "forgotten", "conversation": conversation.id})

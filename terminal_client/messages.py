"""The frames a client sends (docs/protocol.md), and the URL that carries the token."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

# The messages that end a reply: its `done`, or an `error` (a refusal or a failure).
REPLY_END = frozenset({"done", "error"})


def with_token(url: str, token: str | None) -> str:
    """`url` with `?token=…` added (the stage's $connect authorizer reads it there)."""
    if not token:
        return url
    parts = urlsplit(url)
    query = f"{parts.query}&" if parts.query else ""
    return urlunsplit(parts._replace(query=query + urlencode({"token": token})))


def without_query(url: str) -> str:
    """`url` with no query string: what may be shown or logged (the token stays private)."""
    return urlunsplit(urlsplit(url)._replace(query=""))


def chat(
    prompt: str, *, conversation: str | None = None, options: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Ask; without `conversation` the server starts a new one and names it first."""
    message: dict[str, Any] = {"action": "chat", "prompt": prompt}
    if options:
        message["options"] = options
    if conversation:
        message["conversation"] = conversation
    return message


def attach(conversation: str, seq: int | None = None) -> dict[str, Any]:
    """Attach the conversation here; `seq` is the last delta already had of its running
    reply (left out: the reply from its first delta)."""
    message: dict[str, Any] = {"action": "attach", "conversation": conversation}
    if seq is not None and seq >= 0:
        message["seq"] = seq
    return message


def history(conversation: str) -> dict[str, Any]:
    return {"action": "history", "conversation": conversation}


def forget(conversation: str) -> dict[str, Any]:
    return {"action": "forget", "conversation": conversation}


def stop(conversation: str) -> dict[str, Any]:
    return {"action": "stop", "conversation": conversation}


def reset(conversation: str) -> dict[str, Any]:
    return {"action": "reset", "conversation": conversation}


def ping() -> dict[str, Any]:
    return {"action": "ping"}

"""Helpers for the offline tests: extra functions and a real WebSocket client."""

from __future__ import annotations

import asyncio
import json
import weakref
from pathlib import Path
from typing import Any

import websockets

from llambda.contract import PartJoiner
from offline.cloud import ACCOUNT_ID, DEFAULT_REGION, OfflineCloud
from offline.event_queue import AsyncConfig
from offline.lambda_function import FunctionSpec

SAMPLE = "tests.offline.sample_handlers"
REPO = Path(__file__).resolve().parents[2]
# Local knobs every test twin gives its functions: one llama.cpp thread each (two
# instances share two cores) and a context that fits the tests' prompts.
LOCAL_ENVIRONMENT = {"LLAMA_THREADS": "1", "LLAMA_N_CTX": "2048"}


def function_arn(name: str) -> str:
    return f"arn:aws:lambda:{DEFAULT_REGION}:{ACCOUNT_ID}:function:{name}"


def sample_functions() -> list[FunctionSpec]:
    """Extra functions for the worker-model tests, beside the stage's own (test code only)."""
    code = (str(REPO),)
    no_retries = AsyncConfig(max_retry_attempts=0, on_failure=function_arn("failure-recorder"))
    return [
        FunctionSpec(
            name="echo",
            handler=f"{SAMPLE}.echo",
            environment={},
            timeout_seconds=3,
            code_paths=code,
        ),
        FunctionSpec(
            name="echo-reserved",
            handler=f"{SAMPLE}.echo",
            environment={},
            timeout_seconds=10,
            code_paths=code,
            reserved_concurrency=1,
            aliases={"live": 0},
            async_configs={"$LATEST": no_retries, "live": no_retries},
        ),
        FunctionSpec(
            name="failure-recorder",
            handler=f"{SAMPLE}.record",
            environment={},
            timeout_seconds=5,
            code_paths=code,
        ),
    ]


def origin_of(cloud: OfflineCloud) -> str:
    return cloud.http_url.rstrip("/")


def connect(cloud: OfflineCloud, query: str = "", **kwargs: Any) -> Any:
    """A real WebSocket client, from the twin's own page origin (the Dev allow-list)."""
    kwargs.setdefault("origin", origin_of(cloud))
    return websockets.connect(cloud.ws_url + query, **kwargs)


async def receive(ws: Any, timeout: float = 60) -> dict[str, Any]:
    """The next message on `ws`, joined from its `part`s when it came in several."""
    joiner = _JOINERS.setdefault(ws, PartJoiner())
    async with asyncio.timeout(timeout):
        while True:
            message = joiner.feed(json.loads(await ws.recv()))
            if message is not None:
                return message


_JOINERS: weakref.WeakKeyDictionary[Any, PartJoiner] = weakref.WeakKeyDictionary()


# The conversation each test connection is in, as the server issued it (the next chat on
# that connection continues it).
_CONVERSATIONS: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def conversation_of(ws: Any) -> str:
    return _CONVERSATIONS[ws]


def join(ws: Any, conversation: str) -> None:
    """Chats on `ws` continue `conversation` from now on (after an `attach`)."""
    _CONVERSATIONS[ws] = conversation


async def until_done(ws: Any, timeout: float = 90) -> tuple[list[dict], dict]:
    """Every message up to the reply's end: (deltas, the final done or error)."""
    deltas: list[dict] = []
    async with asyncio.timeout(timeout):
        while True:
            message = await receive(ws, timeout)
            kind = message.get("type")
            if kind == "conversation":
                join(ws, message["id"])
            elif kind == "delta":
                deltas.append(message)
            elif kind in ("done", "error"):
                return deltas, message
            elif kind != "status":
                raise AssertionError(f"unexpected message {message}")


async def first_delta(ws: Any, timeout: float = 90) -> dict[str, Any]:
    """Wait for the running reply's first delta (noting the conversation it is in)."""
    async with asyncio.timeout(timeout):
        while True:
            message = await receive(ws, timeout)
            if message.get("type") == "conversation":
                join(ws, message["id"])
            elif message.get("type") == "delta":
                return message


async def chat(ws: Any, prompt: str, **options: Any) -> None:
    """Ask on `ws`, in its conversation (a new one on its first chat)."""
    message: dict[str, Any] = {"action": "chat", "prompt": prompt}
    if ws in _CONVERSATIONS:
        message["conversation"] = _CONVERSATIONS[ws]
    if options:
        message["options"] = options
    await ws.send(json.dumps(message))


async def act(ws: Any, action: str, **fields: Any) -> None:
    """Send `action` for the connection's conversation (stop, reset, history, forget…)."""
    await ws.send(json.dumps({"action": action, "conversation": _CONVERSATIONS[ws], **fields}))


async def attach(ws: Any, conversation: str, seq: int | None = None) -> dict[str, Any]:
    """Attach `conversation` to `ws`; the `attached` answer."""
    message: dict[str, Any] = {"action": "attach", "conversation": conversation}
    if seq is not None:
        message["seq"] = seq
    await ws.send(json.dumps(message))
    answer = await receive(ws)
    assert answer["type"] == "attached", answer
    join(ws, conversation)
    return answer


def diagnostics(cloud: OfflineCloud, lines: int = 30) -> str:
    """The functions' recent output, for assertion messages."""
    assert cloud.functions is not None, "the twin is not running"
    return "\n".join(
        f"--- {function.spec.name}\n" + "\n".join(list(function.output)[-lines:])
        for function in cloud.functions.all()
    )

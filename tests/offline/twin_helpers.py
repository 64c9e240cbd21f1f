"""Helpers for the offline tests: extra functions and a real WebSocket client."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import websockets

from offline.cloud import OfflineCloud
from offline.lambda_pool import FunctionSpec

SAMPLE = "tests.offline.sample_handlers"


def sample_functions() -> list[FunctionSpec]:
    """Extra functions for the worker-model tests, beside the stack's four."""
    return [
        FunctionSpec(name="echo", handler=f"{SAMPLE}.echo", environment={}, timeout_seconds=3),
        FunctionSpec(
            name="echo-reserved",
            handler=f"{SAMPLE}.echo",
            environment={},
            timeout_seconds=10,
            reserved_concurrency=1,
            aliases=("live",),
            max_retry_attempts=0,
            on_failure="failure-recorder",
        ),
        FunctionSpec(
            name="failure-recorder",
            handler=f"{SAMPLE}.record",
            environment={},
            timeout_seconds=5,
        ),
    ]


def origin_of(cloud: OfflineCloud) -> str:
    return cloud.http_url.rstrip("/")


def connect(cloud: OfflineCloud, query: str = "", **kwargs: Any) -> Any:
    """A real WebSocket client, from the twin's own page origin (the Dev allow-list)."""
    kwargs.setdefault("origin", origin_of(cloud))
    return websockets.connect(cloud.ws_url + query, **kwargs)


async def receive(ws: Any, timeout: float = 60) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def until_done(ws: Any, timeout: float = 90) -> tuple[list[dict], dict]:
    """Every message up to the reply's end: (deltas, the final done or error)."""
    deltas: list[dict] = []
    async with asyncio.timeout(timeout):
        while True:
            message = await receive(ws, timeout)
            if message.get("type") == "delta":
                deltas.append(message)
            elif message.get("type") in ("done", "error"):
                return deltas, message
            elif message.get("type") != "status":
                raise AssertionError(f"unexpected message {message}")


async def chat(ws: Any, prompt: str, **options: Any) -> None:
    message: dict[str, Any] = {"action": "chat", "prompt": prompt}
    if options:
        message["options"] = options
    await ws.send(json.dumps(message))


def diagnostics(cloud: OfflineCloud, lines: int = 30) -> str:
    """The functions' recent output, for assertion messages."""
    return "\n".join(
        f"--- {pool.spec.name}\n" + "\n".join(list(pool.output)[-lines:])
        for pool in cloud.functions.pools()
    )

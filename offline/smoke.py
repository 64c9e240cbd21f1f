"""Smoke test of a deployed (or local) chat: one streamed reply over the WebSocket.

    python -m offline.smoke wss://abc.execute-api.eu-west-1.amazonaws.com/dev --token T

Connects, sends one `chat`, and requires at least one `delta` and a `done`; prints the
reply and its timings; exits non-zero (with the reason) on any failure. Used by the
pipeline's post-deploy step and by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit, urlunsplit

import websockets


@dataclass
class SmokeResult:
    ok: bool
    reason: str
    text: str = ""
    deltas: int = 0
    done: dict = field(default_factory=dict)
    connect_ms: float = 0.0
    first_delta_ms: float | None = None
    total_ms: float = 0.0


def with_token(url: str, token: str | None) -> str:
    if not token:
        return url
    parts = urlsplit(url)
    query = f"{parts.query}&" if parts.query else ""
    return urlunsplit(parts._replace(query=query + urlencode({"token": token})))


async def run_smoke(
    url: str,
    *,
    token: str | None = None,
    prompt: str = "Say hello in one short sentence.",
    max_tokens: int = 32,
    origin: str | None = None,
    timeout: float = 120,
) -> SmokeResult:
    started = time.perf_counter()

    def elapsed() -> float:
        return (time.perf_counter() - started) * 1000

    try:
        async with asyncio.timeout(timeout):
            async with websockets.connect(
                with_token(url, token), origin=origin, open_timeout=min(timeout, 30)
            ) as ws:
                result = SmokeResult(ok=False, reason="", connect_ms=elapsed())
                chat = {"action": "chat", "prompt": prompt, "options": {"max_tokens": max_tokens}}
                await ws.send(json.dumps(chat))
                seq = 0
                async for raw in ws:
                    message = json.loads(raw)
                    kind = message.get("type")
                    if kind == "delta":
                        if message.get("seq") != seq:
                            result.reason = f"delta seq {message.get('seq')}, expected {seq}"
                            return result
                        seq += 1
                        result.deltas += 1
                        result.text += message.get("text", "")
                        if result.first_delta_ms is None:
                            result.first_delta_ms = elapsed()
                    elif kind == "done":
                        result.done = message
                        result.total_ms = elapsed()
                        result.ok = result.deltas >= 1
                        result.reason = "ok" if result.ok else "done without any delta"
                        return result
                    elif kind == "error":
                        result.reason = f"error {message.get('code')}: {message.get('message')}"
                        return result
                    elif kind not in ("status", "pong"):
                        result.reason = f"unexpected message: {raw!s:.200}"
                        return result
                result.reason = "the connection closed before `done`"
                return result
    except TimeoutError:
        return SmokeResult(ok=False, reason=f"no complete reply within {timeout:g} s")
    except websockets.InvalidStatus as exc:
        return SmokeResult(ok=False, reason=f"handshake refused: HTTP {exc.response.status_code}")
    except (OSError, websockets.WebSocketException) as exc:
        return SmokeResult(ok=False, reason=f"connection failed: {exc}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m offline.smoke", description=__doc__)
    parser.add_argument("url", help="the WebSocket URL, e.g. wss://…/dev")
    parser.add_argument("--token", help="the $connect token, where the stage requires one")
    parser.add_argument("--prompt", default="Say hello in one short sentence.")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--origin", help="Origin header to send (for an origin allow-list)")
    parser.add_argument("--timeout", type=float, default=120, help="seconds for the whole test")
    args = parser.parse_args(argv)
    result = asyncio.run(
        run_smoke(
            args.url,
            token=args.token,
            prompt=args.prompt,
            max_tokens=args.max_tokens,
            origin=args.origin,
            timeout=args.timeout,
        )
    )
    if not result.ok:
        print(f"smoke test FAILED: {result.reason}", file=sys.stderr)
        return 1
    timing = result.done.get("timing") or {}
    print(f"reply: {result.text.strip()}")
    print(
        f"ok: {result.deltas} deltas, done reason {result.done.get('reason')}; "
        f"connect {result.connect_ms:.0f} ms, first delta {result.first_delta_ms:.0f} ms, "
        f"total {result.total_ms:.0f} ms; server ttft {timing.get('ttft_ms')} ms, "
        f"{timing.get('tokens_per_s')} tokens/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

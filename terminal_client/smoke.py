"""Smoke test of a deployed (or local) chat: one streamed reply over the WebSocket.

    python -m terminal_client.smoke wss://abc.execute-api.eu-west-1.amazonaws.com/dev --token T

Connects, sends one `chat`, and requires at least one `delta` (in order) and a `done`;
prints the reply and its timings; exits non-zero (with the reason) on any failure. Used
by the pipeline's post-deploy step and by hand. It speaks through the terminal client's
`ChatClient` (standard library and `websockets` only: what the pipeline installs).
A dropped connection fails the test rather than being resumed: the stage must carry one
reply on one connection.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field

from terminal_client.client import ChatClient, ConnectionLost, HandshakeRefused


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


def run_smoke(
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

    client = ChatClient(url, token=token, origin=origin, open_timeout=min(timeout, 30))
    try:
        client.connect()
    except HandshakeRefused as refused:
        return SmokeResult(ok=False, reason=str(refused))
    except ConnectionLost as lost:
        return SmokeResult(ok=False, reason=f"connection failed: {lost}")
    result = SmokeResult(ok=False, reason="", connect_ms=elapsed())
    try:
        client.chat(prompt, {"max_tokens": max_tokens})
        for message in client.reply(timeout=max(timeout - elapsed() / 1000, 0.1), resume=False):
            kind = message.get("type")
            if kind == "delta":
                if message.get("seq") != result.deltas:
                    result.reason = f"delta seq {message.get('seq')}, expected {result.deltas}"
                    return result
                result.deltas += 1
                result.text += str(message.get("text", ""))
                if result.first_delta_ms is None:
                    result.first_delta_ms = elapsed()
            elif kind == "done":
                result.done = message
                result.total_ms = elapsed()
                result.ok = result.deltas >= 1
                result.reason = "ok" if result.ok else "done without any delta"
            elif kind == "error":
                result.reason = f"error {message.get('code')}: {message.get('message')}"
            elif kind not in ("conversation", "status"):
                result.reason = f"unexpected message: {message!s:.200}"
                return result
        if not result.reason:
            result.reason = "the reply ended without `done`"
        return result
    except TimeoutError:
        return SmokeResult(ok=False, reason=f"no complete reply within {timeout:g} s")
    except ConnectionLost as lost:
        result.reason = f"the connection closed before `done` ({lost})"
        return result
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m terminal_client.smoke", description=__doc__)
    parser.add_argument("url", help="the WebSocket URL, e.g. wss://…/dev")
    parser.add_argument("--token", help="the $connect token, where the stage requires one")
    parser.add_argument("--prompt", default="Say hello in one short sentence.")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--origin", help="Origin header to send (for an origin allow-list)")
    parser.add_argument("--timeout", type=float, default=120, help="seconds for the whole test")
    args = parser.parse_args(argv)
    result = run_smoke(
        args.url,
        token=args.token,
        prompt=args.prompt,
        max_tokens=args.max_tokens,
        origin=args.origin,
        timeout=args.timeout,
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

"""The terminal client's `ChatClient`, recording every message of one reply with its
arrival time, as a browser sees them."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.stats import median
from terminal_client.client import ChatClient


@dataclass
class Arrivals:
    """Messages of one reply with their `time.perf_counter()` arrival times."""

    messages: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    def final(self) -> dict[str, Any] | None:
        for _, message in reversed(self.messages):
            if message.get("type") in ("done", "error"):
                return message
        return None

    def delta_times(self) -> list[float]:
        return [t for t, m in self.messages if m.get("type") == "delta"]


class RecordingClient:
    """Connects, then records each reply's messages as the client's reader thread
    receives them (its `on_message` hook), while the caller is free to serve the reply."""

    def __init__(self, url: str, *, origin: str | None = None) -> None:
        self._current = Arrivals()
        self._lock = threading.Lock()
        self.client = ChatClient(url, origin=origin, on_message=self._record).connect()

    def _record(self, at: float, message: dict[str, Any]) -> None:
        with self._lock:
            current = self._current
        current.messages.append((at, message))
        if message.get("type") in ("done", "error"):
            current.done.set()

    def expect_reply(self) -> Arrivals:
        """Start recording a new reply; call before the reply can begin."""
        with self._lock:
            self._current = Arrivals()
            return self._current

    def send(self, message: dict[str, Any]) -> None:
        self.client.send(message)

    def close(self) -> None:
        self.client.close()


def stream_figures(
    arrivals: Arrivals,
    *,
    started: float,
    completion_tokens: int,
    engine_ttft_ms: float | None,
    count_tokens: Callable[[str], int],
) -> dict[str, float]:
    """Tokens/s between the first and last text a reader sees, TTFT, and message rate.

    The rate counts the tokens that arrived after the first delta over the time from the
    first delta to the last, as the engine's counts the tokens after its first: a first
    delta that carries several tokens (held while an earlier post was in flight) must not
    count them as delivered in no time.
    """
    deltas = [(t, m) for t, m in arrivals.messages if m.get("type") == "delta"]
    if not deltas:
        raise RuntimeError(f"no text arrived; last message: {arrivals.final()}")
    times = [t for t, _ in deltas]
    first_tokens = min(max(count_tokens(deltas[0][1].get("text", "")), 1), completion_tokens)
    span = times[-1] - times[0]
    if len(times) > 1 and span > 0:
        tokens_per_s = (completion_tokens - first_tokens) / span
    else:
        # The whole reply came in one delta: time it from when generation began, as the
        # client learns it (the `generating` status), or from the request.
        began = next((t for t, m in arrivals.messages if m.get("state") == "generating"), started)
        tokens_per_s = completion_tokens / max(times[0] - began, 1e-6)
    figures = {
        "completion_tokens": completion_tokens,
        "deltas": len(times),
        "first_delta_tokens": first_tokens,
        "ttft_ms": (times[0] - started) * 1000,
        "tokens_per_s": tokens_per_s,
        "messages_per_s": (len(times) - 1) / span if span > 0 else 0.0,
        "peak_messages_in_1s": peak_in_window(times, 1.0),
        "reply_s": span,
    }
    if engine_ttft_ms is not None:
        figures["added_ttft_ms"] = figures["ttft_ms"] - engine_ttft_ms
    return figures


def peak_in_window(times: list[float], window: float) -> int:
    """The most arrivals in any `window` seconds."""
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] > window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def summarize(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Median of every figure across runs (a run's other fields, such as which engine runs
    bracket it, are left out)."""
    keys = [k for k, v in runs[0].items() if isinstance(v, int | float)]
    return {k: round(median([r[k] for r in runs]), 3) for k in keys}

"""The same generation through the local twin, as a WebSocket client sees it."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.client import RecordingClient, stream_figures
from bench.workload import chat_message
from offline.cloud import OfflineCloud
from offline.trace import Trace

# The stage `make dev` runs, as the Makefile synthesized it (`make bench` passes both).
TWIN_ASSEMBLY = Path(os.environ.get("TWIN_ASSEMBLY", "cdk.out.dev"))
TWIN_STAGE = os.environ.get("TWIN_STAGE", "Dev")


def start_twin(threads: int, *, trace: Trace | None = None) -> OfflineCloud:
    """The twin of the synthesized Dev stage, llama.cpp on `threads` threads (as the
    engine baseline gets)."""
    return OfflineCloud(
        assembly=TWIN_ASSEMBLY,
        stage=TWIN_STAGE,
        environment={"LLAMA_THREADS": str(threads)},
        trace=trace,
    ).start()


def _origin(cloud: OfflineCloud) -> str:
    return cloud.http_url.rstrip("/")


def twin_reply(cloud: OfflineCloud, tokens: int, *, timeout: float = 300) -> tuple[Any, float]:
    """One chat on a fresh connection (so no history): its arrivals and send time."""
    return reply_at(cloud.ws_url, _origin(cloud), tokens, timeout=timeout)


def reply_at(ws_url: str, origin: str, tokens: int, *, timeout: float = 300) -> tuple[Any, float]:
    """`twin_reply` for a twin known by its addresses (one another process runs)."""
    client = RecordingClient(ws_url, origin=origin)
    try:
        arrivals = client.expect_reply()
        started = time.perf_counter()
        client.send(chat_message(tokens))
        if not arrivals.done.wait(timeout):
            raise TimeoutError(f"no `done` within {timeout} s; got {arrivals.final()}")
    finally:
        client.close()
    final = arrivals.final() or {}
    if final.get("type") != "done":
        raise RuntimeError(f"the twin answered {final}")
    return arrivals, started


def warm_up(cloud: OfflineCloud, tokens: int) -> dict[str, float]:
    """The first reply loads the engine in a fresh worker: the twin's cold start."""
    cloud.faults.reset(post_latency_ms=0)
    arrivals, started = twin_reply(cloud, tokens)
    timing = (arrivals.final() or {}).get("timing", {})
    return {
        "first_reply_init_ms": float(timing.get("init_ms") or 0),
        "first_reply_total_s": arrivals.messages[-1][0] - started,
    }


def delivered_run(
    cloud: OfflineCloud,
    *,
    tokens: int,
    latency_ms: float,
    engine_ttft_ms: float,
    count_tokens: Callable[[str], int],
) -> dict[str, float]:
    cloud.faults.reset(post_latency_ms=latency_ms)
    arrivals, started = twin_reply(cloud, tokens)
    final = arrivals.final() or {}
    usage = final.get("usage", {})
    figures = stream_figures(
        arrivals,
        started=started,
        completion_tokens=int(usage.get("completion_tokens", 0)),
        engine_ttft_ms=engine_ttft_ms,
        count_tokens=count_tokens,
    )
    # What the worker itself measured, to tell engine time from delivery time.
    timing = final.get("timing", {})
    figures["worker_tokens_per_s"] = float(timing.get("tokens_per_s") or 0)
    figures["worker_ttft_ms"] = float(timing.get("ttft_ms") or 0)
    return figures

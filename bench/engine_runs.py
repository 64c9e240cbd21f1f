"""The engine alone, and the same engine behind two senders on a minimal gateway.

Both senders post through boto3's `apigatewaymanagementapi` client to the local
`@connections` API, so they differ only in how they post: the runtime's coalescing
background sender, or the public demos' per-token synchronous `post_to_connection`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import boto3

from bench.client import RecordingClient, stream_figures
from bench.local_gateway import LocalGateway
from bench.workload import engine_request
from infra.config import DEV
from llambda import protocol
from llambda.engines import Engine
from llambda.sender import StreamSender, connection_poster

# The sender tags every reply message with its conversation; nothing here reads it.
BENCH_CONVERSATION = "bench"


def engine_run(engine: Engine, tokens: int) -> dict[str, float]:
    """Tokens/s from the first to the last token, and time to first token."""
    times: list[float] = []
    started = time.perf_counter()
    result = engine.generate(
        engine_request(tokens), lambda _text: times.append(time.perf_counter()), lambda: False
    )
    span = times[-1] - times[0]
    return {
        "completion_tokens": result.completion_tokens,
        "ttft_ms": (times[0] - started) * 1000,
        "tokens_per_s": (result.completion_tokens - 1) / span,
        "reply_s": span,
    }


def management_client(endpoint_url: str) -> Any:
    return boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )


def _harness_reply(
    gateway: LocalGateway,
    latency_ms: float,
    serve: Callable[[str], int],
    *,
    engine_ttft_ms: float,
    count_tokens: Callable[[str], int],
) -> dict[str, float]:
    """Open a connection, let `serve(connection_id)` answer it; what the client saw."""
    gateway.faults.latency_ms = latency_ms
    known = set(gateway.registry.ids())
    client = RecordingClient(gateway.ws_url)
    try:
        connection_id = gateway.wait_for_connection(known)
        arrivals = client.expect_reply()
        started = time.perf_counter()
        completion_tokens = serve(connection_id)
        if not arrivals.done.wait(60):
            raise TimeoutError("the reply never finished")
    finally:
        client.close()
    return stream_figures(
        arrivals,
        started=started,
        completion_tokens=completion_tokens,
        engine_ttft_ms=engine_ttft_ms,
        count_tokens=count_tokens,
    )


def per_token_run(
    engine: Engine,
    gateway: LocalGateway,
    api: Any,
    *,
    tokens: int,
    latency_ms: float,
    engine_ttft_ms: float,
    count_tokens: Callable[[str], int],
) -> dict[str, float]:
    """The public demos' pattern: post every token with `post_to_connection` and wait."""

    def serve(connection_id: str) -> int:
        seq = 0

        def post(message: dict[str, Any]) -> None:
            api.post_to_connection(ConnectionId=connection_id, Data=json.dumps(message).encode())

        def on_text(text: str) -> None:
            nonlocal seq
            post({"type": "delta", "text": text, "seq": seq})
            seq += 1

        result = engine.generate(engine_request(tokens), on_text, lambda: False)
        post({"type": "done", "reason": result.reason})
        return result.completion_tokens

    return _harness_reply(
        gateway, latency_ms, serve, engine_ttft_ms=engine_ttft_ms, count_tokens=count_tokens
    )


def coalesced_run(
    engine: Engine,
    gateway: LocalGateway,
    api: Any,
    *,
    tokens: int,
    latency_ms: float,
    engine_ttft_ms: float,
    count_tokens: Callable[[str], int],
) -> dict[str, float]:
    """The runtime's `StreamSender` on the same minimal gateway: the sender's cost alone."""

    def serve(connection_id: str) -> int:
        sender = StreamSender(
            connection_poster(api, connection_id),
            conversation_id=BENCH_CONVERSATION,
            coalesce_ms=DEV.coalesce_ms,
        ).start()
        sender.send(protocol.status("generating"))
        result = engine.generate(engine_request(tokens), sender.push, lambda: sender.broken)
        sender.close(
            protocol.done(
                result.reason,
                prompt_tokens=result.prompt_tokens,
                completion_tokens=result.completion_tokens,
                init_ms=0,
                ttft_ms=None,
                tokens_per_s=0.0,
            )
        )
        return result.completion_tokens

    return _harness_reply(
        gateway, latency_ms, serve, engine_ttft_ms=engine_ttft_ms, count_tokens=count_tokens
    )

"""The same generation through the twin's OpenAI-compatible Function URL, as the official
`openai` package reads it: delivered tokens/s against the engine alone (each run between
two engine runs, as the WebSocket path's), and the first token's added time."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import boto3
import openai

from bench.client import Arrivals, stream_figures, summarize
from bench.delivered import start_twin
from bench.engine_runs import engine_run
from bench.stats import bracketed_ratio, spread_pct
from bench.tokens import token_counter
from bench.workload import TEMPERATURE, prompt
from llambda.api_keys import ApiKeyStore
from llambda.engines.llamacpp_engine import LlamaCppEngine
from offline.cloud import OfflineCloud
from offline.default_model import default_model_path


def client_for(cloud: OfflineCloud) -> openai.OpenAI:
    """An SDK client on the twin's Function URL, with a key made for the run."""
    [url] = cloud.function_urls.values()
    [table] = cloud.tables.values()
    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=cloud.moto_url,
        region_name=cloud.region,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )
    key = ApiKeyStore(dynamodb, table).create("bench").key
    return openai.OpenAI(base_url=url + "v1", api_key=key, max_retries=0)


def openai_run(
    client: openai.OpenAI,
    model: str,
    *,
    tokens: int,
    engine_ttft_ms: float,
    count_tokens: Callable[[str], int],
) -> dict[str, float]:
    """One streamed completion: when each content chunk arrived, and its usage."""
    arrivals = Arrivals()
    started = time.perf_counter()
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": prompt()}],
        max_tokens=tokens,
        temperature=TEMPERATURE,
        stream=True,
        stream_options={"include_usage": True},
    )
    completion_tokens = 0
    for chunk in stream:
        now = time.perf_counter()
        if chunk.usage is not None:
            completion_tokens = chunk.usage.completion_tokens
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.messages.append(
                (now, {"type": "delta", "text": chunk.choices[0].delta.content})
            )
    arrivals.messages.append((time.perf_counter(), {"type": "done"}))
    return stream_figures(
        arrivals,
        started=started,
        completion_tokens=completion_tokens,
        engine_ttft_ms=engine_ttft_ms,
        count_tokens=count_tokens,
    )


def measure(tokens: int, repeats: int, *, threads: int) -> dict[str, Any]:
    """`repeats` streamed completions, each between two engine runs."""
    model_path = str(default_model_path())
    engine = LlamaCppEngine.load(model_path, n_threads=threads)
    count_tokens = token_counter(model_path)
    cloud = start_twin(threads)
    engine_runs: list[dict[str, float]] = []
    runs: list[dict[str, Any]] = []
    try:
        client = client_for(cloud)
        [model] = client.models.list().data
        short = min(tokens, 16)  # the instance's cold start and first-run costs
        openai_run(client, model.id, tokens=short, engine_ttft_ms=0, count_tokens=count_tokens)
        engine_run(engine, short)
        engine_runs.append(engine_run(engine, tokens))
        for _ in range(repeats):
            before = len(engine_runs) - 1
            figures: dict[str, Any] = dict(
                openai_run(
                    client,
                    model.id,
                    tokens=tokens,
                    engine_ttft_ms=engine_runs[before]["ttft_ms"],
                    count_tokens=count_tokens,
                )
            )
            engine_runs.append(engine_run(engine, tokens))
            figures["engine_runs"] = [before, before + 1]
            figures["ratio"] = bracketed_ratio(
                figures["tokens_per_s"],
                engine_runs[before]["tokens_per_s"],
                engine_runs[before + 1]["tokens_per_s"],
            )
            runs.append(figures)
    finally:
        cloud.stop()
    spread = spread_pct([run["ratio"] for run in runs])
    return {
        "threads": threads,
        "engine": summarize(engine_runs),
        "openai": {
            **summarize(runs),
            "ratio_spread_pct": round(spread, 2) if math.isfinite(spread) else None,
            "runs": runs,
        },
    }

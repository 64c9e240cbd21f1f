"""Structured logs and EMF metrics (Powertools). Module-level, one per process.

Logs carry `connection_id`, `conversation` and `reply_id` (appended per event) and the
Lambda request id (`inject_lambda_context`). Never log prompts, replies, tokens or keys:
only sizes and ids, and a conversation id (a capability) only by its first characters.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics, single_metric
from aws_lambda_powertools.metrics import MetricUnit

from llambda import contract

# Dev and Prod may share an account: every metric carries its stage.
STAGE_VARIABLE = "STAGE_NAME"
STAGE = os.environ.get(STAGE_VARIABLE, "local")

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "llambda"))
metrics = Metrics(namespace=contract.METRICS_NAMESPACE)
metrics.set_default_dimensions(stage=STAGE)


# Enough to join one conversation's log lines, far too little to use it (the id has 192
# random bits; these 6 characters hold 36).
LOGGED_ID_CHARS = 6


def log_safe(conversation_id: str) -> str:
    """The part of a conversation id that may be logged."""
    return conversation_id[:LOGGED_ID_CHARS] + "…"


def _dimensions() -> dict[str, str]:
    return {"service": logger.service, "stage": STAGE}


def count_error(code: str) -> None:
    """`Errors` by `code`: its own EMF record, as each code is its own dimension value."""
    with single_metric(
        name=contract.METRIC_ERRORS,
        unit=MetricUnit.Count,
        value=1,
        namespace=contract.METRICS_NAMESPACE,
        default_dimensions=_dimensions(),
    ) as metric:
        metric.add_dimension(name="code", value=code)


def record_engine_load(load_ms: int, *, initialization: str) -> None:
    """`EngineLoadMs` by `initialization` (on-demand, or provisioned-concurrency at init)."""
    logger.info("engine loaded", extra={"load_ms": load_ms, "initialization": initialization})
    with single_metric(
        name=contract.METRIC_ENGINE_LOAD,
        unit=MetricUnit.Milliseconds,
        value=load_ms,
        namespace=contract.METRICS_NAMESPACE,
        default_dimensions=_dimensions(),
    ) as metric:
        metric.add_dimension(name="initialization", value=initialization)


def record_reply(
    *, init_ms: int, ttft_ms: int | None, tokens_per_s: float, completion_tokens: int
) -> None:
    """The figures of one completed reply, flushed with the handler's metrics."""
    metrics.add_metric(name=contract.METRIC_REPLIES, unit=MetricUnit.Count, value=1)
    metrics.add_metric(name=contract.METRIC_INIT, unit=MetricUnit.Milliseconds, value=init_ms)
    if ttft_ms is not None:
        metrics.add_metric(
            name=contract.METRIC_TIME_TO_FIRST_TOKEN, unit=MetricUnit.Milliseconds, value=ttft_ms
        )
    metrics.add_metric(
        name=contract.METRIC_TOKENS_PER_SECOND, unit=MetricUnit.CountPerSecond, value=tokens_per_s
    )
    metrics.add_metric(
        name=contract.METRIC_COMPLETION_TOKENS, unit=MetricUnit.Count, value=completion_tokens
    )


def record_cost(*, usd: float, gb_seconds: float, figures: dict[str, Any]) -> None:
    """`EstimatedCostUSD` and `BilledGBSeconds` of one invocation (`llambda.cost_meter`),
    each its own EMF record so it goes out even where no handler flushes `metrics`."""
    logger.info("invocation cost", extra=figures)
    for name, unit, value in (
        (contract.METRIC_ESTIMATED_COST, MetricUnit.NoUnit, usd),
        (contract.METRIC_BILLED_GB_SECONDS, MetricUnit.NoUnit, gb_seconds),
    ):
        with single_metric(
            name=name,
            unit=unit,
            value=value,
            namespace=contract.METRICS_NAMESPACE,
            default_dimensions=_dimensions(),
        ):
            pass

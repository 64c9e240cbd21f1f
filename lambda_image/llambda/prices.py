"""The list prices a stage is costed at, each with its source and the date it was checked:
read by the runtime's cost meter (`llambda.cost_meter`), the dashboard's cost widget
(`infra/constructs/monitoring.py`) and `make cost` (docs/cost.md, the README's table).
Standard library only: every part may import it, as it may `llambda.contract`.

us-east-1, x86, list prices without free tier or savings plans. AWS's pricing pages draw
their rate tables client-side; each figure below was checked against the page's text and
worked examples on the date given. Update a price here and run `make cost`.
"""

from __future__ import annotations

from dataclasses import dataclass

CHECKED_ON = "2026-11-28"


@dataclass(frozen=True, kw_only=True)
class Price:
    """One list price: `usd` per `per` units of `unit`."""

    usd: float
    per: float
    unit: str  # singular: "GB-s", "request"
    what: str
    source: str
    checked_on: str = CHECKED_ON

    @property
    def per_unit(self) -> float:
        return self.usd / self.per

    @property
    def units(self) -> str:
        return self.unit if self.unit.endswith(("-s", "GB")) else self.unit + "s"

    def label(self) -> str:
        """`$0.2 per 1M requests`, `$0.0000166667 per GB-s`."""
        usd = f"{self.usd:.10f}".rstrip("0").rstrip(".")
        if self.per == 1:
            return f"${usd} per {self.unit}"
        scale = {1_000_000: "1M", 10_000: "10,000"}.get(int(self.per), f"{self.per:,.0f}")
        return f"${usd} per {scale} {self.units}"


LAMBDA = "https://aws.amazon.com/lambda/pricing/"
API_GATEWAY = "https://aws.amazon.com/api-gateway/pricing/"
DYNAMODB = "https://aws.amazon.com/dynamodb/pricing/on-demand/"
SECRETS_MANAGER = "https://aws.amazon.com/secrets-manager/pricing/"
CLOUDWATCH = "https://aws.amazon.com/cloudwatch/pricing/"
ECR = "https://aws.amazon.com/ecr/pricing/"

PRICES: dict[str, Price] = {
    "lambda_duration": Price(
        usd=0.0000166667,
        per=1,
        unit="GB-s",
        what="Lambda duration, on-demand (x86, first 6 billion GB-s/month)",
        source=LAMBDA,
    ),
    "lambda_requests": Price(
        usd=0.20, per=1_000_000, unit="request", what="Lambda requests", source=LAMBDA
    ),
    "lambda_provisioned": Price(
        usd=0.0000041667,
        per=1,
        unit="GB-s",
        what="Lambda provisioned concurrency, while configured (x86)",
        source=LAMBDA,
    ),
    "lambda_provisioned_duration": Price(
        usd=0.0000097222,
        per=1,
        unit="GB-s",
        what="Lambda duration on a provisioned instance (x86)",
        source=LAMBDA,
    ),
    "ws_messages": Price(
        usd=1.00,
        per=1_000_000,
        unit="message",
        what="API Gateway WebSocket messages, sent or received, metered in 32 KB units "
        "(first 1 billion/month)",
        source=API_GATEWAY,
    ),
    "ws_connection_minutes": Price(
        usd=0.25,
        per=1_000_000,
        unit="connection minute",
        what="API Gateway WebSocket connection minutes",
        source=API_GATEWAY,
    ),
    "dynamodb_write": Price(
        usd=0.625,
        per=1_000_000,
        unit="write request unit",
        what="DynamoDB on-demand writes (1 WRU per 1 KB of item, standard table class)",
        source=DYNAMODB,
    ),
    "dynamodb_read": Price(
        usd=0.125,
        per=1_000_000,
        unit="read request unit",
        what="DynamoDB on-demand reads (1 RRU per strongly consistent read of 4 KB)",
        source=DYNAMODB,
    ),
    "secret_month": Price(
        usd=0.40, per=1, unit="secret-month", what="Secrets Manager secret", source=SECRETS_MANAGER
    ),
    "secret_api_calls": Price(
        usd=0.05,
        per=10_000,
        unit="API call",
        what="Secrets Manager API calls",
        source=SECRETS_MANAGER,
    ),
    "alarm_month": Price(
        usd=0.10,
        per=1,
        unit="alarm-month",
        what="CloudWatch standard-resolution metric alarm",
        source=CLOUDWATCH,
    ),
    "logs_ingest": Price(
        usd=0.50, per=1, unit="GB", what="CloudWatch Logs ingestion (standard)", source=CLOUDWATCH
    ),
    "ecr_storage": Price(
        usd=0.10, per=1, unit="GB-month", what="ECR private repository storage", source=ECR
    ),
}


# API Gateway meters WebSocket messages in 32 KB units (its pricing page: "messages are
# metered in 32 KB increments"); a larger message counts once per started 32 KB.
WS_MESSAGE_METERED_BYTES = 32 * 1024

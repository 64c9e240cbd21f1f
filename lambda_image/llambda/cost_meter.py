"""What one invocation costs, counted as the bill counts it (docs/spending.md, "Cost meter").

Every handler is `metered`: from its start to its return, the instance's meter counts
- the billed duration: the handler's run, rounded up to the millisecond, at the function's
  memory (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`), plus the init on an on-demand instance's
  first invocation (Lambda bills the init phase of on-demand functions); at the
  provisioned duration price on a provisioned instance, whose init the concurrency price
  covers;
- DynamoDB's own figure: every call asks for `ReturnConsumedCapacity`, and the read and
  write units each answer reports are added up (a write refused by its condition is still
  metered: at least one write unit);
- API Gateway messages: each `@connections` post, per started 32 KB, and the message the
  router was invoked for; connection minutes, counted when a connection ends;
- Secrets Manager calls (a cold start's secret read).

When the handler returns, the figures and their price (`llambda.prices`) go out as the
`EstimatedCostUSD` and `BilledGBSeconds` metrics and one `invocation cost` log line. The
dashboard sums them per day. What no invocation holds (provisioned concurrency between
replies, storage, alarms) is the stage's at-rest cost, which `make cost` counts.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from llambda import instance
from llambda.observability import record_cost
from llambda.prices import PRICES, WS_MESSAGE_METERED_BYTES

# As near to the init's start as the runtime package gets: its first import.
PROCESS_STARTED = time.monotonic()

_READS = frozenset({"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"})
_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, kw_only=True)
class Bill:
    """One invocation's metered use, and what it costs at list price."""

    billed_ms: int
    memory_mb: int
    provisioned: bool
    read_units: float = 0.0
    write_units: float = 0.0
    ws_messages: int = 0
    connection_minutes: int = 0
    secret_calls: int = 0
    requests: int = 1

    @property
    def gb_seconds(self) -> float:
        return self.billed_ms / 1000 * self.memory_mb / 1024

    def usd_by_item(self) -> dict[str, float]:
        """Each price this invocation used, and what it came to."""
        duration = "lambda_provisioned_duration" if self.provisioned else "lambda_duration"
        quantities = {
            duration: self.gb_seconds,
            "lambda_requests": self.requests,
            "dynamodb_read": self.read_units,
            "dynamodb_write": self.write_units,
            "ws_messages": self.ws_messages,
            "ws_connection_minutes": self.connection_minutes,
            "secret_api_calls": self.secret_calls,
        }
        return {name: q * PRICES[name].per_unit for name, q in quantities.items() if q}

    @property
    def usd(self) -> float:
        return sum(self.usd_by_item().values())

    def to_log(self) -> dict[str, Any]:
        return {
            "billed_ms": self.billed_ms,
            "memory_mb": self.memory_mb,
            "provisioned": self.provisioned,
            "gb_seconds": round(self.gb_seconds, 6),
            "read_units": self.read_units,
            "write_units": self.write_units,
            "ws_messages": self.ws_messages,
            "connection_minutes": self.connection_minutes,
            "secret_calls": self.secret_calls,
            "usd": round(self.usd, 10),
        }


def ws_messages(size_bytes: int) -> int:
    """How many messages API Gateway meters for one of `size_bytes`."""
    return max(1, math.ceil(size_bytes / WS_MESSAGE_METERED_BYTES))


def _units(consumed: Any) -> float:
    """The capacity units in a `ConsumedCapacity` (one table's, or a list of them)."""
    if isinstance(consumed, dict):
        return float(consumed.get("CapacityUnits") or 0.0)
    if isinstance(consumed, list):
        return sum(_units(each) for each in consumed)
    return 0.0


class CostMeter:
    """The instance's meter: `instrument` its clients, `metered` its handler. One
    invocation runs at a time per instance; its threads (the reply's watcher) add to the
    same counts, under a lock."""

    def __init__(
        self,
        *,
        memory_mb: int,
        provisioned: bool,
        started_at: float = PROCESS_STARTED,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.memory_mb = memory_mb
        self.provisioned = provisioned
        self._clock = clock
        self._lock = threading.Lock()
        self._init_started: float | None = None if provisioned else started_at
        self._began = clock()
        self._counts: dict[str, float] = {}

    @classmethod
    def from_environment(cls) -> CostMeter:
        return cls(memory_mb=instance.memory_mb(), provisioned=instance.IS_PROVISIONED)

    # Counting -------------------------------------------------------------------------

    def add(self, what: str, amount: float) -> None:
        with self._lock:
            self._counts[what] = self._counts.get(what, 0.0) + amount

    def received(self, size_bytes: int) -> None:
        """The WebSocket message this invocation was made for."""
        self.add("ws_messages", ws_messages(size_bytes))

    def connection_ended(self, connected_at_ms: int, now_ms: int) -> None:
        """A connection's minutes, metered in started minutes when it ends."""
        self.add("connection_minutes", max(1, math.ceil((now_ms - connected_at_ms) / 60_000)))

    def instrument(self, client: Any) -> Any:
        """Count what `client`'s calls are billed for (DynamoDB, @connections, Secrets
        Manager); any other client is returned as it is."""
        service = client.meta.service_model.service_name
        events = client.meta.events
        if service == "dynamodb":
            events.register("provide-client-params.dynamodb", self._ask_for_capacity)
            events.register("after-call.dynamodb", self._dynamodb_answered)
        elif service == "apigatewaymanagementapi":
            events.register(
                "provide-client-params.apigatewaymanagementapi.PostToConnection", self._posting
            )
        elif service == "secretsmanager":
            events.register("after-call.secretsmanager", self._secret_call)
        return client

    def _ask_for_capacity(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name in _READS | _WRITES:
            params.setdefault("ReturnConsumedCapacity", "TOTAL")

    def _dynamodb_answered(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        kind = "read_units" if model.name in _READS else "write_units"
        if model.name not in _READS | _WRITES:
            return
        units = _units(parsed.get("ConsumedCapacity"))
        refused = parsed.get("Error", {}).get("Code") == "ConditionalCheckFailedException"
        if refused and not units:
            units = 1.0  # a refused write is metered too; its answer does not say how much
        self.add(kind, units)

    def _posting(self, params: dict[str, Any], **_: Any) -> None:
        data = params.get("Data") or b""
        self.add("ws_messages", ws_messages(len(data)))

    def _secret_call(self, **_: Any) -> None:
        self.add("secret_calls", 1)

    # The invocation ---------------------------------------------------------------------

    def begin(self) -> None:
        with self._lock:
            self._counts = {}
            self._began = self._clock()

    def end(self) -> Bill:
        now = self._clock()
        with self._lock:
            counts, self._counts = self._counts, {}
            run_s = now - self._began
            if self._init_started is not None:  # the first invocation also pays the init
                run_s += self._began - self._init_started
                self._init_started = None
        return Bill(
            billed_ms=max(1, math.ceil(run_s * 1000)),
            memory_mb=self.memory_mb,
            provisioned=self.provisioned,
            read_units=counts.get("read_units", 0.0),
            write_units=counts.get("write_units", 0.0),
            ws_messages=int(counts.get("ws_messages", 0)),
            connection_minutes=int(counts.get("connection_minutes", 0)),
            secret_calls=int(counts.get("secret_calls", 0)),
        )


METER = CostMeter.from_environment()


def metered(handler: F) -> F:
    """Meter every invocation of `handler`; its bill goes out when it returns or raises."""

    @functools.wraps(handler)
    def run(*args: Any, **kwargs: Any) -> Any:
        METER.begin()
        try:
            return handler(*args, **kwargs)
        finally:
            bill = METER.end()
            record_cost(usd=bill.usd, gb_seconds=bill.gb_seconds, figures=bill.to_log())

    return run  # type: ignore[return-value]

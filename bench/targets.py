"""The targets the issue sets, checked against a run's figures (informational only)."""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Target:
    name: str
    pick: Callable[[dict[str, Any]], float | None]
    op: str  # ">=", "<=" or "<"
    threshold: float
    unit: str = ""

    def check(self, results: dict[str, Any]) -> dict[str, Any]:
        try:
            value = self.pick(results)
        except (KeyError, IndexError, TypeError):
            value = None
        compare = {">=": operator.ge, "<=": operator.le, "<": operator.lt}[self.op]
        passed = value is not None and compare(value, self.threshold)
        return {
            "name": self.name,
            "value": value,
            "target": f"{self.op} {self.threshold:g}{self.unit}",
            "pass": passed,
        }


def _lowest_ratio(streamed: dict[str, Any]) -> float:
    return min(row["ratio"] for row in streamed["delivered"])


# The ratio's spread the bench repeats runs to get under, and the target that judges it.
SPREAD_GOAL_PCT = 2.0


def _widest_spread(streamed: dict[str, Any]) -> float | None:
    spreads = [row["ratio_spread_pct"] for row in streamed["delivered"]]
    return None if None in spreads else max(spreads)


TARGETS = [
    Target(
        "matched threads: delivered / engine tokens/s, lowest over the latencies",
        _lowest_ratio,
        ">=",
        0.97,
    ),
    Target(
        "matched threads: spread of that ratio, widest over the latencies",
        _widest_spread,
        "<",
        SPREAD_GOAL_PCT,
        " %",
    ),
    Target(
        "… with a core left for the emulated AWS services: lowest ratio",
        lambda r: _lowest_ratio(r["spare_core"]),
        ">=",
        0.97,
    ),
    Target(
        "… with a core left for the emulated AWS services: widest spread",
        lambda r: _widest_spread(r["spare_core"]),
        "<",
        SPREAD_GOAL_PCT,
        " %",
    ),
    Target(
        "added time to first token, locally (the waterfall)",
        lambda r: r["waterfall"]["local"]["added_ms"],
        "<=",
        20,
        " ms",
    ),
    Target(
        "messages per second to the client (worst latency)",
        lambda r: max(d["messages_per_s"] for d in r["delivered"]),
        "<=",
        25,
        "/s",
    ),
    Target(
        "time to first token, turn 10 of a conversation ÷ turn 1 (warm instance)",
        lambda r: r["conversation"]["turn10_over_turn1"],
        "<=",
        1.2,
    ),
    Target(
        "a resume: from `attach` to the first replayed delta",
        lambda r: r["conversation"]["resume"]["resume_ms"],
        "<=",
        50,
        " ms",
    ),
    Target(
        "inference handler import",
        lambda r: r["cold_start"]["inference_import_ms"],
        "<",
        300,
        " ms",
    ),
]


def check_all(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [t.check(results) for t in TARGETS]

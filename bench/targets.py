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


def _delivered(results: dict[str, Any], latency_ms: float) -> dict[str, Any]:
    return next(r for r in results["delivered"] if r["latency_ms"] == latency_ms)


def _spare(results: dict[str, Any], latency_ms: float) -> dict[str, Any]:
    return _delivered(results["spare_core"], latency_ms)


TARGETS = [
    Target(
        "delivered / engine tokens/s at 0 ms",
        lambda r: _delivered(r, 0)["ratio"],
        ">=",
        0.97,
    ),
    Target(
        "delivered / engine tokens/s at 30 ms",
        lambda r: _delivered(r, 30)["ratio"],
        ">=",
        0.95,
    ),
    Target(
        "… with a core left for the emulated AWS services, at 0 ms",
        lambda r: _spare(r, 0)["ratio"],
        ">=",
        0.97,
    ),
    Target(
        "… with a core left for the emulated AWS services, at 30 ms",
        lambda r: _spare(r, 30)["ratio"],
        ">=",
        0.95,
    ),
    Target(
        "added time to first token at 0 ms",
        lambda r: _delivered(r, 0)["added_ttft_ms"],
        "<=",
        30,
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
        "inference handler import",
        lambda r: r["cold_start"]["inference_import_ms"],
        "<",
        300,
        " ms",
    ),
]


def check_all(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [t.check(results) for t in TARGETS]

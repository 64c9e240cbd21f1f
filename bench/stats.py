"""Small helpers for repeated measurements."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def repeat(run: Callable[[], T], times: int) -> list[T]:
    return [run() for _ in range(times)]


def median_of(samples: Sequence[dict[str, float]], key: str) -> float:
    """The median of one figure across runs."""
    return median([s[key] for s in samples])

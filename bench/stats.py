"""Small helpers for repeated measurements."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from typing import TypeVar

import scipy.stats

T = TypeVar("T")


def spread_pct(values: Sequence[float]) -> float:
    """± this many percent: the 95 % confidence half-width of the mean, relative to it.
    It narrows as repeats are added, unlike the range, so "repeat until the spread is
    under 2 %" ends. Student's t, not 1.96: with 5 runs the stdev is itself a guess, and
    the normal quantile would give a half-width 29 % too narrow."""
    n = len(values)
    if n < 2:
        return float("inf")
    quantile = float(scipy.stats.t.ppf(0.975, n - 1))
    return quantile * statistics.stdev(values) / math.sqrt(n) / statistics.fmean(values) * 100


def bracketed_ratio(value: float, before: float, after: float) -> float:
    """`value` over the geometric mean of the baseline runs just before and after it: a
    baseline drifting steadily across the three runs cancels out of the ratio."""
    return value / math.sqrt(before * after)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def repeat(run: Callable[[], T], times: int) -> list[T]:
    return [run() for _ in range(times)]


def median_of(samples: Sequence[dict[str, float]], key: str) -> float:
    """The median of one figure across runs."""
    return median([s[key] for s in samples])

"""The two statistics the bench's headline rests on."""

from __future__ import annotations

import math

import pytest

from bench.stats import bracketed_ratio, spread_pct


def test_spread_is_students_t_half_width_so_few_runs_are_not_trusted_too_early():
    # Mean 2, stdev 1, 3 runs: t(0.975, 2) = 4.303, so ± 4.303 / √3 / 2 = ± 124.2 %.
    assert spread_pct([1.0, 2.0, 3.0]) == pytest.approx(124.2, abs=0.1)
    # Five runs 1 % apart: the normal quantile would call it ± 1.2 %, Student's t ± 1.96 %.
    assert spread_pct([1.0, 1.02, 0.98, 1.01, 0.99]) == pytest.approx(1.963, abs=1e-3)
    assert spread_pct([1.0]) == math.inf


def test_a_steadily_drifting_baseline_cancels_out_of_the_ratio():
    # The engine speeds up by 10 % over three runs and the arm between them matched it:
    # against the run before it alone, the arm would look 4.9 % faster than the engine.
    assert bracketed_ratio(100 * math.sqrt(1.1), 100.0, 110.0) == pytest.approx(1.0)

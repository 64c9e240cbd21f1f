"""`bench.render_cost` measures the page's own renderer (the figure `make bench` records)."""

from __future__ import annotations

import pytest

from bench import render_cost

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_a_delta_costs_far_less_than_rebuilding_a_long_reply(browser):
    result = render_cost.measure(samples=3, browser=browser)
    assert [row["chars"] for row in result["sizes"]] == [2_000, 30_000, 100_000]
    largest = result["sizes"][-1]
    # Rebuilding 100k characters takes tens of milliseconds; a delta into kept blocks, ~1.
    assert largest["kept_ms"] * 3 < largest["rebuilt_ms"], largest

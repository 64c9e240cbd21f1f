"""`make bench`'s conversation figures (bench/conversation.py) in quick mode, on the shared
twin: every turn and the resume are measured (no timing is asserted)."""

from __future__ import annotations

import math

import pytest

from bench import conversation


@pytest.mark.slow
def test_turns_one_to_ten_and_a_resume_are_measured(cloud):
    figures = conversation.measure(cloud.ws_url, quick=True)
    turns = figures["turns"]
    assert [t["turn"] for t in turns] == list(range(1, 11))
    # One conversation: each turn's prompt holds the ones before it, so it only grows.
    prompt_tokens = [t["prompt_tokens"] for t in turns]
    assert prompt_tokens == sorted(set(prompt_tokens))
    for turn in turns:
        assert math.isfinite(turn["ttft_ms"]) and turn["ttft_ms"] > 0
        assert turn["engine_ttft_ms"] > 0
    assert figures["turn10_over_turn1"] == round(turns[-1]["ttft_ms"] / turns[0]["ttft_ms"], 3)
    (resume,) = figures["resume"]["runs"]
    assert resume["had_seq"] == 1 and resume["reason"] in ("length", "end")
    assert resume["resume_ms"] is not None and resume["resume_ms"] >= resume["attached_ms"] > 0
    lines = conversation.summary_lines(figures)
    assert all(f"turn {n} " in lines[0] for n in (1, 5, 10))
    assert lines[1].startswith("resume: attach → first replayed delta")

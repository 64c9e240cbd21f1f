"""`make cost`: the document covers every stage, and its figures follow from the formula."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from bench import cost
from bench.published import PICOLLM_LAMBDA_SPEED
from infra.config import STAGES
from llambda.prices import PRICES

REPO = Path(__file__).resolve().parents[2]


def _summary_row(doc: str, stage: str) -> list[str]:
    row = next(line for line in doc.splitlines() if line.startswith(f"| {stage} |"))
    return [cell.strip() for cell in row.strip("|").split("|")]


def _usd(cell: str) -> float:
    return float(cell.replace("$", "").replace(",", ""))


def _per_thousand_by_hand(config, *, provisioned: bool) -> float:
    """The per-1,000-replies formula written out again, from the prices and the config."""
    p = {k: v.usd / v.per for k, v in PRICES.items()}
    t = 256 / PICOLLM_LAMBDA_SPEED.tokens_per_s
    gb, small_gb = config.inference_memory_mb / 1024, config.router_memory_mb / 1024
    small_calls = 1 + 2 + (1 if config.require_token else 0)
    item = config.history_max_chars * 0.5 + 300
    polls = math.floor(t * 1000 / config.stop_poll_ms) + 1
    writes = 2 + 1 + math.floor(t / (config.lease_seconds / 3)) + 1 + 1 + 2
    deltas = min(256, math.ceil(t * 1000 / config.coalesce_ms))
    one = (
        t * gb * p["lambda_provisioned_duration" if provisioned else "lambda_duration"]
        + small_calls * 0.05 * small_gb * p["lambda_duration"]
        + (1 + small_calls) * p["lambda_requests"]
        + (deltas + 3) * p["ws_messages"]
        + (t / 60 + 1) * p["ws_connection_minutes"]
        + polls * math.ceil(item / 4096) * p["dynamodb_read"]
        + writes * math.ceil(item / 1024) * p["dynamodb_write"]
        + 4 / 1024 / 1024 * p["logs_ingest"]
    )
    return 1000 * one


@pytest.fixture(scope="module")
def doc(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("cost") / "cost.md"
    assert cost.main(["--out", str(out)]) == 0
    return out.read_text(encoding="utf-8")


def test_every_stage_has_a_summary_and_a_section(doc):
    for name in STAGES:
        assert f"## {name}" in doc
        _summary_row(doc, name)


@pytest.mark.parametrize("name", list(STAGES))
def test_per_thousand_replies_follows_the_formula(doc, name):
    config = STAGES[name]
    cells = _summary_row(doc, name)
    assert _usd(cells[2]) == pytest.approx(
        _per_thousand_by_hand(config, provisioned=False), abs=0.006
    )
    if config.provisioned_concurrency:
        assert _usd(cells[3]) == pytest.approx(
            _per_thousand_by_hand(config, provisioned=True), abs=0.006
        )


@pytest.fixture(scope="module")
def footprints():
    return cost.stack_footprints()


def test_footprints_come_from_every_stage_of_the_stack(footprints):
    assert set(footprints) == set(STAGES)
    for name, footprint in footprints.items():
        assert footprint.alarms > 0, name
        # The AccessKey secret always; the connect-token secret where a token is required.
        assert footprint.secrets == 1 + (1 if STAGES[name].require_token else 0), name


@pytest.mark.parametrize("name", list(STAGES))
def test_at_rest_is_provisioned_concurrency_plus_secrets_and_alarms(doc, footprints, name):
    config = STAGES[name]
    # All month, or a scheduled stage's hours a week (Dev: 10 h on 5 days).
    hours = {"Dev": 10 * 5 * 730 / 168, "Prod": 730}[name]
    pc = (
        config.provisioned_concurrency
        * config.inference_memory_mb
        / 1024
        * hours
        * 3600
        * PRICES["lambda_provisioned"].usd
    )
    fp = footprints[name]
    fixed = fp.secrets * 0.40 + fp.alarms * 0.10 + cost.Assumptions().image_gb * 0.10
    assert _usd(_summary_row(doc, name)[1]) == pytest.approx(pc + fixed, abs=0.006)


@pytest.mark.parametrize("name", list(STAGES))
def test_each_line_has_its_own_key(footprints, name):
    # The document's prose finds lines by key; two lines under one key would be summed
    # into one figure or hide each other.
    config, a = STAGES[name], cost.Assumptions()
    for lines in (
        cost.at_rest(config, a, footprints[name]),
        cost.per_replies(config, a, provisioned=False),
        cost.per_replies(config, a, provisioned=True),
    ):
        items = [line.item for line in lines]
        assert len(items) == len(set(items)), items


def test_every_price_is_cited_with_a_source_and_date(doc):
    for price in PRICES.values():
        assert price.source.startswith("https://")
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", price.checked_on)
        assert price.source in doc
    assert PICOLLM_LAMBDA_SPEED.source in doc


def test_committed_document_is_current(doc):
    committed = REPO / "docs" / "cost.md"
    # Committed, so never skipped: a missing document is a failure, with the fix named.
    assert committed.is_file(), "docs/cost.md is missing: run `make cost`"
    assert committed.read_text(encoding="utf-8") == doc, "run `make cost` to regenerate it"


def test_the_readmes_cost_table_is_the_generated_one(doc, footprints):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert cost.readme_with_table(readme, cost.Assumptions(), footprints) == readme, (
        "run `make cost` to regenerate the README's cost table"
    )
    # The same figures as the document's summary, which the tests above check by hand.
    for name in STAGES:
        row = "| " + " | ".join(_summary_row(doc, name)) + " |"
        assert row in readme, name


def test_a_readme_without_the_tables_markers_is_refused(footprints):
    with pytest.raises(ValueError, match="cost table"):
        cost.readme_with_table("# no table here\n", cost.Assumptions(), footprints)

"""Spending control through the twin, over the WebSocket with the real tiny model and the
stack's table on moto: the kill switch, a conversation's budget, and parallel clients
on the stage's daily budget."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from admin import generation
from llambda.budgets import _day_window
from llambda.generation_switch import MAX_AGE_SECONDS
from offline.cloud import OfflineCloud
from tests.conftest import ROOMY
from tests.offline.twin_helpers import (
    LOCAL_ENVIRONMENT,
    chat,
    connect,
    conversation_of,
    diagnostics,
    until_done,
)
from tests.twin_assembly import TWIN_STAGE

CONVERSATION_CAP = 300
STAGE_CAP = 1500
COUNTING = "Count from 1 to 1000, one number after another, separated by commas."


def run(coro):
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def twin(assemblies) -> Iterator[OfflineCloud]:
    budgets = {
        "conversationTokenBudget": CONVERSATION_CAP,
        "clientTokensPerDay": 0,
        "stageTokensPerDay": STAGE_CAP,
    }
    cloud = OfflineCloud(
        assembly=assemblies.get({**ROOMY, **budgets}),
        stage=TWIN_STAGE,
        environment=LOCAL_ENVIRONMENT,
    )
    cloud.start()
    try:
        yield cloud
    finally:
        cloud.stop()


def used(cloud: OfflineCloud, item_id: str) -> int:
    item = cloud.table().get_item(Key={"pk": f"budget#{item_id}"}, ConsistentRead=True)
    return int(item.get("Item", {}).get("used", 0))


def stage_counter() -> str:
    return f"stage#{_day_window(int(time.time()))[0]}"


def switch(cloud: OfflineCloud, state: str | None) -> None:
    """`make generation STATE=…` against the twin's SSM."""
    parameter = cloud.parameter("Generation/Parameter")
    args = [] if state is None else [state]
    assert generation.main([*args, "--parameter", parameter, "--endpoint-url", cloud.moto_url]) == 0


def test_the_kill_switch_refuses_new_replies_within_seconds_and_one_command_undoes_it(twin):
    switch(twin, "off")
    flipped = time.monotonic()

    async def until_refused() -> tuple[dict, float]:
        async with connect(twin) as ws:
            while True:
                await chat(ws, "Say hi.", max_tokens=4)
                _, end = await until_done(ws)
                if end.get("code") == "generation_off":
                    return end, time.monotonic() - flipped
                assert end["type"] == "done", end  # read before the flip: it still runs

    refused, after = run(until_refused())
    # Within the router's cache age (5 s), plus a reply that started just before.
    assert after < 15, after
    assert "turned off" in refused["message"]
    switch(twin, "on")

    async def accepted() -> dict:
        async with connect(twin) as ws:
            deadline = time.monotonic() + 15
            while True:
                await chat(ws, "Say hi.", max_tokens=4)
                _, end = await until_done(ws)
                if end["type"] == "done" or time.monotonic() > deadline:
                    return end

    assert run(accepted())["type"] == "done", diagnostics(twin)
    # One router instance has read "on"; the others may hold "off" for their cache's age.
    # The tests after this one start once every reading has expired.
    time.sleep(MAX_AGE_SECONDS)
    # The router read the parameter through the twin's IAM: CDK's grant is all it needs.
    assert not any("ssm:" in line for line in twin.access.denials), twin.access.denials


def test_a_conversation_stops_at_its_budget_cut_short_then_refused(twin):
    async def until_refused() -> tuple[list[dict], str]:
        ends = []
        async with connect(twin) as ws:
            while True:
                await chat(ws, COUNTING, max_tokens=256)
                _, end = await until_done(ws, timeout=180)
                ends.append(end)
                if end.get("code") == "budget_exhausted":
                    return ends, conversation_of(ws)
                assert len(ends) < 30, ends

    ends, conversation = run(until_refused())
    *replies, refused = ends
    generated = sum(end["usage"]["completion_tokens"] for end in replies)
    # Every token the conversation may have, and not one more: the last reply was given
    # only what was left, and ended where it ran out.
    assert generated == CONVERSATION_CAP
    assert used(twin, f"conversation#{conversation}") == CONVERSATION_CAP
    cut = replies[-1]
    assert (cut["type"], cut["code"], cut["scope"]) == ("error", "budget_cut_short", "conversation")
    assert (refused["scope"], refused["resets_at"]) == ("conversation", None)
    # What was written before the cut is kept in the conversation.
    assert replies[0]["type"] == "done"


def test_parallel_clients_never_take_the_stage_past_its_daily_budget(twin):
    before = used(twin, stage_counter())
    clients = 4

    async def client() -> tuple[int, dict]:
        """Chats until the stage refuses, in a new conversation whenever one's budget is
        used up."""
        generated = 0
        while True:
            async with connect(twin) as ws:
                while True:
                    await chat(ws, COUNTING, max_tokens=64)
                    _, end = await until_done(ws, timeout=180)
                    if end.get("code") == "budget_exhausted":
                        if end["scope"] == "stage":
                            return generated, end
                        break
                    assert end["type"] == "done" or end.get("code") == "budget_cut_short", end
                    generated += end["usage"]["completion_tokens"]

    async def all_clients() -> list[tuple[int, dict]]:
        return await asyncio.gather(*(client() for _ in range(clients)))

    results = run(all_clients())
    total = sum(generated for generated, _ in results)
    # The reservation keeps parallel replies inside the cap: none overshoots it at all.
    assert before + total <= STAGE_CAP, (before, total)
    # A client is refused while the others' reservations are held (at most one reply's
    # worth each), which they give back as they end.
    assert before + total >= STAGE_CAP - clients * 64, (before, total)
    assert used(twin, stage_counter()) == before + total
    midnight = _day_window(int(time.time()))[1]
    resets = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(midnight))
    for _, refused in results:
        assert (refused["scope"], refused["resets_at"]) == ("stage", resets)

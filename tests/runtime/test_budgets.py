"""The budget store against moto's DynamoDB server, on the table the synthesized stage
declares: reservations, refunds, UTC day windows, and parallel chats that never generate
past a cap."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from llambda.budgets import (
    BudgetExhausted,
    BudgetLimits,
    BudgetStore,
    Reservation,
    Scope,
    identity_of,
)
from llambda.table import TTL_ATTRIBUTE

from .conftest import new_id

# 2026-11-30 23:59:00 UTC: a minute before the day's counters close.
LATE = int(dt.datetime(2026, 11, 30, 23, 59, tzinfo=dt.UTC).timestamp()) * 1000


class Clock:
    def __init__(self, ms: int = LATE) -> None:
        self.ms = ms


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def budgets(moto_server, table, clock) -> BudgetStore:
    return BudgetStore(moto_server.client("dynamodb"), table, clock_ms=lambda: clock.ms)


def counters(budgets: BudgetStore, limits: BudgetLimits, conversation=None, identity=None):
    return budgets.counters(
        limits,
        conversation_id=conversation or new_id(),
        identity=identity or identity_of(new_id()),
        ttl_seconds=3600,
    )


def test_only_the_caps_that_are_set_are_counted(budgets):
    assert counters(budgets, BudgetLimits()) == []
    found = counters(budgets, BudgetLimits(client_tokens_per_day=10))
    assert [c.scope for c in found] == [Scope.CLIENT]


def test_a_reservation_fits_under_the_cap_and_its_unused_part_comes_back(budgets):
    limits = BudgetLimits(conversation_tokens=300, client_tokens_per_day=1000)
    found = counters(budgets, limits)
    held = budgets.reserve(found, 256)
    assert (held.reserved, held.allowed, held.limited_by) == (256, 256, None)
    assert [budgets.used(c.item_id) for c in found] == [256, 256]
    budgets.settle(held, 100)
    assert [budgets.used(c.item_id) for c in found] == [100, 100]
    # 200 left on the conversation: the next reply is given that much, and told why.
    second = budgets.reserve(found, 256)
    assert (second.allowed, second.limited_by, second.resets_at) == (
        200,
        Scope.CONVERSATION,
        None,
    )
    budgets.settle(second, 200)
    with pytest.raises(BudgetExhausted) as refused:
        budgets.reserve(found, 256)
    assert refused.value.counter.scope is Scope.CONVERSATION
    # A refusal reserves nothing anywhere: the client counter is as the two replies left it.
    assert budgets.used(found[1].item_id) == 300


def test_a_refusal_by_a_later_counter_gives_back_the_earlier_ones(budgets):
    identity = identity_of(new_id())
    spent = counters(budgets, BudgetLimits(client_tokens_per_day=100), identity=identity)
    budgets.settle(budgets.reserve(spent, 100), 100)
    limits = BudgetLimits(conversation_tokens=1000, client_tokens_per_day=100)
    found = counters(budgets, limits, identity=identity)
    with pytest.raises(BudgetExhausted) as refused:
        budgets.reserve(found, 50)
    assert refused.value.counter.scope is Scope.CLIENT
    assert budgets.used(found[0].item_id) == 0


def test_days_are_utc_days_and_the_refusal_says_when_the_budget_resets(budgets, clock):
    identity = identity_of("a token")
    limits = BudgetLimits(client_tokens_per_day=10, stage_tokens_per_day=10**9)
    found = counters(budgets, limits, identity=identity)
    budgets.settle(budgets.reserve(found, 10), 10)
    with pytest.raises(BudgetExhausted) as refused:
        budgets.reserve(counters(budgets, limits, identity=identity), 10)
    assert refused.value.counter.resets_at == "2026-12-01T00:00:00Z"
    item = budgets.get(found[0].item_id)
    # Kept a day past its window, then DynamoDB's TTL deletes it.
    closes = int(dt.datetime(2026, 12, 1, tzinfo=dt.UTC).timestamp())
    assert int(item[TTL_ATTRIBUTE]["N"]) == closes + 86_400
    clock.ms += 60_000  # past midnight UTC: a new day, a new counter
    assert budgets.reserve(counters(budgets, limits, identity=identity), 10).allowed == 10


def test_no_token_or_key_is_stored_only_its_hash(budgets):
    [counter] = counters(
        budgets, BudgetLimits(client_tokens_per_day=5), identity=identity_of("s3cret")
    )
    assert "s3cret" not in counter.item_id
    assert identity_of("s3cret") in counter.item_id


def test_a_reservation_travels_in_the_dispatch(budgets):
    held = budgets.reserve(counters(budgets, BudgetLimits(stage_tokens_per_day=10**6)), 64)
    assert Reservation.from_event(held.to_event()) == held
    assert Reservation.from_event(None) is None


def test_the_usual_reservation_is_one_round_trip_and_a_short_one_falls_back(budgets):
    """On the first token's path: every counter with room for the whole reservation is
    written at once; a counter with less makes it give back the others and fall back to
    one write per counter, which finds the room, with nothing added twice."""
    calls: list[str] = []
    budgets._db.meta.events.register(
        "before-call.dynamodb", lambda model, **_: calls.append(model.name)
    )
    limits = BudgetLimits(
        conversation_tokens=300, client_tokens_per_day=10_000, stage_tokens_per_day=10_000
    )
    found = counters(budgets, limits)
    stage_before = budgets.used(found[2].item_id)  # the day's stage counter is shared
    calls.clear()

    def used() -> list[int]:
        figures = [budgets.used(c.item_id) for c in found]
        return [*figures[:2], figures[2] - stage_before]

    held = budgets.reserve(found, 256)
    assert calls == ["UpdateItem"] * 3
    assert (held.allowed, held.limited_by) == (256, None)
    assert used() == [256, 256, 256]
    calls.clear()
    second = budgets.reserve(found, 256)  # 44 left on the conversation
    # Three at once (one refused), two given back, then one each.
    assert calls == ["UpdateItem"] * 8
    assert (second.allowed, second.limited_by) == (44, Scope.CONVERSATION)
    assert used() == [512, 512, 512]


@pytest.mark.parametrize(
    ("cap", "daily"),
    [(1000, False), (1001, False), (1000, True)],
    ids=["cap-1000", "cap-1001", "with-daily-counters"],
)
def test_parallel_chats_never_generate_past_a_cap(moto_server, table, budgets, cap, daily):
    """Twelve clients chat at once, each asking 128 tokens a reply and using all it is
    given, until refused: what they generated in all never exceeds the shared cap (the
    reservation is at most one reply's cap beyond it, and is given back). With the daily
    counters too, each reservation goes through the one-transaction path first."""
    conversation = new_id()
    roomy = 1_000_000 if daily else 0
    limits = BudgetLimits(
        conversation_tokens=cap, client_tokens_per_day=roomy, stage_tokens_per_day=roomy
    )
    generated: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(12)

    def client() -> None:
        store = BudgetStore(moto_server.client("dynamodb"), table)
        start.wait()
        while True:
            try:
                held = store.reserve(counters(store, limits, conversation=conversation), 128)
            except BudgetExhausted:
                return
            with lock:
                generated.append(held.allowed)
            store.settle(held, held.allowed)

    threads = [threading.Thread(target=client) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(generated) == cap  # all of it used, none past it
    assert budgets.used(f"conversation#{conversation}") == cap

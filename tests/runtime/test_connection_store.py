"""The connection store against moto's DynamoDB server."""

from __future__ import annotations

import json
import time

import pytest

from llambda.connections import Busy, ConnectionStore, RateLimited, ReplyState, trim_history

from .conftest import new_id


def connect(store, cid=None) -> str:
    cid = cid or new_id()
    store.put(cid, source_ip="1.2.3.4", origin="http://localhost:8787", ttl_seconds=7800)
    return cid


def test_put_writes_the_documented_attributes(store):
    cid = connect(store)
    item = store.get(cid)
    assert item["sourceIp"] == {"S": "1.2.3.4"}
    assert item["origin"] == {"S": "http://localhost:8787"}
    assert int(item["expiresAt"]["N"]) - int(item["connectedAt"]["N"]) // 1000 == 7800
    assert json.loads(item["history"]["S"]) == [] and item["epoch"] == {"N": "0"}
    store.delete(cid)
    assert store.get(cid) is None
    store.delete(cid)  # deleting twice is fine


def test_one_lease_at_a_time(store):
    cid = connect(store)
    store.admit_chat(cid, "r1", per_minute=100, lease_seconds=60, ttl_seconds=100)
    with pytest.raises(Busy):
        store.admit_chat(cid, "r2", per_minute=100, lease_seconds=60, ttl_seconds=100)
    assert not store.release_lease(cid, "r2")  # never someone else's lease
    assert store.get(cid)["replyId"] == {"S": "r1"}
    assert store.renew_lease(cid, "r1", 60)
    assert not store.renew_lease(cid, "r2", 60)
    assert store.release_lease(cid, "r1")
    store.admit_chat(cid, "r2", per_minute=100, lease_seconds=60, ttl_seconds=100)
    assert store.get(cid)["replyId"] == {"S": "r2"}


def test_a_crashed_reply_frees_the_connection_when_its_lease_lapses(moto_server, table):
    clock = {"ms": 1_000_000}
    store = ConnectionStore(moto_server.client("dynamodb"), table, clock_ms=lambda: clock["ms"])
    cid = connect(store)
    store.admit_chat(
        cid, "crashed", per_minute=100, lease_seconds=60, ttl_seconds=100
    )  # and never released
    clock["ms"] += 59_000
    with pytest.raises(Busy):
        store.admit_chat(cid, "next", per_minute=100, lease_seconds=60, ttl_seconds=100)
    clock["ms"] += 2_000
    store.admit_chat(cid, "next", per_minute=100, lease_seconds=60, ttl_seconds=100)
    assert store.reply_state(cid, "crashed") is ReplyState.STOP  # the old one must stop
    assert store.reply_state(cid, "next") is ReplyState.RUN


def test_lease_on_a_missing_record_recreates_it(store):
    cid = new_id()
    store.admit_chat(cid, "r1", per_minute=100, lease_seconds=60, ttl_seconds=100)
    item = store.get(cid)
    assert item["replyId"] == {"S": "r1"} and "expiresAt" in item


def test_stop_marks_only_the_running_reply(store):
    cid = connect(store)
    assert store.request_stop(cid) is None  # nothing running: no-op
    store.admit_chat(cid, "r1", per_minute=100, lease_seconds=60, ttl_seconds=100)
    assert not store.is_stop_requested(cid, "r1")
    assert store.request_stop(cid) == "r1"
    assert store.is_stop_requested(cid, "r1")
    store.release_lease(cid, "r1")
    store.admit_chat(
        cid, "r2", per_minute=100, lease_seconds=60, ttl_seconds=100
    )  # a new reply starts unmarked
    assert store.reply_state(cid, "r2") is ReplyState.RUN
    store.delete(cid)
    assert store.reply_state(cid, "r2") is ReplyState.GONE


def test_missing_record_never_raises(store):
    cid = new_id()
    assert store.request_stop(cid) is None
    assert store.reset(cid) is False
    assert store.release_lease(cid, "r") is False
    assert store.renew_lease(cid, "r", 60) is False
    assert store.load_history(cid).turns == []
    assert not store.save_history(cid, [{"role": "user", "content": "x"}], epoch=0, max_chars=9)
    assert store.get(cid) is None  # ...and none of them created a record
    # A chat on a socket whose record vanished recreates it rather than failing.
    assert store.admit_chat(cid, "r", per_minute=3, lease_seconds=60, ttl_seconds=60).turns == []
    assert store.get(cid)["replyId"] == {"S": "r"}


def test_history_saved_only_while_epoch_unchanged(store):
    cid = connect(store)
    history = store.load_history(cid)
    turns = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    assert store.save_history(cid, turns, epoch=history.epoch, max_chars=1000)
    assert store.load_history(cid).turns == turns
    store.admit_chat(cid, "r1", per_minute=100, lease_seconds=60, ttl_seconds=100)
    assert store.reset(cid) is True  # a running reply was asked to stop
    assert store.is_stop_requested(cid, "r1")
    after = store.load_history(cid)
    assert after.turns == [] and after.epoch == history.epoch + 1
    # The reply that was running when reset came must not bring the old memory back.
    assert not store.save_history(cid, [*turns, *turns], epoch=history.epoch, max_chars=1000)
    assert store.load_history(cid).turns == []


def test_history_trimmed_oldest_exchange_first(store):
    cid = connect(store)
    turns = []
    for i in range(5):
        turns += [
            {"role": "user", "content": f"q{i}" * 10},
            {"role": "assistant", "content": f"a{i}" * 10},
        ]
    store.save_history(cid, turns, epoch=0, max_chars=100)
    kept = store.load_history(cid).turns
    assert kept == turns[-4:]
    assert kept[0]["role"] == "user"


@pytest.mark.parametrize(
    ("sizes", "max_chars", "kept"),
    [
        ([10, 10, 10, 10], 40, 4),
        ([10, 10, 10, 10], 39, 2),
        ([10, 10, 10, 10], 19, 0),  # the last exchange alone is too big: keep nothing
        ([50], 10, 0),
        ([], 10, 0),
    ],
)
def test_trim_history(sizes, max_chars, kept):
    roles = ["user", "assistant"]
    turns = [{"role": roles[i % 2], "content": "x" * n} for i, n in enumerate(sizes)]
    assert trim_history(turns, max_chars) == turns[len(turns) - kept :]


def test_corrupt_history_reads_as_empty(store, moto_server, table):
    cid = connect(store)
    moto_server.client("dynamodb").update_item(
        TableName=table,
        Key={"connectionId": {"S": cid}},
        UpdateExpression="SET history = :h",
        ExpressionAttributeValues={":h": {"S": "{not json"}},
    )
    assert store.load_history(cid).turns == []


def admitted(store, cid, reply_id, per_minute=3):
    """True when the chat was admitted; its lease is released at once, as a reply would."""
    try:
        store.admit_chat(cid, reply_id, per_minute=per_minute, lease_seconds=60, ttl_seconds=60)
    except RateLimited:
        return False
    assert store.release_lease(cid, reply_id)
    return True


def test_rate_limit_fixed_one_minute_window(moto_server, table):
    clock = {"ms": 60_000 * 1000 + 5}
    store = ConnectionStore(moto_server.client("dynamodb"), table, clock_ms=lambda: clock["ms"])
    cid = connect(store)
    assert [admitted(store, cid, f"r{i}") for i in range(5)] == [True, True, True, False, False]
    clock["ms"] += 60_000  # the next window
    assert admitted(store, cid, "r5")
    assert store.get(cid)["rateCount"] == {"N": "1"}


def test_a_refused_chat_changes_nothing(store):
    """Busy and rate-limited chats neither count nor touch the running reply's lease."""
    cid = connect(store)
    store.admit_chat(cid, "r1", per_minute=2, lease_seconds=60, ttl_seconds=60)
    before = store.get(cid)
    with pytest.raises(Busy):
        store.admit_chat(cid, "r2", per_minute=2, lease_seconds=60, ttl_seconds=60)
    assert store.get(cid) == before  # not counted: a busy chat is not a message sent
    store.release_lease(cid, "r1")
    assert admitted(store, cid, "r3", per_minute=2)
    counted = store.get(cid)
    assert not admitted(store, cid, "r4", per_minute=2)
    assert store.get(cid) == counted
    with pytest.raises(RateLimited):
        store.admit_chat(cid, "r5", per_minute=0, lease_seconds=60, ttl_seconds=60)


def test_admission_returns_the_history_the_reply_starts_from(store):
    cid = connect(store)
    turns = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    store.save_history(cid, turns, epoch=0, max_chars=1000)
    store.reset(cid)
    store.save_history(cid, turns, epoch=1, max_chars=1000)
    history = store.admit_chat(cid, "r1", per_minute=3, lease_seconds=60, ttl_seconds=60)
    assert history.turns == turns and history.epoch == 1


def test_the_first_chat_after_connecting_is_one_write(moto_server, table):
    calls = []
    client = moto_server.client("dynamodb")
    client.meta.events.register("before-call.dynamodb.UpdateItem", lambda **_: calls.append(1))
    # A fixed clock: connecting and chatting fall in the same minute.
    store = ConnectionStore(client, table, clock_ms=lambda: 60_000 * 1000 + 5)
    cid = connect(store)
    store.admit_chat(cid, "r1", per_minute=3, lease_seconds=60, ttl_seconds=60)
    assert len(calls) == 1


def test_finishing_a_reply_saves_and_frees_in_one_write(moto_server, table):
    calls = []
    client = moto_server.client("dynamodb")
    client.meta.events.register("before-call.dynamodb.UpdateItem", lambda **_: calls.append(1))
    store = ConnectionStore(client, table)
    cid = connect(store)
    history = store.admit_chat(cid, "r1", per_minute=3, lease_seconds=60, ttl_seconds=60)
    turns = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    calls.clear()
    assert store.finish_reply(cid, "r1", turns, epoch=history.epoch, max_chars=1000)
    assert len(calls) == 1
    assert store.load_history(cid).turns == turns
    assert "replyId" not in store.get(cid)


def test_a_reset_mid_reply_frees_the_connection_and_keeps_nothing(store):
    cid = connect(store)
    history = store.admit_chat(cid, "r1", per_minute=3, lease_seconds=60, ttl_seconds=60)
    store.reset(cid)
    turns = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    assert not store.finish_reply(cid, "r1", turns, epoch=history.epoch, max_chars=1000)
    assert store.load_history(cid).turns == []
    assert "replyId" not in store.get(cid)


def test_a_reply_whose_lease_was_taken_over_leaves_it_alone(moto_server, table):
    clock = {"ms": 60_000 * 1000}
    store = ConnectionStore(moto_server.client("dynamodb"), table, clock_ms=lambda: clock["ms"])
    cid = connect(store)
    store.admit_chat(cid, "old", per_minute=9, lease_seconds=1, ttl_seconds=60)
    clock["ms"] += 2000  # the old reply's lease lapsed, and a new reply took the connection
    store.admit_chat(cid, "new", per_minute=9, lease_seconds=60, ttl_seconds=60)
    turns = [{"role": "user", "content": "old"}, {"role": "assistant", "content": "reply"}]
    assert not store.finish_reply(cid, "old", turns, epoch=0, max_chars=1000)
    assert store.get(cid)["replyId"] == {"S": "new"}
    assert store.load_history(cid).turns == []


# What `make mutate` showed the tests above let through (docs/testing.md) ----------------


class ClockedStore:
    """A store on a clock the test moves, counting the UpdateItem calls it makes."""

    def __init__(self, moto_server, table, ms: int = 60_000 * 1000) -> None:
        self.ms = ms
        self.client = moto_server.client("dynamodb")
        self.writes = 0
        self.client.meta.events.register("before-call.dynamodb.UpdateItem", self._count)
        self.store = ConnectionStore(self.client, table, clock_ms=lambda: self.ms)

    def _count(self, **_) -> None:
        self.writes += 1

    def admit(self, cid, reply_id, *, per_minute=9, lease_seconds=60):
        return self.store.admit_chat(
            cid, reply_id, per_minute=per_minute, lease_seconds=lease_seconds, ttl_seconds=100
        )


def test_times_are_epoch_milliseconds_and_the_ttl_epoch_seconds(store):
    # DynamoDB deletes an item once `expiresAt`, in epoch seconds, has passed.
    before = time.time()
    cid = connect(store)
    after = time.time()
    item = store.get(cid)
    assert int(before * 1000) <= int(item["connectedAt"]["N"]) <= int(after * 1000)
    assert int(before) + 7800 <= int(item["expiresAt"]["N"]) <= int(after) + 7800


def test_a_recreated_record_gets_its_times(moto_server, table):
    clocked = ClockedStore(moto_server, table, ms=1_800_000_000_123)
    cid = new_id()  # the record vanished; the socket is alive
    clocked.admit(cid, "r1")
    item = clocked.store.get(cid)
    assert item["connectedAt"] == {"N": "1800000000123"}
    assert item["expiresAt"] == {"N": str(1_800_000_000 + 100)}


def test_a_lease_lasts_its_seconds_and_a_renewal_restarts_them(moto_server, table):
    clocked = ClockedStore(moto_server, table)
    cid = connect(clocked.store)
    start = clocked.ms
    clocked.admit(cid, "r1")
    assert clocked.store.get(cid)["leaseUntil"] == {"N": str(start + 60_000)}
    clocked.ms += 50_000
    assert clocked.store.renew_lease(cid, "r1", 60)
    assert clocked.store.get(cid)["leaseUntil"] == {"N": str(start + 110_000)}
    clocked.ms = start + 110_000  # the lease's last millisecond: still busy...
    clocked.writes = 0
    with pytest.raises(Busy):
        clocked.admit(cid, "r2")
    assert clocked.writes == 1  # ...told from the first write's answer, with no second write
    clocked.ms += 1  # lapsed: the reply crashed, and the connection is free again
    clocked.admit(cid, "r2")
    assert clocked.store.reply_state(cid, "r1") is ReplyState.STOP


def test_one_chat_a_minute_admits_one(store):
    cid = connect(store)
    assert [admitted(store, cid, f"r{i}", per_minute=1) for i in range(2)] == [True, False]


def test_a_reply_whose_lease_was_released_is_told_to_stop(store):
    cid = connect(store)
    store.admit_chat(cid, "r1", per_minute=3, lease_seconds=60, ttl_seconds=60)
    store.release_lease(cid, "r1")  # as the dispatch-failure function does
    assert store.reply_state(cid, "r1") is ReplyState.STOP


def test_every_read_of_the_item_is_consistent(moto_server, table):
    # moto's reads are always consistent, so the request is checked: a running reply must
    # see a stop or a reset at its next poll, not an older copy of the item.
    asked = []
    client = moto_server.client("dynamodb")
    client.meta.events.register(
        "provide-client-params.dynamodb.GetItem",
        lambda params, **_: asked.append(params.get("ConsistentRead")),
    )
    store = ConnectionStore(client, table)
    cid = connect(store)
    store.admit_chat(cid, "r1", per_minute=3, lease_seconds=60, ttl_seconds=60)
    store.request_stop(cid)
    store.reply_state(cid, "r1")
    store.load_history(cid)
    assert asked and all(consistent is True for consistent in asked)


def test_a_stop_racing_a_disconnect_does_not_bring_the_record_back(moto_server, table):
    client = moto_server.client("dynamodb")
    store = ConnectionStore(client, table)
    cid = connect(store)
    store.admit_chat(cid, "r1", per_minute=3, lease_seconds=60, ttl_seconds=60)
    # $disconnect deletes the record between the stop's read and its write.
    client.meta.events.register("after-call.dynamodb.GetItem", lambda **_: store.delete(cid))
    assert store.request_stop(cid) is None
    # A write without its condition would have made a record with no TTL, kept for ever.
    assert store.get(cid) is None


def test_a_reset_stops_a_reply_only_while_its_lease_runs(moto_server, table):
    clocked = ClockedStore(moto_server, table)
    cid = connect(clocked.store)
    clocked.admit(cid, "r1")
    clocked.ms += 60_000  # the lease's last millisecond
    assert clocked.store.reset(cid) is True
    clocked.ms += 1  # lapsed: that reply crashed, none is running
    assert clocked.store.reset(cid) is False


def test_a_record_from_before_epochs_counts_as_epoch_zero(store, moto_server, table):
    cid = connect(store)
    moto_server.client("dynamodb").update_item(
        TableName=table, Key={"connectionId": {"S": cid}}, UpdateExpression="REMOVE epoch"
    )
    turns = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    assert store.save_history(cid, turns, epoch=0, max_chars=1000)
    store.admit_chat(cid, "r1", per_minute=3, lease_seconds=60, ttl_seconds=60)
    assert store.finish_reply(cid, "r1", turns * 2, epoch=0, max_chars=1000)
    assert store.load_history(cid).turns == turns * 2
    store.reset(cid)
    assert store.load_history(cid).epoch == 1


def test_history_is_stored_as_utf8_text_not_escapes(store):
    # "\\u4f60" is 6 bytes where "你" is 3: escapes would bring a long history nearer
    # DynamoDB's 400 KB item limit.
    cid = connect(store)
    turns = [{"role": "user", "content": "你好 ✓"}, {"role": "assistant", "content": "héllo"}]
    store.save_history(cid, turns, epoch=0, max_chars=1000)
    assert "你好 ✓" in store.get(cid)["history"]["S"]
    store.admit_chat(cid, "r1", per_minute=3, lease_seconds=60, ttl_seconds=60)
    store.finish_reply(cid, "r1", turns[::-1], epoch=0, max_chars=1000)
    assert "你好 ✓" in store.get(cid)["history"]["S"]

"""The connection and conversation stores against moto's DynamoDB server, on the table
the synthesized stage declares."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from infra.config import DEV, DYNAMODB_ITEM_BYTES, PROD
from llambda.conversations import (
    Busy,
    ConversationStore,
    NotAttached,
    NotFound,
    RateLimited,
    ReplyState,
    trim_history,
)

from .conftest import new_id

TURNS = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]


class Clocked:
    """Both stores on a clock the test moves, counting the UpdateItem calls they make."""

    def __init__(self, moto_server, table, ms: int = 60_000 * 1000) -> None:
        self.ms = ms
        self.client = moto_server.client("dynamodb")
        self.writes = 0
        self.client.meta.events.register("before-call.dynamodb.UpdateItem", self._count)
        self.store = ConversationStore(self.client, table, clock_ms=lambda: self.ms)

    def _count(self, **_) -> None:
        self.writes += 1

    def start(self, reply_id="r0", *, connection="c1", lease_seconds=60) -> str:
        conversation = new_id()
        self.store.start(
            conversation,
            connection,
            reply_id,
            prompt="first",
            lease_seconds=lease_seconds,
            ttl_seconds=100,
        )
        return conversation

    def admit(self, conversation, reply_id, *, connection="c1", per_minute=9, lease_seconds=60):
        return self.store.admit_chat(
            conversation,
            connection,
            reply_id,
            prompt=f"prompt of {reply_id}",
            per_minute=per_minute,
            lease_seconds=lease_seconds,
            ttl_seconds=100,
        )

    def finish(self, conversation, reply_id, turns=TURNS, *, epoch=0, **kwargs):
        return self.store.finish_reply(
            conversation, reply_id, turns, epoch=epoch, max_chars=1000, ttl_seconds=100, **kwargs
        )

    def idle(self, turns=TURNS) -> str:
        """A conversation attached to c1 holding `turns`, no reply running."""
        conversation = self.start()
        assert self.finish(conversation, "r0", turns).saved
        return conversation


@pytest.fixture
def clocked(moto_server, table) -> Clocked:
    return Clocked(moto_server, table)


# Starting and admitting ----------------------------------------------------------------


def test_a_new_conversation_is_attached_and_its_first_reply_admitted(clocked):
    conversation = clocked.start("r1")
    item = clocked.store.get(conversation)
    assert item["pk"] == {"S": "conversation#" + conversation}
    assert item["connectionId"] == {"S": "c1"}
    assert item["replyId"] == {"S": "r1"} and item["replyPrompt"] == {"S": "first"}
    assert item["leaseUntil"] == {"N": str(clocked.ms + 60_000)}
    assert item["rateCount"] == {"N": "1"}
    assert item["expiresAt"] == {"N": str(clocked.ms // 1000 + 100)}
    with pytest.raises(Busy):
        clocked.admit(conversation, "r2")


def test_one_reply_at_a_time_and_a_lease_is_never_someone_elses(clocked):
    conversation = clocked.start("r1")
    with pytest.raises(Busy):
        clocked.admit(conversation, "r2")
    assert not clocked.store.release_lease(conversation, "r2")
    assert clocked.store.renew_lease(conversation, "r1", 60)
    assert not clocked.store.renew_lease(conversation, "r2", 60)
    assert clocked.store.release_lease(conversation, "r1")
    clocked.admit(conversation, "r2")
    assert clocked.store.get(conversation)["replyId"] == {"S": "r2"}


def test_an_unknown_conversation_is_not_found_and_never_created(clocked):
    conversation = new_id()
    with pytest.raises(NotFound):
        clocked.admit(conversation, "r1")
    with pytest.raises(NotFound):
        clocked.store.attach(conversation, "c1", seen_seq=-1, ttl_seconds=100)
    with pytest.raises(NotFound):
        clocked.store.history(conversation)
    with pytest.raises(NotFound):
        clocked.store.forget(conversation)
    with pytest.raises(NotFound):
        clocked.store.request_stop(conversation, "c1")
    with pytest.raises(NotFound):
        clocked.store.reset(conversation, "c1")
    assert not clocked.store.release_lease(conversation, "r")
    assert not clocked.store.renew_lease(conversation, "r", 60)
    assert not clocked.finish(conversation, "r").saved
    assert clocked.store.reply_check(conversation, "r").state is ReplyState.GONE
    assert clocked.store.get(conversation) is None  # none of them created an item


def test_a_chat_stop_or_reset_from_a_connection_it_is_not_attached_to_is_refused(clocked):
    conversation = clocked.idle()
    before = clocked.store.get(conversation)
    with pytest.raises(NotAttached):
        clocked.admit(conversation, "r1", connection="c2")
    with pytest.raises(NotAttached):
        clocked.store.request_stop(conversation, "c2")
    with pytest.raises(NotAttached):
        clocked.store.reset(conversation, "c2")
    assert clocked.store.get(conversation) == before


def test_a_crashed_reply_frees_the_conversation_when_its_lease_lapses(clocked):
    conversation = clocked.start("crashed")  # and never released
    start = clocked.ms
    clocked.ms = start + 60_000  # the lease's last millisecond: still busy...
    clocked.writes = 0
    with pytest.raises(Busy):
        clocked.admit(conversation, "next")
    assert clocked.writes == 1  # ...told from the first write's answer, with no second write
    clocked.ms += 1
    clocked.admit(conversation, "next")
    assert clocked.store.reply_check(conversation, "crashed").state is ReplyState.STOP
    assert clocked.store.reply_check(conversation, "next").state is ReplyState.RUN


def test_a_renewal_restarts_the_lease(clocked):
    conversation = clocked.start("r1")
    start = clocked.ms
    clocked.ms += 50_000
    assert clocked.store.renew_lease(conversation, "r1", 60)
    assert clocked.store.get(conversation)["leaseUntil"] == {"N": str(start + 110_000)}


def admitted(clocked, conversation, reply_id, per_minute=3) -> bool:
    """True when the chat was admitted; its lease is released at once, as a reply would."""
    try:
        clocked.admit(conversation, reply_id, per_minute=per_minute)
    except RateLimited:
        return False
    assert clocked.store.release_lease(conversation, reply_id)
    return True


def test_rate_limit_is_a_fixed_one_minute_window_per_conversation(moto_server, table):
    clocked = Clocked(moto_server, table, ms=60_000 * 1000 + 5)
    conversation = clocked.idle()  # its first chat counted: 1 of 3
    assert [admitted(clocked, conversation, f"r{i}") for i in range(4)] == [
        True,
        True,
        False,
        False,
    ]
    other = clocked.idle()  # another conversation has its own budget
    assert admitted(clocked, other, "o1")
    clocked.ms += 60_000  # the next window
    assert admitted(clocked, conversation, "r5")
    assert clocked.store.get(conversation)["rateCount"] == {"N": "1"}


def test_a_refused_chat_changes_nothing(clocked):
    """Busy and rate-limited chats neither count nor touch the running reply's lease."""
    conversation = clocked.start("r1")
    before = clocked.store.get(conversation)
    with pytest.raises(Busy):
        clocked.admit(conversation, "r2", per_minute=2)
    assert clocked.store.get(conversation) == before
    clocked.store.release_lease(conversation, "r1")
    assert admitted(clocked, conversation, "r3", per_minute=2)
    counted = clocked.store.get(conversation)
    assert not admitted(clocked, conversation, "r4", per_minute=2)
    assert clocked.store.get(conversation) == counted
    with pytest.raises(RateLimited):
        clocked.admit(conversation, "r5", per_minute=0)
    with pytest.raises(NotAttached):  # why it is refused comes first, even at no chats
        clocked.admit(conversation, "r5", connection="c2", per_minute=0)


def test_admission_returns_the_turns_the_reply_starts_from_in_one_write(clocked):
    conversation = clocked.idle()
    clocked.store.reset(conversation, "c1")
    assert clocked.finish(conversation, "nobody").saved is False
    clocked.admit(conversation, "r1")
    assert clocked.finish(conversation, "r1", epoch=1).saved
    clocked.writes = 0
    admitted_ = clocked.admit(conversation, "r2")
    assert clocked.writes == 1
    assert admitted_.turns == TURNS and admitted_.epoch == 1
    assert admitted_.attachment.connection_id == "c1"


# Attaching ---------------------------------------------------------------------------


def test_attach_moves_the_conversation_and_names_the_connection_it_left(clocked):
    conversation = clocked.idle()
    found = clocked.store.attach(conversation, "c2", seen_seq=-1, ttl_seconds=100)
    assert found.turns == TURNS
    assert found.running_prompt is None and found.interrupted is False
    assert found.previous_connection == "c1"
    item = clocked.store.get(conversation)
    assert item["connectionId"] == {"S": "c2"} and item["attachCount"] == {"N": "1"}
    # The same connection attaching again is a new attach, but leaves no one.
    again = clocked.store.attach(conversation, "c2", seen_seq=-1, ttl_seconds=100)
    assert again.previous_connection is None
    assert clocked.store.get(conversation)["attachCount"] == {"N": "2"}
    clocked.admit(conversation, "r1", connection="c2")


def test_attach_during_a_reply_tells_the_reply_where_to_resume(clocked):
    conversation = clocked.start("r1")
    found = clocked.store.attach(conversation, "c2", seen_seq=4, ttl_seconds=100)
    assert found.running_prompt == "first"
    check = clocked.store.reply_check(conversation, "r1")
    assert check.state is ReplyState.RUN
    assert check.attachment.connection_id == "c2"
    assert check.attachment.seen_seq == 4 and check.attachment.count == 1
    # The reply's last write answers where to send the end, too.
    finished = clocked.finish(conversation, "r1")
    assert finished.saved and finished.attachment == check.attachment


def test_a_reply_whose_lease_lapsed_is_not_shown_as_running(clocked):
    conversation = clocked.start("r1")
    clocked.ms += 60_001
    assert (
        clocked.store.attach(conversation, "c2", seen_seq=-1, ttl_seconds=100).running_prompt
        is None
    )


def test_a_reply_cut_for_want_of_a_client_is_marked_until_the_next_chat(clocked):
    conversation = clocked.start("r1")
    assert clocked.finish(conversation, "r1", interrupted=True).saved
    assert clocked.store.attach(conversation, "c2", seen_seq=-1, ttl_seconds=100).interrupted
    clocked.admit(conversation, "r2", connection="c2")
    clocked.finish(conversation, "r2")
    assert not clocked.store.attach(conversation, "c2", seen_seq=-1, ttl_seconds=100).interrupted


def test_use_keeps_a_conversation_alive(clocked):
    conversation = clocked.idle()
    clocked.ms += 50_000_000
    clocked.store.attach(conversation, "c2", seen_seq=-1, ttl_seconds=100)
    assert clocked.store.get(conversation)["expiresAt"] == {"N": str(clocked.ms // 1000 + 100)}
    clocked.ms += 1_000_000
    clocked.admit(conversation, "r1", connection="c2")
    assert clocked.store.get(conversation)["expiresAt"] == {"N": str(clocked.ms // 1000 + 100)}


# Stop, reset, forget -------------------------------------------------------------------


def test_stop_marks_only_the_running_reply(clocked):
    conversation = clocked.idle()
    assert clocked.store.request_stop(conversation, "c1") is None  # nothing running: no-op
    clocked.admit(conversation, "r1")
    assert clocked.store.reply_check(conversation, "r1").state is ReplyState.RUN
    assert clocked.store.request_stop(conversation, "c1") == "r1"
    assert clocked.store.reply_check(conversation, "r1").state is ReplyState.STOP
    clocked.store.release_lease(conversation, "r1")
    clocked.admit(conversation, "r2")  # a new reply starts unmarked
    assert clocked.store.reply_check(conversation, "r2").state is ReplyState.RUN


def test_a_reset_mid_reply_stops_it_and_its_save_is_refused(clocked):
    conversation = clocked.idle()
    admitted_ = clocked.admit(conversation, "r1")
    assert clocked.store.reset(conversation, "c1") is True
    assert clocked.store.reply_check(conversation, "r1").state is ReplyState.STOP
    assert clocked.store.history(conversation) == []
    # The reply that was running must not bring the old memory back; it frees the lease.
    assert not clocked.finish(conversation, "r1", TURNS * 2, epoch=admitted_.epoch).saved
    assert clocked.store.history(conversation) == []
    assert "replyId" not in clocked.store.get(conversation)


def test_a_reset_stops_a_reply_only_while_its_lease_runs(clocked):
    conversation = clocked.start("r1")
    clocked.ms += 60_000
    assert clocked.store.reset(conversation, "c1") is True
    clocked.ms += 1  # lapsed: that reply crashed, none is running
    assert clocked.store.reset(conversation, "c1") is False


def test_forget_deletes_it_and_the_running_reply_sees_it_gone(clocked):
    conversation = clocked.start("r1")
    clocked.store.forget(conversation)
    assert clocked.store.get(conversation) is None
    assert clocked.store.reply_check(conversation, "r1").state is ReplyState.GONE
    assert not clocked.finish(conversation, "r1").saved
    assert clocked.store.get(conversation) is None  # the last save did not bring it back


def test_a_reply_whose_lease_was_taken_over_leaves_it_alone(clocked):
    conversation = clocked.start("old", lease_seconds=1)
    clocked.ms += 2000  # the old reply's lease lapsed, and a new reply took it
    clocked.admit(conversation, "new")
    assert not clocked.finish(conversation, "old", [*TURNS, *TURNS]).saved
    assert clocked.store.get(conversation)["replyId"] == {"S": "new"}
    assert clocked.store.history(conversation) == []


def test_every_read_of_the_item_is_consistent(moto_server, table):
    # moto's reads are always consistent, so the request is checked: a running reply must
    # see a stop, a reset or an attach at its next poll, not an older copy of the item.
    asked = []
    clocked = Clocked(moto_server, table)
    clocked.client.meta.events.register(
        "provide-client-params.dynamodb.GetItem",
        lambda params, **_: asked.append(params.get("ConsistentRead")),
    )
    conversation = clocked.start("r1")
    clocked.store.request_stop(conversation, "c1")
    clocked.store.reply_check(conversation, "r1")
    clocked.store.history(conversation)
    assert asked and all(consistent is True for consistent in asked)


# Memory -------------------------------------------------------------------------------


def test_history_trimmed_oldest_exchange_first(clocked):
    turns = []
    for i in range(5):
        turns += [
            {"role": "user", "content": f"q{i}" * 10},
            {"role": "assistant", "content": f"a{i}" * 10},
        ]
    conversation = clocked.start("r1")
    clocked.store.finish_reply(conversation, "r1", turns, epoch=0, max_chars=100, ttl_seconds=9)
    kept = clocked.store.history(conversation)
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


def test_corrupt_history_reads_as_empty(clocked, table):
    conversation = clocked.idle()
    clocked.client.update_item(
        TableName=table,
        Key={"pk": {"S": "conversation#" + conversation}},
        UpdateExpression="SET history = :h",
        ExpressionAttributeValues={":h": {"S": "{not json"}},
    )
    assert clocked.store.history(conversation) == []


def test_an_item_from_before_epochs_counts_as_epoch_zero(clocked, table):
    conversation = clocked.idle()
    clocked.client.update_item(
        TableName=table,
        Key={"pk": {"S": "conversation#" + conversation}},
        UpdateExpression="REMOVE epoch",
    )
    clocked.admit(conversation, "r1")
    assert clocked.finish(conversation, "r1", TURNS * 2, epoch=0).saved
    assert clocked.store.history(conversation) == TURNS * 2


def test_history_is_stored_as_utf8_text_not_escapes(clocked):
    # "\\u4f60" is 6 bytes where "你" is 3: escapes would bring a long history nearer
    # DynamoDB's 400 KB item limit.
    turns = [{"role": "user", "content": "你好 ✓"}, {"role": "assistant", "content": "héllo"}]
    conversation = clocked.idle(turns)
    assert "你好 ✓" in clocked.store.get(conversation)["history"]["S"]


def item_bytes(item: dict) -> int:
    """DynamoDB's size of an item: attribute names plus their UTF-8 values."""
    size = 0
    for name, value in item.items():
        [(kind, raw)] = value.items()
        size += len(name.encode()) + (len(raw.encode()) if kind == "S" else 21)
    return size


@pytest.mark.parametrize("config", [DEV, PROD], ids=["Dev", "Prod"])
def test_a_conversation_far_over_400_kb_never_makes_an_item_over_it(clocked, config):
    # Each character is 4 bytes of UTF-8: the worst case. Sixty turns of the stage's
    # largest prompt, each with a long reply: about 2 MB of conversation in all.
    wide = "\U0001f600"
    conversation = clocked.start("r0")
    turns: list[dict] = []
    epoch, largest = 0, 0
    for n in range(60):
        prompt = wide * config.max_prompt_chars
        if n:
            admitted_ = clocked.store.admit_chat(
                conversation,
                "c1",
                f"r{n}",
                prompt=prompt,
                per_minute=1000,
                lease_seconds=60,
                ttl_seconds=100,
            )
            turns, epoch = admitted_.turns, admitted_.epoch
        largest = max(largest, item_bytes(clocked.store.get(conversation)))
        turns = [
            *turns,
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": wide * 2000},
        ]
        finished = clocked.store.finish_reply(
            conversation,
            f"r{n}",
            turns,
            epoch=epoch,
            max_chars=config.history_max_chars,
            ttl_seconds=100,
        )
        assert finished.saved
        largest = max(largest, item_bytes(clocked.store.get(conversation)))
    assert 60 * 4 * (config.max_prompt_chars + 2000) > 5 * DYNAMODB_ITEM_BYTES
    assert largest < DYNAMODB_ITEM_BYTES
    kept = clocked.store.history(conversation)
    assert sum(len(t["content"]) for t in kept) <= config.history_max_chars


def test_without_the_trim_the_same_conversation_is_refused_by_dynamodb(clocked):
    # What the trim prevents (and that moto enforces the limit, so the test above means it).
    conversation = clocked.start("r0")
    huge = [{"role": "user", "content": "\U0001f600" * 110_000}]
    with pytest.raises(ClientError, match="size"):
        clocked.store.finish_reply(
            conversation, "r0", huge, epoch=0, max_chars=10**9, ttl_seconds=100
        )
    assert json.loads(clocked.store.get(conversation)["history"]["S"]) == []


# What `make mutate` showed the tests above let through (docs/testing.md) ----------------


def test_a_new_conversation_starts_empty_and_never_over_another(clocked):
    conversation = clocked.idle()
    admitted_ = clocked.store.start(
        new_id(), "c1", "r1", prompt="p", lease_seconds=60, ttl_seconds=100
    )
    assert admitted_.turns == [] and admitted_.epoch == 0
    with pytest.raises(ClientError, match="ConditionalCheckFailed"):
        clocked.store.start(conversation, "c2", "r2", prompt="p", lease_seconds=60, ttl_seconds=1)
    assert clocked.store.history(conversation) == TURNS  # an id clash overwrites nothing


def test_a_reply_check_says_where_to_stream_and_whether_a_reset_came(clocked):
    conversation = clocked.start("r1")
    assert clocked.store.reply_check(conversation, "r1").epoch == 0
    clocked.store.attach(conversation, "c2", seen_seq=3, ttl_seconds=100)
    assert clocked.store.reset(conversation, "c2") is True
    check = clocked.store.reply_check(conversation, "r1")
    # Stopping, the reply still learns the attachment (its `done` goes to the new client)
    # and the reset (the turns it would replay are gone).
    assert check.state is ReplyState.STOP and check.epoch == 1
    assert check.attachment.connection_id == "c2" and check.attachment.seen_seq == 3

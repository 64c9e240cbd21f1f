"""The streaming sender against the local @connections API."""

from __future__ import annotations

import threading
import time

import pytest

from llambda import protocol
from llambda.sender import MAX_DELTA_CHARS, ConnectionGone, StreamSender, connection_poster

from .conftest import new_id

CONVERSATION = "conv-1"


def sender_for(connections, cid, **kwargs) -> StreamSender:
    return StreamSender(
        connection_poster(connections.client(), cid), conversation_id=CONVERSATION, **kwargs
    ).start()


def mark(message: dict) -> dict:
    """`message` as a reply posts it: marked with its conversation."""
    return protocol.in_conversation(message, CONVERSATION)


def test_coalesces_in_order_and_flushes_at_close(connections):
    # 200 tokens 1 ms apart on the sender's clock, weighed by the sender at least every
    # 10 of them (a model slower than the network): the first goes at once, then at most
    # one delta per 50 ms of the 200 ms, and what is left goes at close.
    cid = new_id()
    peer = connections.connect(cid)
    clock = SteppedClock()
    sender = sender_for(connections, cid, coalesce_ms=50, clock=clock)
    sender.send(protocol.status("generating"))
    pieces = [f"t{i} " for i in range(200)]
    for i, piece in enumerate(pieces):
        reads = clock.reads
        sender.push(piece)
        if i % 10 == 0:
            clock.wait_reads(reads + 1)
        clock.now += 0.001
    sender.close(
        protocol.done(
            "end", prompt_tokens=1, completion_tokens=200, init_ms=0, ttft_ms=1, tokens_per_s=1
        )
    )
    messages = peer.messages
    assert messages[0] == mark(protocol.status("generating"))
    assert messages[-1]["type"] == "done"
    deltas = [m for m in messages if m["type"] == "delta"]
    assert [d["seq"] for d in deltas] == list(range(len(deltas)))
    assert "".join(d["text"] for d in deltas) == "".join(pieces)
    assert deltas[0]["text"] == "t0 "
    assert 2 <= len(deltas) <= 1 + 200 // 50 + 1
    assert sender.posts == len(messages)


def test_the_first_text_after_a_status_is_not_held_back(connections):
    # A frozen clock: a delta that waited for the interval would wait until close().
    cid = new_id()
    peer = connections.connect(cid)
    sender = sender_for(connections, cid, coalesce_ms=50, clock=lambda: 100.0)
    sender.send(protocol.status("generating"))
    sender.push("first")
    deadline = time.monotonic() + 10
    while sender.posts < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    posted_before_close = sender.posts
    sender.close()
    assert posted_before_close == 2
    assert peer.messages[1] == mark(protocol.delta("first", 0))


def test_a_huge_delta_is_split_under_the_frame_limit(connections):
    cid = new_id()
    peer = connections.connect(cid)
    sender = sender_for(connections, cid, coalesce_ms=1000)
    text = "\x01" * (MAX_DELTA_CHARS * 2 + 10)  # escapes to 6 bytes each in JSON
    sender.push(text)
    sender.close()
    deltas = peer.messages
    assert [d["seq"] for d in deltas] == [0, 1, 2]
    assert "".join(d["text"] for d in deltas) == text
    assert max(len(t.encode()) for t in peer.texts) < 32 * 1024


def test_a_gone_client_detaches_the_sender_which_keeps_every_delta(connections):
    cid = new_id()  # never connected: the first post answers 410
    clock = SteppedClock()
    sender = sender_for(connections, cid, coalesce_ms=0, clock=clock)
    sender.push("hello")
    wait_until(lambda: sender.detached)
    assert sender.detached and not sender.broken and not sender.failed
    clock.now += 7
    assert sender.detached_seconds() == 7
    sender.push(" more")  # kept, not posted; never blocks
    wait_until(lambda: sender.seq == 2)
    sender.close(protocol.pong())
    assert sender.posts == 0
    assert sender.deltas == ["hello", " more"]


def test_retarget_replays_what_the_new_client_lacks_then_streams_on(connections):
    gone, new = new_id(), new_id()
    peer = connections.connect(new)
    sender = sender_for(connections, gone, coalesce_ms=0)
    for text in ("a", "b", "c"):
        sender.push(text)
        wait_until(lambda t=text: sender.deltas[-1:] == [t])
    assert sender.detached
    sender.retarget(connection_poster(connections.client(), new), seen_seq=0)
    sender.push("d")
    sender.close(protocol.pong())
    assert peer.messages == [
        mark(protocol.delta("b", 1)),
        mark(protocol.delta("c", 2)),
        mark(protocol.delta("d", 3)),
        mark(protocol.pong()),
    ]
    assert not sender.detached


class HeldPost:
    """A post that waits until released before it goes through: the test switches the
    target while a delta is on its way to the old one."""

    def __init__(self, post) -> None:
        self._post = post
        self.entered, self.release = threading.Event(), threading.Event()

    def __call__(self, data: bytes) -> None:
        self.entered.set()
        self.release.wait(10)  # the bound only keeps a broken test from hanging
        self._post(data)


def test_a_retarget_while_a_delta_is_being_cut_sends_it_once(connections):
    # The new client attached while the sender was posting to the old one: every delta
    # reaches it exactly once, whichever side of the switch it was cut on.
    old, new = new_id(), new_id()
    old_peer, new_peer = connections.connect(old), connections.connect(new)
    held = HeldPost(connection_poster(connections.client(), old))
    sender = StreamSender(held, conversation_id=CONVERSATION, coalesce_ms=0).start()
    sender.push("a")
    held.entered.wait(10)  # "a" is being posted to the old connection
    sender.push("b")
    sender.retarget(connection_poster(connections.client(), new), seen_seq=-1)
    held.release.set()
    sender.push("c")
    sender.close()
    assert [m["text"] for m in old_peer.messages] == ["a"]
    got = new_peer.messages
    assert [m["seq"] for m in got] == list(range(len(got)))
    assert "".join(m["text"] for m in got) == "abc"


def test_only_the_newest_retarget_replays(connections):
    first, second = new_id(), new_id()
    first_peer, second_peer = connections.connect(first), connections.connect(second)
    sender = StreamSender(lambda data: None, conversation_id=CONVERSATION, coalesce_ms=0)
    sender.push("a")  # queued before the thread starts
    sender.retarget(connection_poster(connections.client(), first), seen_seq=-1)
    sender.retarget(connection_poster(connections.client(), second), seen_seq=-1)
    sender.start().close()
    assert first_peer.messages == []
    assert [(m["seq"], m["text"]) for m in second_peer.messages] == [(0, "a")]


def test_other_failures_set_failed(connections):
    cid = new_id()
    connections.connect(cid)
    connections.faults.fail_status = 500
    connections.faults.fail_next = 10  # more than the SDK's bounded retries
    sender = sender_for(connections, cid)
    sender.send(protocol.status("generating"))
    sender.close()
    assert sender.failed and sender.broken and not sender.detached


def test_poster_raises_connection_gone(connections):
    cid = new_id()  # never connected: 410
    with pytest.raises(ConnectionGone) as gone:
        connection_poster(connections.client(), cid)(b"x")
    assert gone.value.args == (cid,)  # which connection, for the log


def test_close_waits_for_a_stuck_post_no_longer_than_its_timeout():
    # A post that never returns (the network hangs) must not hold the reply past close's
    # bound, or the invocation would run into its own deadline.
    release = threading.Event()
    sender = StreamSender(
        lambda data: release.wait(), conversation_id=CONVERSATION, coalesce_ms=0
    ).start()
    sender.push("stuck")
    closer = threading.Thread(target=sender.close, kwargs={"timeout": 0.05})
    closer.start()
    closer.join(10)  # the bound only keeps a broken close from hanging the test
    try:
        assert not closer.is_alive()  # returned while the post is still stuck
    finally:
        release.set()


class SteppedClock:
    """A clock that moves only when told, and counts how often the sender read it."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now
        self.reads = 0
        self._read = threading.Condition()

    def __call__(self) -> float:
        with self._read:
            self.reads += 1
            self._read.notify_all()
        return self.now

    def wait_reads(self, count: int, timeout: float = 10) -> None:
        """Wait until the sender has read the clock `count` times in all (the bound only
        keeps a broken sender from hanging)."""
        with self._read:
            self._read.wait_for(lambda: self.reads >= count, timeout)


def wait_until(predicate, timeout: float = 10) -> None:
    """Wait on the sender's state; the bound only keeps a broken sender from hanging."""
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.005)


def first_text_sent(connections, coalesce_ms: float):
    """A sender on a stopped clock that has posted "a", the first text, at once."""
    cid = new_id()
    peer = connections.connect(cid)
    clock = SteppedClock()
    sender = sender_for(connections, cid, coalesce_ms=coalesce_ms, clock=clock)
    sender.push("a")
    wait_until(lambda: sender.posts == 1)
    assert sender.posts == 1
    return peer, clock, sender


def test_text_waits_out_the_interval_and_joins_one_delta(connections):
    peer, clock, sender = first_text_sent(connections, 50)
    reads = clock.reads
    sender.push("b")
    sender.push("c")
    # The sender looks at the clock each time it weighs "b": three looks mean it has
    # weighed the queued text at least twice and held it (the clock has not moved).
    clock.wait_reads(reads + 3)
    assert sender.posts == 1, peer.messages
    clock.now += 0.05  # the interval has passed: what waited goes as one delta
    wait_until(lambda: sender.posts == 2)
    sender.push("d")
    sender.close()
    assert [m["text"] for m in peer.messages] == ["a", "bc", "d"]
    assert [m["seq"] for m in peer.messages] == [0, 1, 2]


def test_text_joining_a_held_delta_does_not_wake_the_sender(connections):
    # A wake per token would take a core from the engine 100 times a second for nothing:
    # text joining a delta that waits out the interval changes nothing the sender waits on.
    peer, clock, sender = first_text_sent(connections, 60_000)
    reads = clock.reads
    sender.push("b")  # a new delta: the sender is woken, weighs it and waits
    clock.wait_reads(reads + 1)
    woken = clock.reads
    for _ in range(100):
        sender.push(".")
        time.sleep(0.001)  # room for a woken sender thread to run
    assert clock.reads - woken <= 2  # the reads that settle it; a wake per token is 100
    sender.close()
    assert [m["text"] for m in peer.messages] == ["a", "b" + "." * 100]


# What `make mutate` showed the tests above let through (docs/testing.md) ----------------


def test_a_retarget_greets_the_new_client_before_the_replay(connections):
    new = new_id()
    peer = connections.connect(new)
    sender = StreamSender(lambda data: None, conversation_id=CONVERSATION, coalesce_ms=0)
    sender.push("a")
    hello = {"type": "attached", "conversation": CONVERSATION, "turns": [], "reply": None}
    sender.retarget(connection_poster(connections.client(), new), seen_seq=-1, greeting=hello)
    sender.start().close()
    assert [m["type"] for m in peer.messages] == ["attached", "delta"]
    assert sender.detached_seconds() == 0  # attached: not detached at all


def test_a_long_text_cut_while_the_target_changes_reaches_the_new_client_once(connections):
    # The new client attaches while the first of three pieces of one long text is being
    # posted: the pieces cut after the switch are left to the replay, not sent twice.
    old, new = new_id(), new_id()
    connections.connect(old)
    new_peer = connections.connect(new)
    held = HeldPost(connection_poster(connections.client(), old))
    sender = StreamSender(held, conversation_id=CONVERSATION, coalesce_ms=0).start()
    text = "x" * (MAX_DELTA_CHARS * 3)
    sender.push(text)
    held.entered.wait(10)
    sender.retarget(connection_poster(connections.client(), new), seen_seq=-1)
    held.release.set()
    sender.close()
    got = new_peer.messages
    assert [m["seq"] for m in got] == [0, 1, 2]
    assert "".join(m["text"] for m in got) == text


def test_a_detached_sender_posts_nothing_until_retargeted():
    calls = []

    def gone(data: bytes) -> None:
        calls.append(data)
        raise ConnectionGone("c")

    sender = StreamSender(gone, conversation_id=CONVERSATION, coalesce_ms=0).start()
    sender.push("a")
    wait_until(lambda: sender.detached)
    sender.push("b")
    sender.send(protocol.pong())
    wait_until(lambda: sender.seq == 2)
    sender.close()
    assert len(calls) == 1  # the post that found the client gone, and no other

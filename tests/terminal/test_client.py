"""`ChatClient` against a scripted server: ids, seq, attach, drops (protocol handling only;
the twin's tests have the real model)."""

from __future__ import annotations

import time

import pytest

from terminal_client.client import ChatClient, HandshakeRefused, ServerError
from tests.terminal.fake_server import WORDS, FakeServer
from tests.terminal.tcp_proxy import TcpProxy

FULL_TEXT = "".join(WORDS)


@pytest.fixture
def server():
    with FakeServer() as fake:
        yield fake


def client_of(server: FakeServer, **kwargs) -> ChatClient:
    return ChatClient(server.url, reconnect_delays=(0.05, 0.1, 0.2, 0.4, 0.8), **kwargs).connect()


def one_reply(client: ChatClient, prompt: str = "hello") -> list[dict]:
    client.chat(prompt)
    return list(client.reply(timeout=20))


def delta_seqs(messages: list[dict]) -> list[int]:
    return [m["seq"] for m in messages if m["type"] == "delta"]


def test_a_new_chat_learns_its_id_first_and_streams_every_delta_once(server):
    with client_of(server) as client:
        messages = one_reply(client)
    assert messages[0] == {"type": "conversation", "id": client.conversation}
    assert [m["type"] for m in messages[1:3]] == ["status", "delta"]
    assert delta_seqs(messages) == list(range(len(WORDS)))
    assert messages[-1]["type"] == "done" and messages[-1]["reason"] == "end"
    assert client.reply_text == FULL_TEXT
    assert server.received[0] == {"action": "chat", "prompt": "hello"}


def test_the_next_chat_names_the_conversation_and_history_holds_both(server):
    with client_of(server, on_message=None) as client:
        one_reply(client, "first")
        one_reply(client, "second")
        turns = client.history()
    assert server.received[1] == {
        "action": "chat",
        "prompt": "second",
        "conversation": client.conversation,
    }
    assert [t["content"] for t in turns] == ["first", FULL_TEXT, "second", FULL_TEXT]
    assert len(server.conversations) == 1


def test_new_conversation_starts_another_on_the_server(server):
    with client_of(server) as client:
        one_reply(client)
        first = client.conversation
        client.new_conversation()
        one_reply(client)
    assert client.conversation != first
    assert set(server.conversations) == {first, client.conversation}


def test_the_token_rides_in_the_query_and_a_refusal_says_its_status(server):
    server.token = "s3cret"
    with ChatClient(server.url, token="s3cret").connect():
        pass
    assert server.handshakes[-1] == "/dev?token=s3cret"
    for token, status in ((None, 401), ("wrong", 403)):
        with pytest.raises(HandshakeRefused) as refused:
            ChatClient(server.url, token=token).connect()
        assert refused.value.status == status


def test_a_drop_mid_reply_resumes_with_attach_from_the_last_seq(server):
    server.drop_after = 4
    with client_of(server) as client:
        messages = one_reply(client)
    attach = [m for m in server.received if m["action"] == "attach"]
    assert attach == [{"action": "attach", "conversation": client.conversation, "seq": 4}]
    kinds = [m["type"] for m in messages]
    assert kinds.index("attached") == kinds.index("delta") + 5  # right after delta 4
    assert delta_seqs(messages) == list(range(len(WORDS)))
    assert client.reply_text == FULL_TEXT and client.resumes == 1
    assert messages[-1]["type"] == "done" and "from_history" not in messages[-1]


def test_deltas_sent_again_after_a_resume_are_not_yielded_twice(server):
    server.drop_after, server.replay_overlap = 4, 3
    with client_of(server) as client:
        messages = one_reply(client)
    assert delta_seqs(messages) == list(range(len(WORDS)))
    assert client.reply_text == FULL_TEXT


def test_deltas_that_come_before_the_attached_answer_are_kept(server):
    server.drop_after, server.replay_before_attached = 4, True
    with client_of(server) as client:
        messages = one_reply(client)
    assert delta_seqs(messages) == list(range(len(WORDS)))
    assert client.reply_text == FULL_TEXT


def test_a_reply_that_ended_while_away_is_completed_from_the_history(server):
    # The server refuses handshakes until well after the reply has ended.
    server.drop_after, server.refuse_for = 2, 1.0
    with client_of(server) as client:
        messages = one_reply(client)
    tail = [m for m in messages if m.get("from_history")]
    assert [m["type"] for m in tail] == ["delta", "done"]
    assert tail[0]["text"] == "".join(WORDS[3:])
    assert tail[1]["interrupted"] is False
    assert delta_seqs(messages) == [0, 1, 2, 3]
    assert client.reply_text == FULL_TEXT


def test_a_chat_lost_with_the_connection_is_said_to_be_lost(server):
    with client_of(server) as client:
        one_reply(client, "first")
        server.drop(client.conversation)
        # The chat goes into the dead socket (or a new one): either way nothing is
        # streamed twice and the client says what happened.
        time.sleep(0.2)
        client.chat("second")
        messages = list(client.reply(timeout=20))
    assert messages[-1]["type"] in ("done", "error")
    if messages[-1]["type"] == "error":
        assert messages[-1]["code"] == "lost"
    else:  # the drop was noticed before sending: attached again, then a normal reply
        assert [m["action"] for m in server.received][-2:] == ["attach", "chat"]
        assert client.reply_text == FULL_TEXT


def test_stop_ends_the_reply_as_stopped(server):
    server.delta_s = 0.1
    with client_of(server) as client:
        client.chat("hello")
        messages = []
        for message in client.reply(timeout=20):
            messages.append(message)
            if message["type"] == "delta" and message["seq"] == 1:
                client.stop()
    assert messages[-1]["reason"] == "stopped"
    assert {"action": "stop", "conversation": client.conversation} in server.received
    assert len(delta_seqs(messages)) < len(WORDS)


def test_history_and_forget(server):
    with client_of(server) as client:
        one_reply(client, "remember me")
        conversation = client.conversation
        assert client.history()[0] == {"role": "user", "content": "remember me"}
        client.forget()
        assert client.conversation is None
        with pytest.raises(ServerError) as gone:
            client.history(conversation)
    assert gone.value.code == "not_found"


def test_attach_from_another_client_detaches_the_first_and_gets_the_whole_reply(server):
    server.delta_s = 0.05
    with client_of(server) as first, client_of(server) as second:
        first.chat("hello")
        seen = []
        for message in first.reply(timeout=20):
            seen.append(message)
            if message["type"] == "delta" and message["seq"] == 2:
                attached = second.attach(first.conversation)
        assert seen[-1] == {"type": "detached", "conversation": first.conversation}
        assert attached["reply"] == {"prompt": "hello"}
        rest = list(second.reply(timeout=20))
    assert delta_seqs(rest) == list(range(len(WORDS)))
    assert second.reply_text == FULL_TEXT


def test_a_chat_after_being_detached_while_idle_is_told_not_attached(server):
    with client_of(server) as first, client_of(server) as second:
        one_reply(first)
        second.attach(first.conversation)
        time.sleep(0.2)  # the `detached` reaches the first client while it is idle
        messages = one_reply(first, "again")
    assert [m["type"] for m in messages] == ["error"]
    assert messages[0]["code"] == "not_attached"


def test_attach_to_an_unknown_conversation_is_not_found(server):
    with client_of(server) as client, pytest.raises(ServerError) as refused:
        client.attach("no-such-conversation")
    assert refused.value.code == "not_found"


def test_every_message_reaches_the_hook_with_its_arrival_time(server):
    seen: list[tuple[float, dict]] = []
    with client_of(server, on_message=lambda at, m: seen.append((at, m))) as client:
        before = time.perf_counter()
        messages = one_reply(client)
        after = time.perf_counter()
    assert [m for _, m in seen] == messages
    times = [at for at, _ in seen]
    assert times == sorted(times) and before <= times[0] and times[-1] <= after


def test_a_connection_gone_silent_is_found_by_ping_and_the_reply_resumed(server):
    server.delta_s = 0.2  # the reply outlasts the silence the client waits out
    proxy = TcpProxy.before(server.url)
    try:
        client = ChatClient(proxy.url(server.url), quiet_s=0.3, dead_s=0.5).connect()
        client.chat("hello")
        messages = []
        for message in client.reply(timeout=30):
            messages.append(message)
            if message["type"] == "delta" and message["seq"] == 1 and proxy.accepted == 1:
                proxy.freeze()  # nothing more arrives, and nothing says so
        client.close()
    finally:
        proxy.close()
    attach = [m for m in server.received if m["action"] == "attach"]
    assert attach == [{"action": "attach", "conversation": client.conversation, "seq": 1}]
    assert client.reply_text == FULL_TEXT and client.resumes == 1
    assert delta_seqs(messages) == list(range(len(WORDS)))

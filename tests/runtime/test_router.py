"""The router handler, end to end against moto, the local @connections API and a
recording Lambda Invoke endpoint."""

from __future__ import annotations

import base64
import dataclasses
import json
import time

import pytest
from botocore.exceptions import ClientError

from llambda.handlers import aws

from .conftest import new_id


@pytest.fixture
def router(lambda_env):
    from llambda.handlers import router

    return router


def ws_event(route: str, cid: str, *, body=None, headers=None, binary=False) -> dict:
    event = {
        "requestContext": {
            "routeKey": route,
            "eventType": {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}.get(route, "MESSAGE"),
            "connectionId": cid,
            "requestId": "api-req-1",
            "domainName": "abc.execute-api.us-east-1.amazonaws.com",
            "stage": "dev",
            "identity": {"sourceIp": "203.0.113.9"},
        },
        "isBase64Encoded": binary,
    }
    if body is not None:
        event["body"] = body
    if headers is not None:
        event["headers"] = headers
    return event


class Client:
    """A connected client: its record exists and its peer records what it is sent."""

    def __init__(self, router, connections, context):
        self.router, self.context = router, context
        self.cid = new_id()
        self.peer = connections.connect(self.cid)
        self.conversation = None
        answer = router.handler(ws_event("$connect", self.cid, headers={}), context)
        assert answer == {"statusCode": 200}

    def send(self, body, *, binary=False):
        before = len(self.peer.texts)
        answer = self.router.handler(
            ws_event("$default", self.cid, body=body, binary=binary), self.context
        )
        assert answer == {"statusCode": 200}  # always: API Gateway must add nothing
        for message in self.peer.messages[before:]:
            if message["type"] == "conversation":
                self.conversation = message["id"]
        return self.peer.messages[-1] if len(self.peer.texts) > before else None

    def chat(self, prompt="hi", **fields):
        """A chat in this client's conversation (a new one at first); the last answer."""
        body = {"action": "chat", "prompt": prompt, **fields}
        if self.conversation is not None:
            body.setdefault("conversation", self.conversation)
        return self.send(json.dumps(body))

    def act(self, action, **fields):
        """`action` for this client's conversation; the answer, if any."""
        return self.send(
            json.dumps({"action": action, "conversation": self.conversation, **fields})
        )


@pytest.fixture
def new_client(router, connections, context):
    return lambda: Client(router, connections, context)


@pytest.fixture
def client(new_client):
    return new_client()


def finish(conversations, client, invokes, turns=(), epoch=0):
    """End the last dispatched reply as the inference function would, saving `turns`."""
    reply_id = invokes.calls[-1]["payload"]["replyId"]
    assert conversations.finish_reply(
        client.conversation, reply_id, list(turns), epoch=epoch, max_chars=1000, ttl_seconds=99
    ).saved


def table_items(moto_server, table) -> list[dict]:
    return moto_server.client("dynamodb").scan(TableName=table)["Items"]


def test_connect_and_disconnect_are_answered_and_write_nothing(router, moto_server, table, context):
    cid = new_id()
    before = table_items(moto_server, table)
    event = ws_event("$connect", cid, headers={"Origin": "http://localhost:8787"})
    assert router.handler(event, context) == {"statusCode": 200}
    assert router.handler(ws_event("$disconnect", cid), context) == {"statusCode": 200}
    # A second disconnect (or one for an unknown id) is harmless.
    assert router.handler(ws_event("$disconnect", cid), context) == {"statusCode": 200}
    assert table_items(moto_server, table) == before  # nothing is kept per connection


def test_origin_allow_list_refuses_strangers(router, context, monkeypatch):
    monkeypatch.setenv("ALLOWED_ORIGINS", "https://chat.example.com,http://localhost:8787")
    router.DEPS.reset()
    cid = new_id()
    evil = ws_event("$connect", cid, headers={"origin": "https://evil.example.net"})
    assert router.handler(evil, context) == {"statusCode": 403}
    good = ws_event("$connect", cid, headers={"Origin": "https://chat.example.com"})
    assert router.handler(good, context) == {"statusCode": 200}


def test_a_client_without_origin_is_not_a_browser_and_may_connect(router, context, monkeypatch):
    monkeypatch.setenv("ALLOWED_ORIGINS", "https://chat.example.com")
    router.DEPS.reset()
    cid = new_id()
    assert router.handler(ws_event("$connect", cid, headers={}), context) == {"statusCode": 200}


def test_ping(client):
    assert client.send('{"action": "ping"}') == {"type": "pong"}


@pytest.mark.parametrize(
    ("body", "binary", "code"),
    [
        ("{oops", False, "bad_json"),
        ("", False, "bad_json"),
        ("[]", False, "bad_json"),
        ('{"action": "fly"}', False, "unknown_action"),
        ('{"prompt": "hi"}', False, "unknown_action"),
        (base64.b64encode(b"\x00\x01").decode(), True, "bad_request"),
        ('{"action": "chat"}', False, "bad_request"),
        ('{"action": "chat", "prompt": ""}', False, "bad_request"),
        ('{"action": "chat", "prompt": 7}', False, "bad_request"),
        (
            '{"action": "chat", "prompt": "hi", "options": {"max_tokens": "many"}}',
            False,
            "bad_request",
        ),
        ('{"action": "chat", "prompt": "hi", "options": {"temperature": 9}}', False, "bad_request"),
        ('{"action": "chat", "prompt": "hi", "options": {"top_k": 1}}', False, "bad_request"),
        (json.dumps({"action": "chat", "prompt": "x" * 8001}), False, "too_large"),
    ],
)
def test_bad_input_gets_an_error_and_the_connection_keeps_working(
    client, invokes, body, binary, code
):
    answer = client.send(body, binary=binary)
    assert answer["type"] == "error" and answer["code"] == code
    assert answer["message"] and "Traceback" not in answer["message"]
    assert invokes.calls == []
    assert client.send('{"action": "ping"}') == {"type": "pong"}


def test_chat_takes_the_lease_and_dispatches_asynchronously(
    client, conversations, invokes, connections
):
    body = {"action": "chat", "prompt": "Hello", "options": {"max_tokens": 9999, "stop": ["\n"]}}
    before_ms = time.time() * 1000
    # A new conversation: its id is the one answer (the reply comes from inference).
    started = client.send(json.dumps(body))
    after_ms = time.time() * 1000
    assert started == {"type": "conversation", "id": client.conversation}
    assert len(client.conversation) == 32  # 24 random bytes, URL-safe
    [call] = invokes.calls
    assert call["invoked_arn"].endswith(":function:inference:live")
    event = call["payload"]
    assert event["connectionId"] == client.cid
    assert event["conversationId"] == client.conversation
    assert event["requestId"] == "api-req-1"
    assert event["callbackUrl"] == connections.endpoint  # the local endpoint override
    assert event["prompt"] == "Hello"
    assert event["options"] == {
        "max_tokens": 512,
        "temperature": None,
        "top_p": None,
        "stop": ["\n"],
        "seed": None,
    }
    assert event["history"] == [] and event["epoch"] == 0 and event["attachCount"] == 0
    # Epoch milliseconds of the dispatch itself (a value, not a timing: it lies between
    # two readings of the wall clock taken around the call).
    assert isinstance(event["dispatchedAt"], int)
    assert int(before_ms) <= event["dispatchedAt"] <= after_ms
    item = conversations.get(client.conversation)
    assert item["replyId"] == {"S": event["replyId"]}
    assert item["connectionId"] == {"S": client.cid}


def test_each_new_conversation_gets_its_own_unguessable_id(new_client, invokes):
    ids = set()
    for _ in range(5):
        client = new_client()
        client.chat()
        ids.add(client.conversation)
    assert len(ids) == 5


def test_a_chat_while_a_reply_runs_is_busy_and_changes_nothing(client, conversations, invokes):
    client.chat("one")
    reply_id = invokes.calls[0]["payload"]["replyId"]
    answer = client.chat("two")
    assert answer == {
        "type": "error",
        "code": "busy",
        "message": "A reply is still running; wait for it or stop it.",
    }
    assert len(invokes.calls) == 1
    assert conversations.get(client.conversation)["replyId"] == {"S": reply_id}


def test_a_new_conversation_never_waits_on_a_reply_still_running_in_another(client, invokes):
    client.chat("one")
    first = client.conversation
    client.conversation = None  # "New chat"
    assert client.chat("two") == {"type": "conversation", "id": client.conversation}
    assert client.conversation != first and len(invokes.calls) == 2


def test_stop_marks_the_running_reply(client, conversations, invokes):
    from llambda.conversations import ReplyState

    client.chat("one")
    reply_id = invokes.calls[0]["payload"]["replyId"]
    finish(conversations, client, invokes)
    assert client.act("stop") is None  # nothing running: a no-op
    client.chat("two")
    reply_id = invokes.calls[1]["payload"]["replyId"]
    assert client.act("stop") is None  # the reply's `done` is the answer
    assert conversations.reply_check(client.conversation, reply_id).state is ReplyState.STOP


def test_reset_clears_memory_and_answers(client, conversations, invokes):
    client.chat("one")
    finish(conversations, client, invokes, [{"role": "user", "content": "x"}])
    assert client.act("reset") == {"type": "reset", "stopped": False}
    assert conversations.history(client.conversation) == []
    client.chat("two")
    assert client.act("reset") == {"type": "reset", "stopped": True}


def test_rate_limit_per_conversation(router, client, conversations, invokes, monkeypatch):
    monkeypatch.setenv("MESSAGES_PER_MINUTE", "2")
    router.DEPS.reset()
    for _ in range(2):
        client.chat()
        finish(conversations, client, invokes)
    answer = client.chat()
    assert answer["code"] == "rate_limited" and "2" in answer["message"]
    assert len(invokes.calls) == 2
    assert client.send('{"action": "ping"}') == {"type": "pong"}  # pings are not counted


def test_attach_answers_the_turns_and_tells_the_connection_it_left(
    new_client, conversations, invokes
):
    first, second = new_client(), new_client()
    first.chat("one")
    turns = [{"role": "user", "content": "one"}, {"role": "assistant", "content": "1"}]
    finish(conversations, first, invokes, turns)
    second.conversation = first.conversation
    answer = second.act("attach", seq=3)
    assert answer == {
        "type": "attached",
        "conversation": first.conversation,
        "turns": turns,
        "reply": None,
        "interrupted": False,
    }
    assert first.peer.messages[-1] == {"type": "detached", "conversation": first.conversation}
    refused = first.chat("still mine?")
    assert refused["code"] == "not_attached" and "attach" in refused["message"]
    assert refused == first.act("stop") == first.act("reset")
    assert second.chat("two") is None and len(invokes.calls) == 2
    assert invokes.calls[-1]["payload"]["attachCount"] == 1


def test_attach_during_a_reply_is_left_to_the_reply_to_answer(new_client, conversations, invokes):
    # The reply answers it, then sends the deltas the client lacks (one sender, one
    # order); the router only records where the reply resumes.
    first, second = new_client(), new_client()
    first.chat("Tell me a story.")
    reply_id = invokes.calls[-1]["payload"]["replyId"]
    second.conversation = first.conversation
    assert second.act("attach", seq=5) is None
    attachment = conversations.reply_check(first.conversation, reply_id).attachment
    assert (attachment.connection_id, attachment.seen_seq, attachment.count) == (second.cid, 5, 1)
    assert first.peer.messages[-1] == {"type": "detached", "conversation": first.conversation}


def test_attaching_from_a_dropped_connection_tells_no_one(
    new_client, connections, conversations, invokes
):
    first, second = new_client(), new_client()
    first.chat("one")
    finish(conversations, first, invokes)
    first.peer.vanish()
    second.conversation = first.conversation
    assert second.act("attach")["type"] == "attached"


def test_history_and_forget(client, conversations, invokes):
    client.chat("one")
    turns = [{"role": "user", "content": "one"}, {"role": "assistant", "content": "1"}]
    finish(conversations, client, invokes, turns)
    conversation = client.conversation
    assert client.act("history") == {
        "type": "history",
        "conversation": conversation,
        "turns": turns,
    }
    assert client.act("forget") == {"type": "forgotten", "conversation": conversation}
    assert conversations.get(conversation) is None


@pytest.mark.parametrize("action", ["attach", "history", "forget", "stop", "reset", "chat"])
def test_an_unknown_or_forgotten_conversation_is_not_found(client, invokes, action):
    client.conversation = "NoSuchConversation0000000000000"
    answer = client.chat() if action == "chat" else client.act(action)
    assert answer == {
        "type": "error",
        "code": "not_found",
        "message": "No such conversation: it expired or was forgotten. Start a new one.",
    }
    assert invokes.calls == []


def test_the_conversation_id_is_never_logged_whole(client, conversations, invokes, monkeypatch):
    import io

    from llambda.observability import logger

    out = io.StringIO()  # what CloudWatch would get: the handler's own formatted lines
    monkeypatch.setattr(logger.logger_handler, "stream", out)
    client.chat()
    finish(conversations, client, invokes)
    client.act("history")
    client.act("attach")
    out = out.getvalue()
    assert client.conversation[:6] + "…" in out
    assert client.conversation not in out


def test_dispatch_failure_releases_the_lease_and_says_unavailable(client, conversations, invokes):
    invokes.faults.throttle_next = 10  # throttled beyond the SDK's retries
    answer = client.chat()
    assert answer == {
        "type": "error",
        "code": "unavailable",
        "message": "The model is unavailable; try again shortly.",
    }
    assert "replyId" not in conversations.get(client.conversation)
    invokes.faults.throttle_next = 0
    client.chat()
    assert len(invokes.calls) == 1


def test_chat_for_a_lost_connection_record_still_works(router, connections, invokes, context):
    cid = new_id()  # the socket is open but its record vanished
    connections.connect(cid)
    router.handler(ws_event("$default", cid, body='{"action": "chat", "prompt": "hi"}'), context)
    assert len(invokes.calls) == 1


def test_an_answer_to_a_gone_client_is_dropped_quietly(router, context, caplog):
    cid = new_id()
    router.handler(ws_event("$connect", cid, headers={}), context)  # never reachable
    event = ws_event("$default", cid, body='{"action": "ping"}')
    assert router.handler(event, context) == {"statusCode": 200}
    assert any(r.getMessage() == "client gone before the answer" for r in caplog.records)


def test_router_imports_no_engine():
    import subprocess
    import sys

    code = (
        "import sys, llambda.handlers.router; "
        "print(any(m in sys.modules for m in ('llama_cpp', 'picollm', 'llambda.engines')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_dispatch_carries_the_history_so_the_reply_reads_no_table(
    client, conversations, invokes
):
    turns = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    client.chat("hi")
    client.act("reset")
    reply_id = invokes.calls[-1]["payload"]["replyId"]
    refused = conversations.finish_reply(
        client.conversation, reply_id, turns, epoch=0, max_chars=1000, ttl_seconds=99
    )
    assert not refused.saved  # the epoch moved on
    client.chat("hi")
    finish(conversations, client, invokes, turns, epoch=1)
    client.chat("and then?")
    call = invokes.calls[-1]
    assert call["payload"]["history"] == turns and call["payload"]["epoch"] == 1


class RecordingApis(aws.ManagementApis):
    """The @connections clients, noting which API stage each answer was meant for."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def client(self, url: str):
        self.urls.append(url)
        return super().client(url)


def test_answers_and_dispatches_go_to_the_events_own_api_stage(
    router, connections, invokes, monkeypatch
):
    # No local endpoint: the address is the event's own (`domainName` and `stage`). A chat
    # that is dispatched sends the client nothing, so nothing is posted to it.
    monkeypatch.delenv("AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI")
    apis = RecordingApis()
    deps = dataclasses.replace(router.RouterDeps.from_environment(), connections=apis)
    cid = new_id()
    router.route(ws_event("$connect", cid, headers={}), deps)
    router.route(ws_event("$default", cid, body='{"action": "chat", "prompt": "hi"}'), deps)
    own = "https://abc.execute-api.us-east-1.amazonaws.com/dev"
    assert apis.urls == [own]  # where the router's answers would go
    assert invokes.calls[-1]["payload"]["callbackUrl"] == own  # where the reply's go


def test_a_disconnect_sends_the_client_nothing(router, connections, context):
    cid = new_id()
    peer = connections.connect(cid)
    router.handler(ws_event("$connect", cid, headers={}), context)
    assert router.handler(ws_event("$disconnect", cid), context) == {"statusCode": 200}
    assert peer.messages == []


class FailingStore:
    """The table answering 500 to everything, beyond the SDK's retries."""

    def __getattr__(self, name):
        def fail(*args, **kwargs):
            error = {"Error": {"Code": "InternalServerError", "Message": "boom"}}
            raise ClientError(error, name)

        return fail


def test_an_unexpected_failure_is_answered_plainly_and_still_200(router, invokes, capsys):
    deps = dataclasses.replace(router.RouterDeps.from_environment(), conversations=FailingStore())
    sent = []
    event = ws_event("$default", new_id(), body='{"action": "chat", "prompt": "hi"}')
    capsys.readouterr()
    assert router.route(event, deps, sent.append) == {"statusCode": 200}
    assert sent == [
        {"type": "error", "code": "unavailable", "message": "Something went wrong; try again."}
    ]
    assert invokes.calls == []
    assert _error_codes(capsys.readouterr().out) == ["unavailable"]


def test_an_answer_that_cannot_be_posted_is_logged_not_raised(client, connections, caplog):
    connections.faults.fail_next = 10  # @connections answers 500 beyond the SDK's retries
    before = len(client.peer.texts)
    client.send('{"action": "ping"}')  # the handler still answers 200 (checked in send)
    assert len(client.peer.texts) == before
    assert any(r.getMessage() == "could not answer the client" for r in caplog.records)


def _error_codes(output: str) -> list[str]:
    """The `code` of each `Errors` metric the handler printed (CloudWatch EMF)."""
    codes = []
    for line in output.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "Errors" in record:
            codes.append(str(record.get("code")))
    return codes


@pytest.mark.parametrize(
    ("body", "code"),
    [("{oops", "bad_json"), ('{"action": "chat", "prompt": ""}', "bad_request")],
)
def test_each_refusal_counts_one_error_with_its_code(client, capsys, body, code):
    capsys.readouterr()
    client.send(body)
    assert _error_codes(capsys.readouterr().out) == [code]


def test_busy_rate_limited_and_forbidden_are_counted_by_code(
    router, client, conversations, invokes, capsys, monkeypatch, context
):
    client.chat("one")
    capsys.readouterr()
    client.chat("two")
    assert _error_codes(capsys.readouterr().out) == ["busy"]
    finish(conversations, client, invokes)
    monkeypatch.setenv("MESSAGES_PER_MINUTE", "0")
    router.DEPS.reset()
    client.chat("three")
    assert _error_codes(capsys.readouterr().out) == ["rate_limited"]
    client.conversation = "gone"
    client.chat("four")
    assert _error_codes(capsys.readouterr().out) == ["not_found"]
    monkeypatch.setenv("ALLOWED_ORIGINS", "https://chat.example.com")
    router.DEPS.reset()
    evil = ws_event("$connect", new_id(), headers={"Origin": "https://evil.example.net"})
    router.handler(evil, context)
    assert _error_codes(capsys.readouterr().out) == ["forbidden_origin"]
    invokes.faults.throttle_next = 10
    monkeypatch.setenv("MESSAGES_PER_MINUTE", "30")
    router.DEPS.reset()
    other = new_id()
    router.handler(ws_event("$connect", other, headers={}), context)
    capsys.readouterr()
    router.handler(ws_event("$default", other, body='{"action": "chat", "prompt": "x"}'), context)
    assert _error_codes(capsys.readouterr().out) == ["unavailable"]

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


@pytest.fixture
def client(router, connections, store, context):
    """A connected client: its record exists and its peer records what it is sent."""

    class Client:
        def __init__(self):
            self.cid = new_id()
            self.peer = connections.connect(self.cid)
            answer = router.handler(ws_event("$connect", self.cid, headers={}), context)
            assert answer == {"statusCode": 200}

        def send(self, body, *, binary=False):
            answer = router.handler(
                ws_event("$default", self.cid, body=body, binary=binary), context
            )
            assert answer == {"statusCode": 200}  # always: API Gateway must add nothing
            return self.peer.messages[-1] if self.peer.texts else None

    return Client()


def test_connect_writes_the_record_and_disconnect_deletes_it(router, store, context):
    cid = new_id()
    event = ws_event("$connect", cid, headers={"Origin": "http://localhost:8787"})
    assert router.handler(event, context) == {"statusCode": 200}
    item = store.get(cid)
    assert item["sourceIp"] == {"S": "203.0.113.9"}
    assert item["origin"] == {"S": "http://localhost:8787"}
    assert router.handler(ws_event("$disconnect", cid), context) == {"statusCode": 200}
    assert store.get(cid) is None
    # A second disconnect (or one for an unknown id) is harmless.
    assert router.handler(ws_event("$disconnect", cid), context) == {"statusCode": 200}


def test_origin_allow_list_refuses_strangers(router, store, context, monkeypatch):
    monkeypatch.setenv("ALLOWED_ORIGINS", "https://chat.example.com,http://localhost:8787")
    router.DEPS.reset()
    cid = new_id()
    evil = ws_event("$connect", cid, headers={"origin": "https://evil.example.net"})
    assert router.handler(evil, context) == {"statusCode": 403}
    assert store.get(cid) is None
    good = ws_event("$connect", cid, headers={"Origin": "https://chat.example.com"})
    assert router.handler(good, context) == {"statusCode": 200}
    assert store.get(cid) is not None


def test_a_client_without_origin_is_not_a_browser_and_may_connect(
    router, store, context, monkeypatch
):
    monkeypatch.setenv("ALLOWED_ORIGINS", "https://chat.example.com")
    router.DEPS.reset()
    cid = new_id()
    assert router.handler(ws_event("$connect", cid, headers={}), context) == {"statusCode": 200}
    assert store.get(cid) is not None


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
        ('{"action": "chat", "prompt": "hi", "options": {"seed": 1}}', False, "bad_request"),
        (json.dumps({"action": "chat", "prompt": "x" * 8001}), False, "too_large"),
    ],
)
def test_bad_input_gets_an_error_and_the_connection_keeps_working(
    client, store, invokes, body, binary, code
):
    answer = client.send(body, binary=binary)
    assert answer["type"] == "error" and answer["code"] == code
    assert answer["message"] and "Traceback" not in answer["message"]
    assert invokes.calls == []
    assert store.get(client.cid) is not None  # the record is not lost
    assert client.send('{"action": "ping"}') == {"type": "pong"}


def test_chat_takes_the_lease_and_dispatches_asynchronously(client, store, invokes, connections):
    body = {"action": "chat", "prompt": "Hello", "options": {"max_tokens": 9999, "stop": ["\n"]}}
    before_ms = time.time() * 1000
    assert client.send(json.dumps(body)) is None  # the reply comes from inference
    after_ms = time.time() * 1000
    [call] = invokes.calls
    assert call["invoked_arn"].endswith(":function:inference:live")
    event = call["payload"]
    assert event["connectionId"] == client.cid
    assert event["requestId"] == "api-req-1"
    assert event["callbackUrl"] == connections.endpoint  # the local endpoint override
    assert event["prompt"] == "Hello"
    assert event["options"] == {
        "max_tokens": 512,
        "temperature": None,
        "top_p": None,
        "stop": ["\n"],
    }
    # Epoch milliseconds of the dispatch itself (a value, not a timing: it lies between
    # two readings of the wall clock taken around the call).
    assert isinstance(event["dispatchedAt"], int)
    assert int(before_ms) <= event["dispatchedAt"] <= after_ms
    assert store.get(client.cid)["replyId"] == {"S": event["replyId"]}


def test_a_chat_while_a_reply_runs_is_busy_and_changes_nothing(client, store, invokes):
    client.send('{"action": "chat", "prompt": "one"}')
    reply_id = invokes.calls[0]["payload"]["replyId"]
    answer = client.send('{"action": "chat", "prompt": "two"}')
    assert answer == {
        "type": "error",
        "code": "busy",
        "message": "A reply is still running; wait for it or stop it.",
    }
    assert len(invokes.calls) == 1
    assert store.get(client.cid)["replyId"] == {"S": reply_id}


def test_stop_marks_the_running_reply(client, store, invokes):
    assert client.send('{"action": "stop"}') is None  # nothing running: a no-op
    client.send('{"action": "chat", "prompt": "one"}')
    reply_id = invokes.calls[0]["payload"]["replyId"]
    client.send('{"action": "stop"}')
    assert store.is_stop_requested(client.cid, reply_id)


def test_reset_clears_memory_and_answers(client, store, invokes):
    store.save_history(client.cid, [{"role": "user", "content": "x"}], epoch=0, max_chars=99)
    assert client.send('{"action": "reset"}') == {"type": "reset", "stopped": False}
    assert store.load_history(client.cid).turns == []
    client.send('{"action": "chat", "prompt": "one"}')
    assert client.send('{"action": "reset"}') == {"type": "reset", "stopped": True}


def test_rate_limit(router, client, store, invokes, monkeypatch):
    monkeypatch.setenv("MESSAGES_PER_MINUTE", "2")
    router.DEPS.reset()
    for _ in range(2):
        client.send('{"action": "chat", "prompt": "hi"}')
        store.release_lease(client.cid, invokes.calls[-1]["payload"]["replyId"])
    answer = client.send('{"action": "chat", "prompt": "hi"}')
    assert answer["code"] == "rate_limited" and "2" in answer["message"]
    assert len(invokes.calls) == 2
    assert client.send('{"action": "ping"}') == {"type": "pong"}  # pings are not counted


def test_dispatch_failure_releases_the_lease_and_says_unavailable(client, store, invokes):
    invokes.faults.throttle_next = 10  # throttled beyond the SDK's retries
    answer = client.send('{"action": "chat", "prompt": "hi"}')
    assert answer == {
        "type": "error",
        "code": "unavailable",
        "message": "The model is unavailable; try again shortly.",
    }
    assert "replyId" not in store.get(client.cid)
    invokes.faults.throttle_next = 0
    client.send('{"action": "chat", "prompt": "hi"}')
    assert len(invokes.calls) == 1


def test_chat_for_a_lost_record_still_works(router, connections, store, invokes, context):
    cid = new_id()  # the socket is open but its record vanished
    connections.connect(cid)
    router.handler(ws_event("$default", cid, body='{"action": "chat", "prompt": "hi"}'), context)
    assert len(invokes.calls) == 1 and store.get(cid) is not None


def test_answer_to_a_gone_client_deletes_its_record(router, store, context):
    cid = new_id()
    router.handler(ws_event("$connect", cid, headers={}), context)  # never reachable
    router.handler(ws_event("$default", cid, body='{"action": "ping"}'), context)
    assert store.get(cid) is None


def test_router_imports_no_engine():
    import subprocess
    import sys

    code = (
        "import sys, llambda.handlers.router; "
        "print(any(m in sys.modules for m in ('llama_cpp', 'picollm', 'llambda.engines')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_dispatch_carries_the_history_so_the_reply_reads_no_table(client, store, invokes):
    turns = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    store.save_history(client.cid, turns, epoch=0, max_chars=1000)
    client.send('{"action": "reset"}')
    store.save_history(client.cid, turns, epoch=1, max_chars=1000)
    client.send('{"action": "chat", "prompt": "and then?"}')
    [call] = invokes.calls
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
    router, connections, store, invokes, monkeypatch
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


def test_a_disconnect_sends_the_client_nothing(router, connections, store, context):
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
    deps = dataclasses.replace(router.RouterDeps.from_environment(), store=FailingStore())
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
            codes.append(record.get("code"))
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
    router, client, invokes, capsys, monkeypatch, context
):
    client.send('{"action": "chat", "prompt": "one"}')
    capsys.readouterr()
    client.send('{"action": "chat", "prompt": "two"}')
    assert _error_codes(capsys.readouterr().out) == ["busy"]
    monkeypatch.setenv("MESSAGES_PER_MINUTE", "0")
    router.DEPS.reset()
    client.send('{"action": "chat", "prompt": "three"}')
    assert _error_codes(capsys.readouterr().out) == ["rate_limited"]
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

"""The async on-failure destination tells the client and frees the lease."""

from __future__ import annotations

import json

import pytest

from llambda.dispatch import Dispatch
from llambda.protocol import ChatOptions

from .conftest import new_id


def record(
    cid, reply_id, url, *, conversation="c", condition="EventAgeExceeded", function_error=None
):
    response = {"statusCode": 200, "executedVersion": "1"}
    if function_error:
        response["functionError"] = function_error
    return {
        "version": "1.0",
        "timestamp": "2026-11-28T01:00:00.000Z",
        "requestContext": {
            "requestId": "x",
            "functionArn": "arn:aws:lambda:us-east-1:1:function:inference:live",
            "condition": condition,
            "approximateInvokeCount": 1,
        },
        # What the router sent, as Lambda hands it back.
        "requestPayload": Dispatch(
            connection_id=cid,
            conversation_id=conversation,
            reply_id=reply_id,
            request_id="r",
            callback_url=url,
            prompt="hi",
            options=ChatOptions(max_tokens=8),
            dispatched_at_ms=0,
        ).to_event(),
        "responseContext": response,
    }


@pytest.mark.parametrize(
    ("condition", "function_error", "code"),
    [
        ("EventAgeExceeded", None, "unavailable"),
        ("RetriesExhausted", None, "unavailable"),
        ("RetriesExhausted", "Unhandled", "engine_error"),
    ],
)
def test_client_told_and_lease_released(
    lambda_env, conversations, connections, context, condition, function_error, code
):
    from llambda.handlers import dispatch_failure

    cid, conversation, reply_id = new_id(), new_id(), new_id()
    peer = connections.connect(cid)
    conversations.start(conversation, cid, reply_id, prompt="hi", lease_seconds=60, ttl_seconds=60)
    event = record(
        cid,
        reply_id,
        connections.endpoint,
        conversation=conversation,
        condition=condition,
        function_error=function_error,
    )
    assert dispatch_failure.handler(event, context) == {"notified": 1, "records": 1}
    [message] = peer.messages
    assert message["type"] == "error" and message["code"] == code
    assert message["conversation"] == conversation
    assert "replyId" not in conversations.get(conversation)


def test_a_gone_client_is_not_told_and_queue_records_are_read(lambda_env, connections, context):
    from llambda.handlers import dispatch_failure

    cid, reply_id = new_id(), new_id()  # no such connection: @connections answers 410
    event = {"Records": [{"body": json.dumps(record(cid, reply_id, connections.endpoint))}]}
    assert dispatch_failure.handler(event, context) == {"notified": 0, "records": 1}
    assert dispatch_failure.handler({"requestContext": {}}, context) == {
        "notified": 0,
        "records": 1,
    }


def test_a_client_that_attached_while_the_reply_waited_is_the_one_told(
    lambda_env, conversations, connections, context
):
    from llambda.handlers import dispatch_failure

    old, new, conversation, reply_id = new_id(), new_id(), new_id(), new_id()
    connections.connect(old)
    new_peer = connections.connect(new)
    conversations.start(conversation, old, reply_id, prompt="hi", lease_seconds=60, ttl_seconds=60)
    conversations.attach(conversation, new, seen_seq=-1, ttl_seconds=60)
    event = record(old, reply_id, connections.endpoint, conversation=conversation)
    assert dispatch_failure.handler(event, context) == {"notified": 1, "records": 1}
    attached, error = new_peer.messages
    assert attached["type"] == "attached" and attached["reply"] == {"prompt": "hi"}
    assert error["type"] == "error" and error["code"] == "unavailable"
    assert "replyId" not in conversations.get(conversation)

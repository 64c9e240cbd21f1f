"""The router's admission against the token budgets, end to end against moto, the local
@connections API and a recording Lambda Invoke endpoint."""

from __future__ import annotations

import json

import pytest

from llambda.budgets import BudgetStore, Reservation, identity_of

from .conftest import new_id
from .test_router import Client, ws_event


@pytest.fixture
def router(lambda_env, monkeypatch):
    from llambda.handlers import router

    # A budget of 300 tokens a conversation; none per client, as the other router tests
    # share this source IP (and so its client budget) today.
    monkeypatch.setenv("CONVERSATION_TOKEN_BUDGET", "300")
    monkeypatch.setenv("CLIENT_TOKENS_PER_DAY", "0")
    router.DEPS.reset()
    return router


@pytest.fixture
def client(router, connections, context):
    return Client(router, connections, context)


@pytest.fixture
def budgets(moto_server, table):
    return BudgetStore(moto_server.client("dynamodb"), table)


def dispatched(invokes) -> dict:
    return invokes.calls[-1]["payload"]


def test_a_chat_reserves_its_max_tokens_and_the_dispatch_carries_it(client, invokes, budgets):
    client.chat(options={"max_tokens": 200})
    payload = dispatched(invokes)
    held = Reservation.from_event(payload["budget"])
    assert (held.reserved, held.allowed, held.limited_by) == (200, 200, None)
    assert budgets.used(f"conversation#{client.conversation}") == 200


def test_the_reply_is_given_only_the_room_left_and_then_the_chat_is_refused(
    client, invokes, conversations, budgets
):
    client.chat(options={"max_tokens": 200})
    conversations.release_lease(client.conversation, dispatched(invokes)["replyId"])
    client.chat(options={"max_tokens": 200})
    # 100 left of the conversation's 300: the reply may generate that much, and knows why.
    payload = dispatched(invokes)
    assert payload["options"]["max_tokens"] == 100
    assert payload["budget"]["limitedBy"] == "conversation"
    conversations.release_lease(client.conversation, payload["replyId"])
    calls = len(invokes.calls)
    refused = client.chat(options={"max_tokens": 200})
    assert refused["type"] == "error"
    assert (refused["code"], refused["scope"], refused["resets_at"]) == (
        "budget_exhausted",
        "conversation",
        None,
    )
    assert len(invokes.calls) == calls  # nothing dispatched
    assert budgets.used(f"conversation#{client.conversation}") == 400


def test_a_refused_chat_gives_its_reservation_back(client, invokes, budgets):
    client.chat(options={"max_tokens": 50})
    # A reply still runs: the next chat is busy, and reserves nothing.
    answer = client.chat(options={"max_tokens": 50})
    assert answer["code"] == "busy"
    assert budgets.used(f"conversation#{client.conversation}") == 50


def test_a_client_is_its_token_hash_or_else_its_source_ip(
    router, connections, context, budgets, monkeypatch
):
    monkeypatch.setenv("CLIENT_TOKENS_PER_DAY", "1000")
    router.DEPS.reset()
    token = new_id()
    cid = new_id()
    connections.connect(cid)
    event = ws_event(
        "$default",
        cid,
        body=json.dumps({"action": "chat", "prompt": "hi", "options": {"max_tokens": 40}}),
    )
    event["requestContext"]["authorizer"] = {"principalId": "p", "identity": identity_of(token)}
    router.handler(event, context)
    # The identity is the authorizer's hash: the token is nowhere in the table.
    counter = next(c for c in budgets_of(router, event) if c.scope == "client")
    assert counter.item_id.startswith(f"client#{identity_of(token)}#")
    assert token not in counter.item_id
    assert budgets.used(counter.item_id) == 40
    del event["requestContext"]["authorizer"]
    [_, by_ip, _] = budgets_of(router, event)
    assert by_ip.item_id.startswith(f"client#{identity_of('ip:203.0.113.9')}#")


def budgets_of(router, event):
    from aws_lambda_powertools.utilities.data_classes import APIGatewayWebSocketEvent

    deps = router.DEPS.get()
    return deps.budgets.counters(
        deps.settings.budgets,
        conversation_id="x",
        identity=router.client_identity(APIGatewayWebSocketEvent(event)),
        ttl_seconds=60,
    )

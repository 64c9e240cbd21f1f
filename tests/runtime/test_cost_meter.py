"""The cost meter counts what the bill counts: DynamoDB's own consumed capacity (moto
server), @connections posts per started 32 KB (the @connections server), the billed
duration at the function's memory, and prices each at `llambda.prices`."""

from __future__ import annotations

import json
import math

import boto3
import pytest

from llambda.contract import MAX_FRAME_BYTES
from llambda.cost_meter import Bill, CostMeter, ws_messages
from llambda.prices import PRICES, WS_MESSAGE_METERED_BYTES
from llambda.sender import connection_poster


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def meter(*, provisioned: bool = False, started_at: float = 100.0, clock=None) -> CostMeter:
    return CostMeter(
        memory_mb=2048, provisioned=provisioned, started_at=started_at, clock=clock or Clock()
    )


def test_dynamodb_units_are_the_ones_dynamodb_reports(moto_server, table):
    m = meter()
    plain = moto_server.client("dynamodb")
    client = m.instrument(moto_server.client("dynamodb"))
    key = {"pk": {"S": "meter#1"}}
    item = {**key, "text": {"S": "x" * 3000}}

    m.begin()
    put = client.put_item(TableName=table, Item=item)
    get = client.get_item(TableName=table, Key=key, ConsistentRead=True)
    with pytest.raises(client.exceptions.ConditionalCheckFailedException):
        client.put_item(TableName=table, Item=item, ConditionExpression="attribute_not_exists(pk)")
    client.describe_table(TableName=table)  # not metered per request
    bill = m.end()

    # The same calls without the meter, asking DynamoDB itself what they consume.
    expect_write = plain.put_item(TableName=table, Item=item, ReturnConsumedCapacity="TOTAL")[
        "ConsumedCapacity"
    ]["CapacityUnits"]
    expect_read = plain.get_item(
        TableName=table, Key=key, ConsistentRead=True, ReturnConsumedCapacity="TOTAL"
    )["ConsumedCapacity"]["CapacityUnits"]
    assert put["ConsumedCapacity"]["CapacityUnits"] == expect_write
    assert get["ConsumedCapacity"]["CapacityUnits"] == expect_read
    # A write its condition refused is metered too (at least one unit).
    assert bill.write_units == expect_write + 1
    assert bill.read_units == expect_read


def test_a_call_that_asks_for_capacity_itself_keeps_its_choice(moto_server, table):
    m = meter()
    client = m.instrument(moto_server.client("dynamodb"))
    m.begin()
    answer = client.put_item(
        TableName=table, Item={"pk": {"S": "meter#2"}}, ReturnConsumedCapacity="NONE"
    )
    assert "ConsumedCapacity" not in answer
    assert m.end().write_units == 0


def test_connections_posts_count_per_started_32_kb(connections):
    m = meter()
    peer = connections.connect("meter-peer")
    post = connection_poster(m.instrument(connections.client()), "meter-peer")
    m.begin()
    post(b'{"type":"delta","text":"hi"}')
    # A message over the frame is split into parts, each its own post and message.
    big = json.dumps({"type": "history", "turns": ["y" * 70_000]}).encode()
    post(big)
    bill = m.end()
    frames = len(peer.messages)
    assert frames >= 1 + math.ceil(len(big) / MAX_FRAME_BYTES)
    assert bill.ws_messages == frames


def test_ws_messages_are_metered_in_32_kb_units():
    assert WS_MESSAGE_METERED_BYTES == 32 * 1024
    assert ws_messages(0) == 1
    assert ws_messages(32 * 1024) == 1
    assert ws_messages(32 * 1024 + 1) == 2


def test_billed_duration_rounds_up_and_an_on_demand_instance_pays_its_init_once():
    clock = Clock()
    m = meter(started_at=98.0, clock=clock)  # the init began 2 s before the first call
    clock.now = 100.0
    m.begin()
    clock.now = 100.0004
    first = m.end()
    assert first.billed_ms == 2001  # 2 s of init + 0.4 ms, rounded up to the millisecond
    m.begin()
    clock.now = 100.5
    second = m.end()
    assert second.billed_ms == 500
    assert second.gb_seconds == pytest.approx(0.5 * 2)


def test_a_provisioned_instance_pays_no_init_and_the_provisioned_duration_price():
    clock = Clock()
    m = meter(provisioned=True, started_at=0.0, clock=clock)
    m.begin()
    clock.now = 101.0
    bill = m.end()
    assert bill.billed_ms == 1000
    items = bill.usd_by_item()
    assert items["lambda_provisioned_duration"] == pytest.approx(
        2 * PRICES["lambda_provisioned_duration"].per_unit
    )
    assert "lambda_duration" not in items


def test_the_bill_prices_every_figure_at_list_price():
    bill = Bill(
        billed_ms=3000,
        memory_mb=10240,
        provisioned=False,
        read_units=4.5,
        write_units=7,
        ws_messages=260,
        connection_minutes=2,
        secret_calls=1,
    )
    p = {name: price.per_unit for name, price in PRICES.items()}
    assert bill.usd == pytest.approx(
        3 * 10 * p["lambda_duration"]
        + p["lambda_requests"]
        + 4.5 * p["dynamodb_read"]
        + 7 * p["dynamodb_write"]
        + 260 * p["ws_messages"]
        + 2 * p["ws_connection_minutes"]
        + p["secret_api_calls"]
    )


def test_connection_minutes_are_started_minutes():
    m = meter()
    m.begin()
    m.connection_ended(connected_at_ms=0, now_ms=61_000)
    assert m.end().connection_minutes == 2
    m.begin()
    m.connection_ended(connected_at_ms=5, now_ms=5)
    assert m.end().connection_minutes == 1


def test_other_clients_are_left_as_they_are():
    m = meter()
    client = boto3.client("sqs", region_name="us-east-1")
    assert m.instrument(client) is client

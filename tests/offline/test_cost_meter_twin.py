"""The cost meter through the twin: a real reply of the tiny model over the WebSocket, its
table on moto. Each function's `invocation cost` record counts what its invocation did
(the frames the client got, the function's memory from the template, DynamoDB's own
units) and goes out as the `EstimatedCostUSD` metric the dashboard sums."""

from __future__ import annotations

import asyncio
import json
import time

from llambda import contract
from llambda.cost_meter import Bill
from tests.offline.twin_helpers import chat, connect, diagnostics, receive

FUNCTION = "AWS::Lambda::Function"


def run(coro):
    return asyncio.run(coro)


def records(function, message: str) -> list[dict]:
    found = []
    for line in list(function.output):
        if f'"{message}"' in line:
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
    return found


def emf_values(function, metric: str) -> list[tuple[float, dict, str]]:
    """Every EMF record of `metric` in the function's output: (value, its dimensions)."""
    found = []
    for line in list(function.output):
        if '"_aws"' not in line or f'"{metric}"' not in line:
            continue
        record = json.loads(line)
        (directive,) = record["_aws"]["CloudWatchMetrics"]
        if any(m["Name"] == metric for m in directive["Metrics"]):
            dims = {name: record[name] for name in directive["Dimensions"][0]}
            value = record[metric]  # Powertools writes a list of values
            found.append(
                (sum(value) if isinstance(value, list) else value, dims, directive["Namespace"])
            )
    return found


def wait_for(predicate, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    return predicate()


async def one_reply(cloud, prompt: str) -> tuple[list[dict], float]:
    """Every message of one reply, and how long the client waited for it (ms)."""
    async with connect(cloud) as ws:
        started = time.monotonic()
        await chat(ws, prompt, max_tokens=12)
        got = []
        while True:
            message = await receive(ws, 120)
            got.append(message)
            if message["type"] in ("done", "error"):
                return got, (time.monotonic() - started) * 1000


def bill_of(record: dict) -> Bill:
    fields = {k: record[k] for k in Bill.__dataclass_fields__ if k in record}
    return Bill(**fields)


def test_a_replys_invocation_meters_its_frames_memory_and_writes(cloud):
    inference = cloud.function("Inference")
    initial = len(records(inference, "invocation cost"))
    run(one_reply(cloud, "Say hi."))  # a warm instance: the next bill has no init in it
    assert wait_for(lambda: len(records(inference, "invocation cost")) > initial)
    before = len(records(inference, "invocation cost"))
    messages, waited_ms = run(one_reply(cloud, "Name a colour."))
    assert messages[-1]["type"] == "done", messages
    bills = wait_for(lambda: records(inference, "invocation cost")[before:])
    assert len(bills) == 1, diagnostics(cloud)
    record = bills[0]

    # Everything the reply sent, one metered message each (the router sent `conversation`).
    posted = [m for m in messages if m["type"] != "conversation"]
    assert record["ws_messages"] == len(posted)
    # The function's memory as the template declares it; the duration within the wait.
    declared = cloud.resource("Inference", FUNCTION).properties["MemorySize"]
    assert record["memory_mb"] == declared
    assert 0 < record["billed_ms"] <= waited_ms + 50
    assert record["gb_seconds"] == round(record["billed_ms"] / 1000 * declared / 1024, 6)
    assert record["provisioned"] is False
    # The write that saves the turns and frees the conversation, in the units the table
    # reports (moto says half a unit for an update, where DynamoDB says one per KB).
    assert record["write_units"] > 0
    # The figures priced at llambda.prices.
    assert record["usd"] == round(bill_of(record).usd, 10)


def test_every_bill_goes_out_as_the_metric_the_dashboard_sums(cloud):
    router = cloud.function("Router")
    before = len(emf_values(router, contract.METRIC_ESTIMATED_COST))
    run(one_reply(cloud, "Say yes."))
    values = wait_for(lambda: emf_values(router, contract.METRIC_ESTIMATED_COST)[before:])
    assert values, diagnostics(cloud)
    bills = records(router, "invocation cost")[-len(values) :]
    # The router's chat: the message it was invoked for, and the `conversation` it sent.
    assert any(bill["route"] == "$default" and bill["ws_messages"] >= 2 for bill in bills), bills
    # The connection's minutes, counted when it ended: under a minute is one.
    assert wait_for(
        lambda: any(
            bill["route"] == "$disconnect" and bill["connection_minutes"] == 1
            for bill in records(router, "invocation cost")[-len(values) :]
        )
    ), bills
    for value, dims, namespace in values:
        assert namespace == contract.METRICS_NAMESPACE
        # The dimensions the dashboard's search names: every function's, per stage.
        assert set(dims) == {"service", "stage"}
        assert value > 0


def test_an_openai_completion_is_metered_by_the_function_that_serves_it(cloud):
    import openai

    from tests.offline.test_openai_endpoint import new_key, url_of

    inference = cloud.function("Inference")
    client = openai.OpenAI(base_url=url_of(cloud) + "v1", api_key=new_key(cloud), max_retries=0)
    before = len(records(inference, "invocation cost"))
    [model] = [m.id for m in client.models.list().data]
    started = time.monotonic()
    answer = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Say hi."}], max_tokens=6
    )
    waited_ms = (time.monotonic() - started) * 1000
    assert answer.usage.completion_tokens > 0
    # Two invocations: the model list and the completion, each with its own bill.
    bills = wait_for(lambda: records(inference, "invocation cost")[before:][1:])
    assert len(bills) == 1, diagnostics(cloud)
    (bill,) = bills
    assert 0 < bill["billed_ms"] <= waited_ms + 50
    # No WebSocket in it; the key's rate count and the budgets' writes, in DynamoDB's units.
    assert bill["ws_messages"] == 0
    assert bill["write_units"] > 0
    assert bill["usd"] == round(bill_of(bill).usd, 10)

"""Lambda's Invoke API and execution model on the twin, through boto3's `lambda` client."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from botocore.config import Config

from offline.cloud import ACCOUNT_ID
from offline.cloud import DEFAULT_REGION as REGION


@pytest.fixture
def lambda_client(cloud):
    return boto3.client(
        "lambda",
        endpoint_url=cloud.http_url.rstrip("/"),
        region_name=REGION,
        config=Config(retries={"total_max_attempts": 1}, read_timeout=30),
    )


def invoke(client, name, payload, **kwargs):
    response = client.invoke(FunctionName=name, Payload=json.dumps(payload).encode(), **kwargs)
    body = response["Payload"].read()
    return response, json.loads(body) if body else None


def test_request_response_returns_the_handlers_answer_with_a_lambda_context(lambda_client):
    response, answer = invoke(lambda_client, "echo", {"hello": "world"})
    assert response["StatusCode"] == 200
    assert "FunctionError" not in response
    assert answer["event"] == {"hello": "world"}
    assert answer["functionName"] == "echo"
    assert answer["invokedArn"].endswith(":function:echo")
    assert 0 < answer["remainingMs"] <= 3000
    assert answer["env"]["AWS_LAMBDA_INITIALIZATION_TYPE"] == "on-demand"
    assert answer["env"]["AWS_LAMBDA_FUNCTION_NAME"] == "echo"


def test_a_handler_error_is_an_unhandled_function_error(lambda_client):
    response, answer = invoke(lambda_client, "echo", {"raise": "boom"})
    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    assert answer["errorType"] == "ValueError"
    assert answer["errorMessage"] == "boom"


@pytest.mark.parametrize(
    "name",
    [
        "echo-reserved:live",
        f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:echo-reserved",
        f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:echo-reserved:live",
        f"{ACCOUNT_ID}:function:echo-reserved",
    ],
)
def test_names_aliases_and_arns_resolve_to_the_function(lambda_client, name):
    _, answer = invoke(lambda_client, name, {})
    assert answer["functionName"] == "echo-reserved"


def test_unknown_functions_and_aliases_are_not_found(lambda_client):
    for name in ("nope", "echo:nosuchalias", "arn:aws:lambda:eu-west-1:123456789012:function:echo"):
        with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
            invoke(lambda_client, name, {})


def test_sequential_invokes_reuse_one_warm_instance(lambda_client):
    answers = [invoke(lambda_client, "echo", {})[1] for _ in range(3)]
    assert len({a["pid"] for a in answers}) == 1
    assert [a["calls"] for a in answers] == sorted(a["calls"] for a in answers)
    assert answers[-1]["calls"] - answers[0]["calls"] == 2  # module state survives


def test_concurrent_invokes_start_a_second_instance(lambda_client, cloud):
    invoke(lambda_client, "echo", {})  # at least one warm instance
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: invoke(lambda_client, "echo", {"sleep": 1})[1], [0, 1]))
    assert answers[0]["pid"] != answers[1]["pid"]
    assert cloud.function("echo").instance_count >= 2


def test_reserved_concurrency_throttles_requests_and_queues_events(lambda_client, cloud):
    reserved = cloud.function("echo-reserved")
    with ThreadPoolExecutor(2) as pool:
        slow = pool.submit(invoke, lambda_client, "echo-reserved", {"sleep": 5})
        # Wait on state, not a guess: its one instance is taken (a generous bound).
        deadline = time.monotonic() + 60
        while reserved.busy < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert reserved.busy == 1
        with pytest.raises(lambda_client.exceptions.TooManyRequestsException):
            invoke(lambda_client, "echo-reserved", {})
        # Asynchronous events are accepted and wait for the one instance.
        for n in range(3):
            response = lambda_client.invoke(
                FunctionName="echo-reserved", InvocationType="Event", Payload=b'{"n": %d}' % n
            )
            assert response["StatusCode"] == 202
        assert cloud.function("echo-reserved").queued_events >= 1
        slow.result()
    deadline = time.monotonic() + 10
    while cloud.function("echo-reserved").queued_events and time.monotonic() < deadline:
        time.sleep(0.1)
    assert cloud.function("echo-reserved").queued_events == 0
    assert cloud.function("echo-reserved").instance_count == 1


def test_a_timed_out_handler_is_killed_and_replaced(lambda_client, cloud):
    invoke(lambda_client, "echo", {})
    response, answer = invoke(lambda_client, "echo", {"sleep": 10})  # timeout is 3 s
    assert response["FunctionError"] == "Unhandled"
    assert "Task timed out after 3.00 seconds" in answer["errorMessage"]
    _, after = invoke(lambda_client, "echo", {})
    assert after["event"] == {}
    # The instance that timed out was killed: every pid left in the pool is alive.
    assert all(w.proc.poll() is None for w in cloud.function("echo").workers())


def test_an_expired_event_goes_to_the_on_failure_destination(lambda_client, cloud, record_dir):
    cloud.faults.invoke.expire_next = 1
    payload = {"marker": "expire-me"}
    response = lambda_client.invoke(
        FunctionName="echo-reserved", InvocationType="Event", Payload=json.dumps(payload)
    )
    assert response["StatusCode"] == 202
    record = _wait_for_record(record_dir, "expire-me")
    assert record["requestContext"]["condition"] == "EventAgeExceeded"
    assert record["requestContext"]["functionArn"].endswith(":function:echo-reserved:$LATEST")
    assert record["requestPayload"] == payload


def test_a_failed_event_goes_to_the_on_failure_destination(lambda_client, record_dir):
    payload = {"raise": "fails-on-purpose"}
    lambda_client.invoke(
        FunctionName="echo-reserved", InvocationType="Event", Payload=json.dumps(payload)
    )
    record = _wait_for_record(record_dir, "fails-on-purpose")
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert record["responsePayload"]["errorMessage"] == "fails-on-purpose"


def test_injected_throttling_answers_429(lambda_client, cloud):
    cloud.faults.invoke.throttle_next = 1
    with pytest.raises(lambda_client.exceptions.TooManyRequestsException):
        invoke(lambda_client, "echo", {})
    assert invoke(lambda_client, "echo", {})[0]["StatusCode"] == 200


def _wait_for_record(record_dir, marker, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in record_dir.glob("*.json"):
            text = path.read_text()
            if marker in text:
                return json.loads(text)
        time.sleep(0.1)
    raise AssertionError(f"no destination record with {marker!r}")

"""Test-only Lambda handlers for the worker-model and event-shape tests.

They run inside the twin's worker processes, so they only use what a handler may: the
event, the context, the environment, module state, and AWS through the SDK.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import boto3

INSTANCE_STARTED = time.time()  # module state: one value per execution environment
CALLS = 0


def echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Answers with what it was given and who ran it."""
    global CALLS
    CALLS += 1
    if event.get("sleep"):
        time.sleep(float(event["sleep"]))
    if event.get("raise"):
        raise ValueError(event["raise"])
    return {
        "event": event,
        "pid": os.getpid(),
        "calls": CALLS,
        "instanceStarted": INSTANCE_STARTED,
        "requestId": context.aws_request_id,
        "functionName": context.function_name,
        "invokedArn": context.invoked_function_arn,
        "memory": context.memory_limit_in_mb,
        "remainingMs": context.get_remaining_time_in_millis(),
        "env": {k: v for k, v in os.environ.items() if k.startswith(("AWS_LAMBDA", "TABLE"))},
    }


def record(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Writes each event to $RECORD_DIR; echoes messages back through @connections;
    refuses `$connect` with the status in `?status=`; authorizes per `?deny=`."""
    out = Path(os.environ["RECORD_DIR"])
    out.mkdir(parents=True, exist_ok=True)
    ctx = event.get("requestContext") or {}
    kind = event.get("type") or ctx.get("eventType") or "RECORD"
    name = f"{time.time_ns()}-{kind}-{ctx.get('connectionId', 'none')}.json"
    (out / name).write_text(json.dumps(event))
    query = event.get("queryStringParameters") or {}
    if kind == "REQUEST":  # the $connect authorizer
        effect = "Deny" if query.get("deny") else "Allow"
        arn = event["methodArn"]
        statement = {"Action": "execute-api:Invoke", "Effect": effect, "Resource": arn}
        return {
            "principalId": "tester",
            "policyDocument": {
                "Version": "2012-10-17",
                "Statement": [statement],
            },
            "context": {"plan": "free", "quota": 3},
        }
    if kind == "CONNECT":
        return {"statusCode": int(query.get("status", 200))}
    if kind == "MESSAGE":
        client = boto3.client("apigatewaymanagementapi")  # endpoint from the environment
        client.post_to_connection(ConnectionId=ctx["connectionId"], Data=json.dumps(event))
    return {"statusCode": 200}

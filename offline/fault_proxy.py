"""The functions' way to moto's server: IAM enforced, faults injected on request.

Every AWS call the functions make locally (DynamoDB, Secrets Manager) goes through it.
It checks the caller's role against the (action, resource) the request needs
(`offline.access`), forwards what is allowed unchanged, and can be told to add latency
or to answer the next N calls (optionally only one service or one operation) with
DynamoDB's throttling error (`ProvisionedThroughputExceededException`, 400) or an internal
error (500), so the SDK's standard retry mode in the runtime is exercised for real.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import aiohttp
from aiohttp import web

from offline.access import AccessControl
from offline.iam import dynamodb_targets, secretsmanager_targets, ssm_targets
from offline.trace import AWS_CALL, Trace, maybe_span

log = logging.getLogger("offline")

FaultKind = Literal["throttle", "server_error"]

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "content-encoding",
    "host",
    "upgrade",
}


_SESSION = web.AppKey("session", aiohttp.ClientSession)


@dataclass
class AwsFaults:
    """Faults for the AWS calls behind the proxy (mutable at run time, thread-safe)."""

    latency_ms: float = 0
    fail_next: int = 0
    fail_kind: FaultKind = "throttle"
    # Only calls whose target starts with this fail, e.g. "DynamoDB_20120810" (any service
    # when empty) or "DynamoDB_20120810.UpdateItem" (one operation).
    fail_target: str = "DynamoDB_20120810"
    injected: int = 0
    calls: Counter = field(default_factory=Counter)  # by X-Amz-Target
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def fail_dynamodb(
        self, count: int, kind: FaultKind = "throttle", operation: str | None = None
    ) -> None:
        """Make the next `count` DynamoDB calls (or calls of one operation) fail."""
        with self._lock:
            self.fail_next = count
            self.fail_kind = kind
            self.fail_target = "DynamoDB_20120810" + (f".{operation}" if operation else "")

    def take(self, target: str) -> FaultKind | None:
        with self._lock:
            self.calls[target] += 1
            if self.fail_next > 0 and target.startswith(self.fail_target):
                self.fail_next -= 1
                self.injected += 1
                return self.fail_kind
            return None

    def reset(self) -> None:
        with self._lock:
            self.latency_ms, self.fail_next, self.injected = 0, 0, 0
            self.calls.clear()


def create_proxy_app(
    upstream: str,
    faults: AwsFaults,
    *,
    access: AccessControl | None = None,
    region: str = "us-east-1",
    account_id: str = "123456789012",
    secret_arn: Callable[[str], str | None] = lambda name: None,
    trace: Trace | None = None,
) -> web.Application:
    """An aiohttp application that forwards what IAM allows to `upstream` (moto's server).

    `secret_arn` turns a secret's name into its ARN (a request may name it either way).
    """

    def targets(target: str, body: bytes) -> list[tuple[str, str]]:
        if target.startswith("DynamoDB_"):
            return dynamodb_targets(target, body, region=region, account_id=account_id)
        if target.startswith("secretsmanager."):
            return secretsmanager_targets(
                target, body, region=region, account_id=account_id, arn_for_name=secret_arn
            )
        if target.startswith("AmazonSSM."):
            return ssm_targets(target, body, region=region, account_id=account_id)
        return [(f"unknown:{target}", "*")]

    app = web.Application(client_max_size=64 * 1024 * 1024)

    async def on_startup(app: web.Application) -> None:
        app[_SESSION] = aiohttp.ClientSession(auto_decompress=False)

    async def on_cleanup(app: web.Application) -> None:
        await app[_SESSION].close()

    async def forward(request: web.Request) -> web.StreamResponse:
        target = request.headers.get("X-Amz-Target", f"{request.method} {request.path}")
        with maybe_span(trace, AWS_CALL, target):
            return await answer(request, target)

    async def answer(request: web.Request, target: str) -> web.StreamResponse:
        if faults.latency_ms > 0:
            await asyncio.sleep(faults.latency_ms / 1000)
        kind = faults.take(target)
        if kind is not None:
            log.info("fault    %s answered with %s (injected)", target, kind)
            return _fault(kind, target)
        body = await request.read()
        if access is not None:
            service = (
                "dynamodb"
                if target.startswith("DynamoDB_")
                else "ssm"
                if target.startswith("AmazonSSM.")
                else "secretsmanager"
            )
            denial = access.check(service, request.headers, targets(target, body))
            if denial is not None:
                return web.Response(status=denial.status, body=denial.body, headers=denial.headers)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        async with app[_SESSION].request(
            request.method,
            upstream + request.path_qs,
            headers=headers,
            data=body,
            allow_redirects=False,
        ) as upstream_response:
            payload = await upstream_response.read()
            out_headers = {
                k: v for k, v in upstream_response.headers.items() if k.lower() not in _HOP_BY_HOP
            }
            return web.Response(status=upstream_response.status, body=payload, headers=out_headers)

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


def _fault(kind: FaultKind, target: str) -> web.Response:
    dynamodb = target.startswith("DynamoDB_")
    if kind == "throttle":
        if dynamodb:
            error_type = "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"
            message = (
                "The level of configured provisioned throughput for the table was exceeded. "
                "Consider increasing your provisioning level with the UpdateTable API."
            )
        else:
            error_type, message = "ThrottlingException", "Rate exceeded"
        status = 400
    else:
        error_type = (
            "com.amazonaws.dynamodb.v20120810#InternalServerError"
            if dynamodb
            else "InternalServiceError"
        )
        message, status = "Internal server error", 500
    return web.Response(
        status=status,
        body=json.dumps({"__type": error_type, "message": message}).encode(),
        headers={"Content-Type": "application/x-amz-json-1.0", "x-amzn-ErrorType": error_type},
    )

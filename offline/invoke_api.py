"""Lambda's Invoke API over HTTP, so the unchanged boto3 `lambda` client works locally.

`POST /2015-03-31/functions/{FunctionName}/invocations` with `X-Amz-Invocation-Type`
`RequestResponse` (200 and the payload; `X-Amz-Function-Error: Unhandled` when the
handler raised), `Event` (202, queued) or `DryRun` (204). `FunctionName` may be a name,
`name:qualifier`, a partial ARN or a full ARN, with the qualifier also accepted as the
`Qualifier` query parameter, as Lambda does.
"""

from __future__ import annotations

import asyncio
import logging
import re

from aiohttp import web

from offline.access import AccessControl
from offline.iam import invoke_target
from offline.lambda_function import LambdaFaults, LocalFunction, Throttled
from offline.trace import INVOKE, Trace, maybe_span

log = logging.getLogger("offline")

# Lambda's payload limits: 6 MB for a synchronous invoke, 1 MB for an asynchronous one.
MAX_SYNC_PAYLOAD = 6 * 1024 * 1024
MAX_EVENT_PAYLOAD = 1024 * 1024

_ARN = re.compile(
    r"^(?:arn:aws[a-z-]*:lambda:(?P<region>[a-z0-9-]+):)?(?:(?P<account>\d{12}):function:)?"
    r"(?P<name>[A-Za-z0-9_-]+)(?::(?P<qualifier>[A-Za-z0-9$_-]+))?$"
)


class FunctionRegistry:
    """The functions of the local account, found by name, alias or ARN."""

    def __init__(self, *, region: str, account_id: str) -> None:
        self.region = region
        self.account_id = account_id
        self._functions: dict[str, LocalFunction] = {}

    def add(self, function: LocalFunction) -> None:
        self._functions[function.spec.name] = function

    def get(self, name: str) -> LocalFunction:
        return self._functions[name]

    def all(self) -> list[LocalFunction]:
        return list(self._functions.values())

    def resolve(self, function_name: str, qualifier: str | None = None) -> LocalFunction | None:
        match = _ARN.match(function_name)
        if not match:
            return None
        if match["region"] and match["region"] != self.region:
            return None
        if match["account"] and match["account"] != self.account_id:
            return None
        function = self._functions.get(match["name"])
        if function is None:
            return None
        for q in (match["qualifier"], qualifier):
            if q and q != "$LATEST" and not q.isdigit() and q not in function.spec.aliases:
                return None
        return function


def add_invoke_routes(
    app: web.Application,
    registry: FunctionRegistry,
    *,
    faults: LambdaFaults,
    access: AccessControl | None = None,
    trace: Trace | None = None,
) -> None:
    """Serve the Invoke API on `app`."""

    async def invoke(request: web.Request) -> web.Response:
        with maybe_span(trace, INVOKE, request.match_info["function_name"]):
            return await answer(request)

    async def answer(request: web.Request) -> web.Response:
        name = request.match_info["function_name"]
        function = registry.resolve(name, request.query.get("Qualifier"))
        if function is None:
            arn = f"arn:aws:lambda:{registry.region}:{registry.account_id}:function:{name}"
            return _error(404, "ResourceNotFoundException", f"Function not found: {arn}")
        match = _ARN.match(name)
        qualifier = (match["qualifier"] if match else None) or request.query.get("Qualifier")
        if access is not None:
            denial = access.check(
                "lambda", request.headers, [invoke_target(function.arn, qualifier)]
            )
            if denial is not None:
                return web.Response(status=denial.status, body=denial.body, headers=denial.headers)
        invocation_type = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        payload = await request.read()
        invoked_arn = f"{function.arn}:{qualifier}" if qualifier else function.arn
        if invocation_type == "DryRun":
            return web.Response(status=204)
        if invocation_type not in ("Event", "RequestResponse"):
            return _error(400, "InvalidParameterValueException", "Invalid InvocationType")
        limit = MAX_EVENT_PAYLOAD if invocation_type == "Event" else MAX_SYNC_PAYLOAD
        if len(payload) > limit:
            return _error(
                413,
                "RequestTooLargeException",
                f"Request must be smaller than {limit} bytes for the InvokeFunction operation",
            )
        if faults.latency_ms > 0:
            await asyncio.sleep(faults.latency_ms / 1000)
        if faults.take_throttle():
            log.warning("invoke %s: throttled (injected fault)", function.spec.name)
            return _throttled()
        if invocation_type == "Event":
            request_id = function.submit_event(
                payload, invoked_arn=invoked_arn, expire=faults.take_expiry()
            )
            return web.Response(status=202, headers={"x-amzn-RequestId": request_id})
        try:
            result = await function.invoke(payload, invoked_arn=invoked_arn)
        except Throttled:
            log.warning("invoke %s: throttled at reserved concurrency", function.spec.name)
            return _throttled()
        headers = {"X-Amz-Executed-Version": "$LATEST", "Content-Type": "application/json"}
        if result.function_error:
            headers["X-Amz-Function-Error"] = result.function_error
        return web.Response(status=200, body=result.payload, headers=headers)

    app.router.add_post("/2015-03-31/functions/{function_name}/invocations", invoke)


def _throttled() -> web.Response:
    return _error(
        429,
        "TooManyRequestsException",
        "Rate Exceeded.",
        reason="ReservedFunctionConcurrentInvocationLimitExceeded",
    )


def _error(
    status: int, error_type: str, message: str, *, reason: str | None = None
) -> web.Response:
    body: dict[str, str] = {"Type": "User", "message": message}
    if reason:
        body["Reason"] = reason
    return web.json_response(body, status=status, headers={"x-amzn-ErrorType": error_type})

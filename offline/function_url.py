"""A Lambda Function URL, served locally: every method and path of its own address goes
to the function it targets (its alias), as a payload format 2.0 event
(docs.aws.amazon.com/lambda/latest/dg/urls-invocation.html).

- `InvokeMode: RESPONSE_STREAM`: what the function streams is sent on as it arrives. An
  answer of content type `application/vnd.awslambda.http-integration-response` starts
  with a JSON prelude (status, headers, cookies) and 8 NUL bytes; the body follows. When
  the client goes away, the stream is cut at once (the function sees its answer's
  connection close).
- `BUFFERED`: the function's return value is the response (`statusCode`/`headers`/`body`,
  or any other JSON as a 200 `application/json` body).
- `Cors`: the URL answers preflights itself and adds `Access-Control-Allow-Origin` for an
  allowed origin; the function never sees a preflight.
- `AuthType: AWS_IAM`: a request without a SigV4 `Authorization` header is refused with
  403 before the function runs (the twin does not verify signatures); `NONE` lets all in.
- A function error is a 502, as Lambda answers it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
import uuid
from typing import Any

from aiohttp import web

from offline.blueprint import UrlPlan
from offline.lambda_function import LocalFunction, Throttled

PRELUDE_CONTENT_TYPE = "application/vnd.awslambda.http-integration-response"
PRELUDE_DELIMITER = b"\0" * 8
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript")
# How often a stream checks that its client is still there between chunks.
CLIENT_CHECK_SECONDS = 0.01


def url_id(url: str) -> str:
    return url.split("//", 1)[-1].split(".", 1)[0]


def build_event(request: web.Request, body: bytes, *, plan: UrlPlan, account_id: str) -> dict:
    """The payload format 2.0 event a Function URL sends."""
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        key = name.lower()
        if key == "cookie":
            continue
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    cookies = [c.strip() for c in request.headers.get("cookie", "").split(";") if c.strip()]
    content_type = request.headers.get("content-type", "")
    textual = not body or content_type.startswith(_TEXT_TYPES)
    if textual:
        try:
            text, encoded = body.decode("utf-8"), False
        except UnicodeDecodeError:
            text, encoded = base64.b64encode(body).decode(), True
    else:
        text, encoded = base64.b64encode(body).decode(), True
    domain = plan.url.split("//", 1)[-1].rstrip("/")
    now = time.time()
    peer = request.transport.get_extra_info("peername") if request.transport else None
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": request.path,
        "rawQueryString": request.query_string,
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": url_id(plan.url),
            "domainName": domain,
            "domainPrefix": url_id(plan.url),
            "http": {
                "method": request.method,
                "path": request.path,
                "protocol": f"HTTP/{request.version.major}.{request.version.minor}",
                "sourceIp": peer[0] if peer else "127.0.0.1",
                "userAgent": request.headers.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": encoded,
    }
    if cookies:
        event["cookies"] = cookies
    if request.query:
        event["queryStringParameters"] = {
            k: ",".join(request.query.getall(k)) for k in request.query
        }
    if body:
        event["body"] = text
    return event


class FunctionUrl:
    """One Function URL's HTTP server routes, in front of its function."""

    def __init__(self, plan: UrlPlan, function: LocalFunction, *, account_id: str) -> None:
        self.plan = plan
        self.function = function
        self.account_id = account_id
        self.invoked_arn = (
            function.arn if plan.qualifier == "$LATEST" else f"{function.arn}:{plan.qualifier}"
        )
        # For each stream its client cut: how many body chunks the function had sent.
        self.cut_after_chunks: list[int] = []

    def app(self) -> web.Application:
        app = web.Application(client_max_size=6 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    # -- CORS ------------------------------------------------------------------------
    def _allowed_origin(self, origin: str | None) -> str | None:
        cors = self.plan.cors
        if not cors or origin is None:
            return None
        allowed = cors.get("AllowOrigins") or []
        if "*" in allowed:
            return "*"
        return origin if origin in allowed else None

    def _cors_headers(self, origin: str | None) -> dict[str, str]:
        allowed = self._allowed_origin(origin)
        if allowed is None:
            return {}
        cors = self.plan.cors or {}
        headers = {"Access-Control-Allow-Origin": allowed, "Vary": "Origin"}
        if cors.get("ExposeHeaders"):
            headers["Access-Control-Expose-Headers"] = ",".join(cors["ExposeHeaders"])
        if cors.get("AllowCredentials"):
            headers["Access-Control-Allow-Credentials"] = "true"
        return headers

    def _preflight(self, request: web.Request) -> web.Response:
        cors = self.plan.cors or {}
        headers = self._cors_headers(request.headers.get("origin"))
        if headers:
            headers["Access-Control-Allow-Methods"] = ",".join(cors.get("AllowMethods") or [])
            headers["Access-Control-Allow-Headers"] = ",".join(cors.get("AllowHeaders") or [])
            if cors.get("MaxAge") is not None:
                headers["Access-Control-Max-Age"] = str(cors["MaxAge"])
        return web.Response(status=200, headers=headers)

    # -- requests ----------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        if (
            self.plan.cors
            and request.method == "OPTIONS"
            and "access-control-request-method" in request.headers
        ):
            return self._preflight(request)
        if self.plan.auth_type == "AWS_IAM" and not request.headers.get(
            "authorization", ""
        ).startswith("AWS4-HMAC-SHA256 "):
            return web.json_response({"Message": "Forbidden"}, status=403)
        body = await request.read()
        event = build_event(request, body, plan=self.plan, account_id=self.account_id)
        payload = json.dumps(event).encode()
        cors = self._cors_headers(request.headers.get("origin"))
        if self.plan.invoke_mode == "RESPONSE_STREAM":
            return await self._stream(request, payload, cors)
        return await self._buffered(payload, cors)

    async def _buffered(self, payload: bytes, cors: dict[str, str]) -> web.StreamResponse:
        try:
            result = await self.function.invoke(payload, invoked_arn=self.invoked_arn)
        except Throttled:
            return web.json_response({"Message": "Rate Exceeded."}, status=429, headers=cors)
        if result.function_error:
            return _bad_gateway(cors)
        answer = result.json()
        if isinstance(answer, dict) and "statusCode" in answer:
            body = answer.get("body") or ""
            data = base64.b64decode(body) if answer.get("isBase64Encoded") else body.encode()
            headers = {**{k: str(v) for k, v in (answer.get("headers") or {}).items()}, **cors}
            response = web.Response(status=int(answer["statusCode"]), body=data, headers=headers)
            for cookie in answer.get("cookies") or []:
                response.headers.add("Set-Cookie", cookie)
            return response
        return web.Response(
            status=200, body=result.payload, content_type="application/json", headers=cors
        )

    async def _stream(
        self, request: web.Request, payload: bytes, cors: dict[str, str]
    ) -> web.StreamResponse:
        cut = asyncio.Event()
        state: dict[str, Any] = {"response": None, "head": b"", "chunks": 0}

        def cut_now() -> None:
            if not cut.is_set():
                self.cut_after_chunks.append(state["chunks"])
                cut.set()

        def client_gone() -> bool:
            transport = request.transport
            return transport is None or transport.is_closing()

        async def watch() -> None:
            while not cut.is_set():
                if client_gone():
                    cut_now()
                    return
                await asyncio.sleep(CLIENT_CHECK_SECONDS)

        async def begin(status: int, headers: dict[str, str], cookies: list[str]) -> None:
            response = web.StreamResponse(status=status, headers={**headers, **cors})
            for cookie in cookies:
                response.headers.add("Set-Cookie", cookie)
            await response.prepare(request)
            state["response"] = response

        async def on_chunk(data: bytes, content_type: str) -> None:
            if cut.is_set() or client_gone():
                cut_now()
                raise ConnectionResetError("the client went away")
            if state["response"] is None:
                if content_type.startswith(PRELUDE_CONTENT_TYPE):
                    state["head"] += data
                    prelude, found, rest = state["head"].partition(PRELUDE_DELIMITER)
                    if not found:
                        return
                    meta = json.loads(prelude or b"{}")
                    await begin(
                        int(meta.get("statusCode", 200)),
                        {k: str(v) for k, v in (meta.get("headers") or {}).items()},
                        list(meta.get("cookies") or []),
                    )
                    data = rest
                else:
                    await begin(
                        200, {"Content-Type": content_type or "application/octet-stream"}, []
                    )
            if data:
                state["chunks"] += 1
                try:
                    await state["response"].write(data)
                except (ConnectionError, RuntimeError):
                    cut_now()
                    raise ConnectionResetError("the client went away") from None

        watcher = asyncio.ensure_future(watch())
        try:
            result = await self.function.invoke_stream(
                payload, invoked_arn=self.invoked_arn, on_chunk=on_chunk, cut=cut
            )
        except Throttled:
            return web.json_response({"Message": "Rate Exceeded."}, status=429, headers=cors)
        finally:
            cut.set()
            watcher.cancel()
        response = state["response"]
        if response is None:
            if result.function_error or client_gone():
                return _bad_gateway(cors)
            # The function streamed nothing at all (or only a prelude cut short).
            response = web.StreamResponse(status=200, headers=cors)
            await response.prepare(request)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await response.write_eof()
        return response


def _bad_gateway(cors: dict[str, str]) -> web.Response:
    return web.json_response({"Message": "Internal Server Error"}, status=502, headers=cors)

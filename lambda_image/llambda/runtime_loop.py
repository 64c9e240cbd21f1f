"""The inference image's own runtime loop: Lambda's Runtime API, with response streaming.

Lambda's Python runtime returns a handler's whole answer at the end; only a custom runtime
can stream one (docs.aws.amazon.com/lambda/latest/dg/runtimes-custom.html, "Response
streaming"). This loop is that runtime, standard library only:

    python3 -m llambda.runtime_loop --stream STREAM_HANDLER HANDLER

It imports both handlers once (the init phase), then for each invocation from
`GET /runtime/invocation/next`:
- a Function URL request (payload format 2.0: `requestContext.http`) goes to
  STREAM_HANDLER(event, context, stream), whose bytes are POSTed to `/response` as they
  come: `Lambda-Runtime-Function-Response-Mode: streaming`, chunked, content type
  `application/vnd.awslambda.http-integration-response`, whose body is the JSON prelude
  (status, headers), 8 NUL bytes, then the HTTP body. An error after the first byte goes
  in the `Lambda-Runtime-Function-Error-Type`/`-Body` trailers it declared.
- any other event (the WebSocket door's dispatch) goes to HANDLER(event, context) and its
  JSON answer is POSTed whole, as Lambda's own runtime does.
"""

from __future__ import annotations

import base64
import http.client
import importlib
import json
import os
import select
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from llambda.instance import MEMORY_VARIABLE

API_VERSION = "2018-06-01"
STREAM_CONTENT_TYPE = "application/vnd.awslambda.http-integration-response"
PRELUDE_DELIMITER = b"\0" * 8
ERROR_TYPE_TRAILER = "Lambda-Runtime-Function-Error-Type"
ERROR_BODY_TRAILER = "Lambda-Runtime-Function-Error-Body"


class ClientGone(Exception):
    """The stream can no longer be written: the Runtime API (or the client behind the
    Function URL) closed it. The handler stops generating."""


class LambdaContext:
    """The context object a Python handler is given, from `/next`'s headers."""

    def __init__(self, headers: http.client.HTTPMessage) -> None:
        self.aws_request_id = headers.get("Lambda-Runtime-Aws-Request-Id", "")
        self._deadline_ms = int(headers.get("Lambda-Runtime-Deadline-Ms") or 0)
        self.invoked_function_arn = headers.get("Lambda-Runtime-Invoked-Function-Arn", "")
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = os.environ.get(MEMORY_VARIABLE, "")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


class ResponseStream:
    """What a streaming handler writes to: `start` once with the HTTP status and headers,
    then `write` the body; both raise `ClientGone` when the stream was cut."""

    def __init__(self, connection: http.client.HTTPConnection, path: str) -> None:
        self._connection = connection
        self._path = path
        self.started = False
        self.finished = False

    def start(self, status: int, headers: dict[str, str]) -> None:
        if self.started:
            raise RuntimeError("the response has already started")
        self.started = True
        try:
            self._connection.putrequest("POST", self._path, skip_accept_encoding=True)
            self._connection.putheader("Lambda-Runtime-Function-Response-Mode", "streaming")
            self._connection.putheader("Transfer-Encoding", "chunked")
            self._connection.putheader("Content-Type", STREAM_CONTENT_TYPE)
            self._connection.putheader("Trailer", f"{ERROR_TYPE_TRAILER}, {ERROR_BODY_TRAILER}")
            self._connection.endheaders()
        except OSError as error:
            raise ClientGone(str(error)) from error
        prelude = json.dumps({"statusCode": status, "headers": headers, "cookies": []})
        self._chunk(prelude.encode() + PRELUDE_DELIMITER)

    def cut(self) -> bool:
        """True when the other end has closed the stream (checked without waiting): a
        generation asks before each token, so it stops within one token of a cut."""
        sock = self._connection.sock
        if sock is None:
            return self.started
        readable, _, _ = select.select([sock], [], [], 0)
        # Nothing is due from the Runtime API before the body ends: a readable socket is
        # its close (or an early error answer), either way the end of this stream.
        return bool(readable)

    def write(self, data: bytes) -> None:
        if not self.started:
            raise RuntimeError("start the response before writing its body")
        if data:
            self._chunk(data)

    def _chunk(self, data: bytes) -> None:
        try:
            self._connection.send(b"%x\r\n%s\r\n" % (len(data), data))
        except OSError as error:
            raise ClientGone(str(error)) from error

    def finish(self, error: BaseException | None = None) -> None:
        """End the body; an error after the start goes in the declared trailers."""
        if self.finished or not self.started:
            return
        self.finished = True
        trailers = b""
        if error is not None:
            body = base64.b64encode(json.dumps(_error_body(error)).encode())
            trailers = b"%s: %s\r\n%s: %s\r\n" % (
                ERROR_TYPE_TRAILER.encode(),
                _error_type(error).encode(),
                ERROR_BODY_TRAILER.encode(),
                body,
            )
        try:
            self._connection.send(b"0\r\n" + trailers + b"\r\n")
            self._connection.getresponse().read()
        except (OSError, http.client.HTTPException) as gone:
            raise ClientGone(str(gone)) from gone


def _error_type(error: BaseException) -> str:
    return (
        f"Runtime.{type(error).__name__}"
        if isinstance(error, ClientGone)
        else (f"Function.{type(error).__name__}")
    )


def _error_body(error: BaseException) -> dict[str, Any]:
    return {
        "errorMessage": str(error),
        "errorType": type(error).__name__,
        "stackTrace": traceback.format_tb(error.__traceback__),
    }


def is_function_url_event(event: object) -> bool:
    """Payload format 2.0, as a Function URL sends it."""
    return (
        isinstance(event, dict)
        and event.get("version") == "2.0"
        and isinstance(event.get("requestContext"), dict)
        and isinstance(event["requestContext"].get("http"), dict)
    )


Handler = Callable[[Any, LambdaContext], Any]
StreamHandler = Callable[[Any, LambdaContext, ResponseStream], None]


class RuntimeLoop:
    def __init__(self, address: str, handler: Handler, stream_handler: StreamHandler) -> None:
        self._address = address
        self._handler = handler
        self._stream_handler = stream_handler

    def _connection(self) -> http.client.HTTPConnection:
        # No timeout: /next waits as long as there is no invocation.
        return http.client.HTTPConnection(self._address, timeout=None)

    def _post(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> None:
        connection = self._connection()
        try:
            connection.request("POST", path, body=body, headers=headers or {})
            connection.getresponse().read()
        finally:
            connection.close()

    def next(self) -> tuple[Any, LambdaContext]:
        connection = self._connection()
        try:
            connection.request("GET", f"/{API_VERSION}/runtime/invocation/next")
            answer = connection.getresponse()
            payload = answer.read()
            if answer.status != 200:
                raise RuntimeError(f"/next answered {answer.status}: {payload[:200]!r}")
            context = LambdaContext(answer.headers)
            trace = answer.headers.get("Lambda-Runtime-Trace-Id")
        finally:
            connection.close()
        if trace:
            os.environ["_X_AMZN_TRACE_ID"] = trace
        else:
            os.environ.pop("_X_AMZN_TRACE_ID", None)
        return json.loads(payload) if payload else {}, context

    def serve_one(self) -> None:
        event, context = self.next()
        base = f"/{API_VERSION}/runtime/invocation/{context.aws_request_id}"
        if is_function_url_event(event):
            self._stream(event, context, f"{base}/response")
            return
        try:
            result = json.dumps(self._handler(event, context)).encode()
        except Exception as error:
            traceback.print_exc()
            self._post(
                f"{base}/error",
                json.dumps(_error_body(error)).encode(),
                {"Lambda-Runtime-Function-Error-Type": f"Function.{type(error).__name__}"},
            )
            return
        self._post(f"{base}/response", result, {"Content-Type": "application/json"})

    def _stream(self, event: Any, context: LambdaContext, path: str) -> None:
        connection = self._connection()
        stream = ResponseStream(connection, path)
        error: BaseException | None = None
        try:
            self._stream_handler(event, context, stream)
        except ClientGone:
            pass  # nobody is reading: nothing to report
        except Exception as raised:
            traceback.print_exc()
            error = raised
        try:
            if not stream.started:  # nothing sent yet: report it as the invocation's error
                base = path.rsplit("/", 1)[0]
                failure = error or RuntimeError("the handler sent no response")
                self._post(
                    f"{base}/error",
                    json.dumps(_error_body(failure)).encode(),
                    {"Lambda-Runtime-Function-Error-Type": _error_type(failure)},
                )
            else:
                stream.finish(error)
        except (ClientGone, OSError):
            pass
        finally:
            connection.close()

    def run(self) -> None:
        while True:
            self.serve_one()
            sys.stdout.flush()
            sys.stderr.flush()


def _load(name: str) -> Callable[..., Any]:
    module, _, function = name.rpartition(".")
    loaded: Callable[..., Any] = getattr(importlib.import_module(module), function)
    return loaded


def init_error(address: str, error: BaseException) -> None:
    connection = http.client.HTTPConnection(address)
    try:
        connection.request(
            "POST",
            f"/{API_VERSION}/runtime/init/error",
            body=json.dumps(_error_body(error)).encode(),
            headers={"Lambda-Runtime-Function-Error-Type": "Runtime.ImportModuleError"},
        )
        connection.getresponse().read()
    finally:
        connection.close()


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] != "--stream":
        print("usage: python3 -m llambda.runtime_loop --stream HANDLER HANDLER", file=sys.stderr)
        return 2
    address = os.environ["AWS_LAMBDA_RUNTIME_API"]
    try:
        stream_handler, handler = _load(argv[1]), _load(argv[2])
    except Exception as error:
        traceback.print_exc()
        init_error(address, error)
        return 1
    RuntimeLoop(address, handler, stream_handler).run()
    return 0


if __name__ == "__main__":
    # Run as the imported module, not as `__main__`: a handler importing `ClientGone`
    # must get the class this loop raises.
    from llambda.runtime_loop import main as _main

    sys.exit(_main(sys.argv[1:]))

"""The OpenAI-compatible door: a Function URL request, answered as OpenAI's API would
(`POST /v1/chat/completions`, streamed or whole; `GET /v1/models`), by the same loaded
engine the WebSocket door's replies use (`llambda.handlers.inference.DEPS`): one model
per instance answers both doors.

Run by the image's runtime loop (`llambda.runtime_loop`), which hands it the event, the
context and a `ResponseStream`. Every refusal is OpenAI's error body with its status; a
client that goes away mid-stream stops the generation before its next token. Nothing is
stored per request (the API is stateless, as OpenAI's is), so a cut stream leaves no
record half-written: the key's rate count and the budgets' reservation are written before
generation, and what the reservation did not use is given back when it ends.

The stage's spending controls hold here as at the WebSocket door: the kill switch refuses a
completion while it is off, and the daily budgets (per key, and the stage's, one counter
for both doors; llambda.budgets) reserve a completion's `max_tokens` before it starts. A
budget with less room left than that cuts the completion at what is left: it ends with
finish_reason "length", as OpenAI's does at `max_tokens`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_lambda_powertools.utilities.data_classes import LambdaFunctionUrlEvent

from llambda import budgets, openai_api
from llambda.api_keys import ApiKey, ApiKeyStore, RateLimited
from llambda.budgets import BudgetExhausted, BudgetStore, Reservation
from llambda.contract import ErrorCode
from llambda.cost_meter import metered
from llambda.engines import ContextLengthExceeded, EngineError, GenerationRequest
from llambda.generation_switch import GenerationSwitch
from llambda.handlers import aws
from llambda.handlers.inference import DEPS
from llambda.observability import logger
from llambda.openai_api import CompletionRequest, OpenAIError
from llambda.openai_settings import OpenAISettings
from llambda.runtime_loop import ClientGone, LambdaContext, ResponseStream

CHAT_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"
STARTED_AT = int(time.time())
# OpenAI's SDKs retry a 429 or 5xx within seconds unless the answer says not to: a spent
# budget or a switched-off stage will not change that soon.
NO_RETRY = {"x-should-retry": "false"}


@dataclass(frozen=True)
class OpenAIDeps:
    settings: OpenAISettings
    keys: ApiKeyStore
    model_id: str
    budgets: BudgetStore
    switch: GenerationSwitch

    @classmethod
    def from_environment(cls) -> OpenAIDeps:
        inference = DEPS.get().settings
        settings = OpenAISettings.from_env()
        dynamodb = aws.dynamodb()
        return cls(
            settings=settings,
            keys=ApiKeyStore(dynamodb, inference.table_name),
            model_id=Path(inference.model_path).stem,
            budgets=BudgetStore(dynamodb, inference.table_name),
            switch=GenerationSwitch(aws.ssm(), settings.generation_parameter),
        )


OPENAI = aws.PerInstance(OpenAIDeps.from_environment)


@metered
def handler(event: dict[str, Any], context: LambdaContext, stream: ResponseStream) -> None:
    request = LambdaFunctionUrlEvent(event)
    logger.append_keys(request_id=context.aws_request_id)
    try:
        answer(request, stream, OPENAI.get())
    except OpenAIError as refused:
        respond_json(stream, refused.status, refused.body(), refused.headers)
    except ClientGone:
        logger.info("openai client went away")
    finally:
        logger.remove_keys(["request_id", "api_key"])


def respond_json(
    stream: ResponseStream, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> None:
    if stream.started:  # after the stream began, OpenAI sends the error as an event
        stream.write(openai_api.sse(body))
        return
    stream.start(status, {"content-type": openai_api.JSON_CONTENT_TYPE, **(headers or {})})
    stream.write(json.dumps(body, ensure_ascii=False).encode())


def answer(request: LambdaFunctionUrlEvent, stream: ResponseStream, deps: OpenAIDeps) -> None:
    method = request.request_context.http.method.upper()
    path = request.raw_path.rstrip("/") or "/"
    if path not in (CHAT_PATH, MODELS_PATH):
        raise openai_api.not_found(path)
    allowed = deps.settings.openai_allowed_origins
    origin = request.headers.get("origin")
    if origin is not None and origin not in allowed:
        raise OpenAIError(
            403, f"Origin {origin} is not allowed to call this API.", code="origin_not_allowed"
        )
    wanted = "GET" if path == MODELS_PATH else "POST"
    if method != wanted:
        raise openai_api.method_not_allowed(method, path)
    key = authenticate(request, deps)
    if path == MODELS_PATH:
        respond_json(stream, 200, openai_api.models(deps.model_id, created=STARTED_AT))
        return
    parsed = openai_api.parse_chat_completion(
        request.decoded_body if request.is_base64_encoded else request.body,
        limits=deps.settings.limits,
        model_id=deps.model_id,
    )
    if not deps.switch.is_on():
        logger.info("refused: generation is off")
        raise generation_off()
    if key is not None:
        try:
            deps.keys.admit(key, deps.settings.openai_requests_per_minute)
        except RateLimited as limited:
            raise openai_api.rate_limited(
                deps.settings.openai_requests_per_minute, limited.retry_after_s
            ) from None
    reservation = reserve_budget(parsed, client_identity(request, key), deps)
    complete(
        within_budget(parsed, reservation),
        stream,
        model_id=deps.model_id,
        settle=functools.partial(deps.budgets.reply_ended, reservation),
    )


def generation_off() -> OpenAIError:
    return OpenAIError(
        503,
        "Completions are turned off on this server for now; try again later.",
        type="server_error",
        code=ErrorCode.GENERATION_OFF,
        headers=NO_RETRY,
    )


def client_identity(request: LambdaFunctionUrlEvent, key: ApiKey | None) -> str:
    """Who a completion's client budget is counted for: its API key, else (a stage that
    requires none) its source IP, as the router counts a client with no token."""
    if key is not None:
        return budgets.identity_of(key.key_hash)
    return budgets.identity_of("ip:" + (request.request_context.http.source_ip or ""))


def reserve_budget(
    request: CompletionRequest, identity: str, deps: OpenAIDeps
) -> Reservation | None:
    """Reserve the completion's `max_tokens` on the daily budgets (there is no
    conversation); None where the stage counts none. A budget used up is a 429."""
    counters = deps.budgets.counters(deps.settings.budgets, identity=identity)
    if not counters:
        return None
    try:
        return deps.budgets.reserve(counters, request.options.max_tokens)
    except BudgetExhausted as exhausted:
        counter = exhausted.counter
        logger.info("refused: budget used up", extra={"scope": counter.scope.value})
        raise OpenAIError(
            429,
            budgets.budget_message(counter.scope, counter.resets_at, refused=True),
            type="insufficient_quota",
            code=ErrorCode.BUDGET_EXHAUSTED,
            headers=NO_RETRY,
        ) from None


def within_budget(request: CompletionRequest, reservation: Reservation | None) -> CompletionRequest:
    """The request with its `max_tokens` cut to what its budgets have room for."""
    if reservation is None or reservation.allowed >= request.options.max_tokens:
        return request
    options = dataclasses.replace(request.options, max_tokens=reservation.allowed)
    return dataclasses.replace(request, options=options)


def authenticate(request: LambdaFunctionUrlEvent, deps: OpenAIDeps) -> ApiKey | None:
    """The caller's key (None where the stage requires none); raise 401 otherwise."""
    header = request.headers.get("authorization") or ""
    scheme, _, token = header.partition(" ")
    presented = token.strip() if scheme.lower() == "bearer" else None
    if not deps.settings.openai_require_key and not presented:
        return None
    key = deps.keys.verify(presented)
    if key is None:
        raise openai_api.invalid_api_key()
    logger.append_keys(api_key=key.key_id)
    return key


class _Reply:
    """One completion, streamed as chunks or kept whole; the stream starts lazily, so an
    error before the first token (a prompt over the context) still gets its status."""

    def __init__(self, request: CompletionRequest, stream: ResponseStream, model_id: str) -> None:
        self.request = request
        self.stream = stream
        self.id = openai_api.completion_id()
        self.created = int(time.time())
        self.model_id = model_id
        self.text: list[str] = []
        self.gone = False

    def _chunk(self, **kwargs: Any) -> bytes:
        return openai_api.sse(
            openai_api.chunk(
                id=self.id,
                created=self.created,
                model=self.model_id,
                include_usage=self.request.include_usage,
                **kwargs,
            )
        )

    def _send(self, data: bytes) -> None:
        if not self.stream.started:
            self.stream.start(
                200, {"content-type": openai_api.SSE_CONTENT_TYPE, "cache-control": "no-cache"}
            )
            self.stream.write(self._chunk(delta={"role": "assistant", "content": ""}))
        self.stream.write(data)

    def on_text(self, text: str) -> None:
        if not self.request.stream:
            self.text.append(text)
            return
        try:
            self._send(self._chunk(delta={"content": text}))
        except ClientGone:
            self.gone = True

    def should_stop(self) -> bool:
        self.gone = self.gone or (self.request.stream and self.stream.started and self.stream.cut())
        return self.gone

    def finish(self, reason: str, prompt_tokens: int, completion_tokens: int) -> None:
        usage = openai_api.usage(prompt_tokens, completion_tokens)
        if not self.request.stream:
            respond_json(
                self.stream,
                200,
                openai_api.completion(
                    id=self.id,
                    created=self.created,
                    model=self.model_id,
                    text="".join(self.text),
                    reason=reason,
                    usage=usage,
                ),
            )
            return
        self._send(self._chunk(reason=reason))
        if self.request.include_usage:
            self._send(self._chunk(usage=usage))
        self.stream.write(openai_api.DONE_EVENT)


def complete(
    request: CompletionRequest,
    stream: ResponseStream,
    *,
    model_id: str,
    engine_source: Callable[[], Any] | None = None,
    settle: Callable[[int], None] | None = None,
) -> None:
    """Generate the answer with the instance's engine and send it in OpenAI's shape.

    `settle(tokens)` is called once, as soon as the generation is over however it ended
    (before the answer's end goes out): with the tokens generated; none where it never
    began; its whole `max_tokens` where it failed while generating (unknown, so counted
    in full: the safe side, as a WebSocket reply does)."""
    spent = 0
    try:
        engine, _ = (engine_source or DEPS.get().engines.load)()
        reply = _Reply(request, stream, model_id)
        generation = GenerationRequest(messages=request.messages, options=request.options)
        spent = request.options.max_tokens
        result = engine.generate(generation, reply.on_text, reply.should_stop)
        spent = result.completion_tokens
    except ContextLengthExceeded as error:
        spent = 0  # refused with the prompt, before a token
        raise openai_api.context_length_exceeded(str(error)) from None
    except EngineError as error:
        logger.warning("openai generation failed", extra={"why": str(error)})
        raise openai_api.server_error(str(error)) from None
    finally:
        if settle is not None:
            settle(spent)
    logger.info(
        "openai completion",
        extra={
            "reason": result.reason,
            "completion_tokens": result.completion_tokens,
            "streamed": request.stream,
            "client_gone": reply.gone,
        },
    )
    if reply.gone:
        return
    reply.finish(result.reason, result.prompt_tokens, result.completion_tokens)

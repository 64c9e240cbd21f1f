"""The OpenAI-compatible door (docs/openai.md): parse and validate a chat-completions
request into the `ChatOptions` the WebSocket door uses, and build OpenAI's response
shapes (completion, stream chunks as server-sent events, model list, errors). Pure
functions, no I/O; field names follow the official `openai` package's types
(`ChatCompletion`, `ChatCompletionChunk`, `CompletionUsage`, `Model`)."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from llambda.contract import DoneReason
from llambda.history import Message
from llambda.protocol import ChatOptions, Limits, ProtocolError, parse_options

# Roles a request may send; `developer` is OpenAI's newer name for `system`.
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
# Passed to the engine (each checked by the WebSocket door's rules).
SAMPLING = ("max_tokens", "temperature", "top_p", "stop", "seed")
# Accepted and ignored: they do not change what the engine generates.
IGNORED = frozenset(
    {"user", "metadata", "store", "service_tier", "parallel_tool_calls", "prompt_cache_key"}
)
# Accepted only at the value that means "off" (what the engine does anyway).
NEUTRAL = {
    "n": (1,),
    "presence_penalty": (0, 0.0),
    "frequency_penalty": (0, 0.0),
    "logprobs": (False,),
    "tool_choice": ("none",),
    "modalities": (["text"],),
}
# Features this engine does not have: refused by name rather than silently dropped.
UNSUPPORTED = frozenset(
    {
        "tools",
        "functions",
        "function_call",
        "logit_bias",
        "top_logprobs",
        "audio",
        "prediction",
        "web_search_options",
        "reasoning_effort",
    }
)
KNOWN = frozenset(
    {"model", "messages", "stream", "stream_options", "max_completion_tokens"}
    | set(SAMPLING)
    | IGNORED
    | set(NEUTRAL)
    | UNSUPPORTED
    | {"response_format"}
)
# The engine's reasons, in OpenAI's words: a client's stop ends a stream the client cut,
# so "stop" is as good as any.
FINISH_REASONS: dict[str, str] = {
    DoneReason.END: "stop",
    DoneReason.STOP: "stop",
    DoneReason.LENGTH: "length",
    DoneReason.STOPPED: "stop",
}
SSE_CONTENT_TYPE = "text/event-stream"
JSON_CONTENT_TYPE = "application/json"
DONE_EVENT = b"data: [DONE]\n\n"
OWNER = "llambda"


class OpenAIError(Exception):
    """A refused request: its HTTP status and OpenAI's error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.message, type=self.type, param=self.param, code=self.code)


def error_body(
    message: str,
    *,
    type: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def invalid_api_key() -> OpenAIError:
    return OpenAIError(
        401,
        "Incorrect API key provided. Send it as `Authorization: Bearer <key>`.",
        code="invalid_api_key",
    )


def rate_limited(per_minute: int, retry_after_s: int) -> OpenAIError:
    return OpenAIError(
        429,
        f"Rate limit reached: this key may make {per_minute} requests per minute. "
        f"Try again in {retry_after_s} s.",
        type="requests",
        code="rate_limit_exceeded",
        headers={"Retry-After": str(retry_after_s)},
    )


def context_length_exceeded(message: str) -> OpenAIError:
    return OpenAIError(400, message, param="messages", code="context_length_exceeded")


def server_error(message: str = "The model failed to answer; try again.") -> OpenAIError:
    return OpenAIError(500, message, type="server_error", code="server_error")


def busy() -> OpenAIError:
    return OpenAIError(
        503,
        "Every instance of the model is answering another request; try again shortly.",
        type="server_error",
        code="engine_overloaded",
        headers={"Retry-After": "1"},
    )


def not_found(path: str) -> OpenAIError:
    return OpenAIError(
        404,
        f"Unknown route {path}; this server has /v1/chat/completions and /v1/models.",
        code="unknown_url",
    )


def method_not_allowed(method: str, path: str) -> OpenAIError:
    return OpenAIError(405, f"{method} is not allowed on {path}.", code="method_not_allowed")


@dataclass(frozen=True)
class CompletionRequest:
    """One validated chat-completions request."""

    model: str
    messages: list[Message]
    options: ChatOptions
    stream: bool = False
    include_usage: bool = False


def parse_chat_completion(
    body: str | bytes | None, *, limits: Limits, model_id: str
) -> CompletionRequest:
    """Validate a request body; raise `OpenAIError` with the status and body to answer."""
    if not body or not body.strip():
        raise OpenAIError(400, "The request has no body; send a JSON object.")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise OpenAIError(
            400, "We could not parse the JSON body of your request: it is not valid JSON."
        ) from None
    if not isinstance(data, dict):
        raise OpenAIError(400, "The request body must be a JSON object.")
    unknown = sorted(str(k) for k in data if k not in KNOWN)
    if unknown:
        raise OpenAIError(
            400,
            f"Unrecognized request argument supplied: {unknown[0]}",
            param=unknown[0],
            code="unknown_parameter",
        )
    _refuse_unsupported(data)
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise OpenAIError(400, "model is required: the id GET /v1/models lists.", param="model")
    if model != model_id:
        raise OpenAIError(
            404,
            f"The model `{model}` does not exist; this server serves `{model_id}`.",
            param="model",
            code="model_not_found",
        )
    stream = data.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise OpenAIError(400, "stream must be true or false.", param="stream")
    include_usage = _stream_options(data.get("stream_options"), stream=stream)
    return CompletionRequest(
        model=model,
        messages=_messages(data.get("messages"), limits),
        options=_sampling(data, limits),
        stream=stream,
        include_usage=include_usage,
    )


def _refuse_unsupported(data: dict[str, Any]) -> None:
    for name in sorted(UNSUPPORTED & data.keys()):
        if data[name] is not None:
            raise _unsupported(name)
    for name, neutral in NEUTRAL.items():
        value = data.get(name)
        if value is not None and value not in neutral:
            raise _unsupported(name, value)
    response_format = data.get("response_format")
    if response_format is not None and response_format != {"type": "text"}:
        raise _unsupported("response_format", response_format)


def _unsupported(name: str, value: object = None) -> OpenAIError:
    what = f"`{name}`" if value is None else f"`{name}` = {json.dumps(value)[:40]}"
    return OpenAIError(
        400,
        f"Unsupported parameter: {what} is not supported by this model.",
        param=name,
        code="unsupported_parameter",
    )


def _stream_options(value: object, *, stream: bool) -> bool:
    if value is None:
        return False
    if not stream:
        raise OpenAIError(
            400,
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
        )
    if not isinstance(value, dict) or not set(value) <= {"include_usage", "include_obfuscation"}:
        raise OpenAIError(
            400, "stream_options must be an object with include_usage.", param="stream_options"
        )
    include = value.get("include_usage", False)
    if not isinstance(include, bool):
        raise OpenAIError(
            400, "stream_options.include_usage must be true or false.", param="stream_options"
        )
    return include


def _messages(value: object, limits: Limits) -> list[Message]:
    if not isinstance(value, list) or not value:
        raise OpenAIError(400, "messages must be a non-empty array of messages.", param="messages")
    messages: list[Message] = []
    for index, message in enumerate(value):
        param = f"messages[{index}]"
        if not isinstance(message, dict):
            raise OpenAIError(400, f"{param} must be an object.", param=param)
        role = message.get("role")
        if role not in ROLES:
            raise OpenAIError(
                400,
                f"{param}.role must be one of {', '.join(ROLES)}; got {json.dumps(role)[:40]}.",
                param=f"{param}.role",
            )
        messages.append({"role": ROLES[role], "content": _content(message.get("content"), param)})
    if messages[-1]["role"] != "user":
        raise OpenAIError(
            400,
            "The last message must be the user's: it is what the model answers.",
            param=f"messages[{len(messages) - 1}].role",
        )
    if not messages[-1]["content"].strip():
        raise OpenAIError(400, "The last message is empty.", param="messages")
    chars = sum(len(m["content"]) for m in messages)
    if chars > limits.max_prompt_chars:
        raise context_length_exceeded(
            f"The messages are {chars} characters; this server takes at most "
            f"{limits.max_prompt_chars}. Shorten them."
        )
    return messages


def _content(value: object, param: str) -> str:
    """A string, or OpenAI's array of text parts (joined); images and audio are refused."""
    if isinstance(value, list):
        texts: list[object] = []
        for part in value:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise OpenAIError(
                    400,
                    f"{param}.content may hold only text parts: this model reads no images "
                    "or audio.",
                    param=f"{param}.content",
                    code="unsupported_value",
                )
            texts.append(part.get("text"))
        strings = [t for t in texts if isinstance(t, str)]
        if len(strings) != len(texts):
            raise OpenAIError(
                400, f"{param}.content has a text part without text.", param=f"{param}.content"
            )
        value = "".join(strings)
    if not isinstance(value, str):
        raise OpenAIError(400, f"{param}.content must be a string.", param=f"{param}.content")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise OpenAIError(
            400, f"{param}.content must be valid Unicode text.", param=f"{param}.content"
        ) from None
    return value


def _sampling(data: dict[str, Any], limits: Limits) -> ChatOptions:
    """max_tokens (or max_completion_tokens), temperature, top_p, stop and seed, each
    checked by the WebSocket door's own rules so the two doors refuse the same values."""
    options: dict[str, Any] = {}
    for name in ("max_completion_tokens", *SAMPLING):
        value = data.get(name)
        if value is None:
            continue
        key = "max_tokens" if name == "max_completion_tokens" else name
        if key == "stop" and isinstance(value, str):
            value = [value]  # OpenAI takes one string or a list
        try:
            parse_options({key: value}, limits)
        except ProtocolError as refused:
            raise OpenAIError(400, refused.message, param=name) from None
        options[key] = value
    return parse_options(options or None, limits)


# Responses ------------------------------------------------------------------------


def completion_id() -> str:
    return "chatcmpl-" + secrets.token_hex(12)


def finish_reason(reason: str) -> str:
    return FINISH_REASONS.get(reason, "stop")


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def completion(
    *,
    id: str,
    created: int,
    model: str,
    text: str,
    reason: str,
    usage: dict[str, int],
) -> dict[str, Any]:
    """A whole answer (`stream: false`): OpenAI's `chat.completion` object."""
    return {
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": finish_reason(reason),
            }
        ],
        "usage": usage,
    }


def chunk(
    *,
    id: str,
    created: int,
    model: str,
    delta: dict[str, Any] | None = None,
    reason: str | None = None,
    usage: dict[str, int] | None = None,
    include_usage: bool = False,
) -> dict[str, Any]:
    """One `chat.completion.chunk`. With `usage` it is the final usage chunk (no choices);
    with `include_usage`, every other chunk carries `usage: null`, as OpenAI's do."""
    message: dict[str, Any] = {
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": []
        if usage is not None
        else [
            {
                "index": 0,
                "delta": delta or {},
                "logprobs": None,
                "finish_reason": None if reason is None else finish_reason(reason),
            }
        ],
    }
    if usage is not None or include_usage:
        message["usage"] = usage
    return message


def sse(message: dict[str, Any]) -> bytes:
    """One server-sent event carrying `message`."""
    return (
        b"data: "
        + json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()
        + (b"\n\n")
    )


def models(model_id: str, *, created: int) -> dict[str, Any]:
    """`GET /v1/models`: the one model this server serves."""
    return {"object": "list", "data": [model(model_id, created=created)]}


def model(model_id: str, *, created: int) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": created, "owned_by": OWNER}

"""The WebSocket protocol (docs/protocol.md): parse and validate client frames, build
server messages. Pure functions: no I/O, no AWS, so every rule is unit tested."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from llambda.contract import Action, DoneReason, ErrorCode, MessageType

ACTIONS = tuple(Action)
# Conversation ids are the server's `secrets.token_urlsafe` output; anything else is
# refused before it reaches the table.
CONVERSATION_ID_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
)
MAX_CONVERSATION_ID_CHARS = 64
OPTION_KEYS = ("max_tokens", "temperature", "top_p", "stop", "seed")
# Both engines take a 32-bit sampling seed.
MAX_SEED = 2**32 - 1
MAX_STOP_CHARS = 64
REASONS = tuple(DoneReason)


class ProtocolError(Exception):
    """A client frame we refuse; `code` and `message` go back to the client as they are."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Limits:
    """The stage's caps on what a client may ask for (built from `RouterSettings`, which
    owns their defaults)."""

    max_prompt_chars: int
    max_tokens_cap: int
    default_max_tokens: int
    max_temperature: float
    max_stop_sequences: int


@dataclass(frozen=True)
class ChatOptions:
    """How to sample a reply: one type from the router (or the OpenAI-compatible door)
    through the dispatch to the engine."""

    max_tokens: int
    temperature: float | None = None  # None: the engine's default
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None  # None: a random seed each reply


@dataclass(frozen=True)
class Chat:
    prompt: str
    options: ChatOptions
    conversation: str | None = None  # None: start a new conversation
    action: str = field(default=Action.CHAT, init=False)


@dataclass(frozen=True)
class Attach:
    conversation: str
    seq: int = -1  # the last delta the client has of the running reply
    action: str = field(default=Action.ATTACH, init=False)


@dataclass(frozen=True)
class FetchHistory:
    conversation: str
    action: str = field(default=Action.HISTORY, init=False)


@dataclass(frozen=True)
class Forget:
    conversation: str
    action: str = field(default=Action.FORGET, init=False)


@dataclass(frozen=True)
class Stop:
    conversation: str
    action: str = field(default=Action.STOP, init=False)


@dataclass(frozen=True)
class Reset:
    conversation: str
    action: str = field(default=Action.RESET, init=False)


@dataclass(frozen=True)
class Ping:
    action: str = field(default=Action.PING, init=False)


ClientMessage = Chat | Attach | FetchHistory | Forget | Stop | Reset | Ping


def parse_client_message(
    body: str | bytes | None, *, limits: Limits, is_base64: bool = False
) -> ClientMessage:
    """Validate one client frame; raise `ProtocolError` with the code the client gets."""
    if is_base64 or isinstance(body, bytes | bytearray):
        raise ProtocolError(
            ErrorCode.BAD_REQUEST, "Binary frames are not supported; send JSON text."
        )
    if body is None or not body.strip():
        raise ProtocolError(ErrorCode.BAD_JSON, "The message is empty; send a JSON object.")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise ProtocolError(ErrorCode.BAD_JSON, "The message is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ProtocolError(ErrorCode.BAD_JSON, "The message must be a JSON object.")
    action = data.get("action")
    if action not in ACTIONS or not isinstance(action, str):
        raise ProtocolError(
            ErrorCode.UNKNOWN_ACTION, f"Unknown action; use one of: {', '.join(ACTIONS)}."
        )
    if action == Action.PING:
        return Ping()
    if action == Action.CHAT:
        conversation = data.get("conversation")
        return Chat(
            prompt=_prompt(data.get("prompt"), limits),
            options=_options(data, limits),
            conversation=None if conversation is None else _conversation(conversation),
        )
    conversation = _conversation(data.get("conversation"))
    if action == Action.ATTACH:
        return Attach(conversation=conversation, seq=_seq(data.get("seq")))
    if action == Action.HISTORY:
        return FetchHistory(conversation=conversation)
    if action == Action.FORGET:
        return Forget(conversation=conversation)
    if action == Action.STOP:
        return Stop(conversation=conversation)
    return Reset(conversation=conversation)


def _conversation(value: object) -> str:
    if value is None:
        raise ProtocolError(
            ErrorCode.BAD_REQUEST, "conversation is required: the id the server issued."
        )
    if (
        not isinstance(value, str)
        or not 1 <= len(value) <= MAX_CONVERSATION_ID_CHARS
        or not CONVERSATION_ID_CHARS.issuperset(value)
    ):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "conversation must be an id the server issued.")
    return value


def _seq(value: object) -> int:
    if value is None:
        return -1
    if not _is_int(value) or value < -1:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "seq must be a whole number of at least -1.")
    return int(value)


def _prompt(value: object, limits: Limits) -> str:
    if value is None:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "A chat needs a prompt.")
    if not isinstance(value, str):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "prompt must be a string.")
    if not value.strip():
        raise ProtocolError(ErrorCode.BAD_REQUEST, "prompt must not be empty.")
    if not _is_text(value):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "prompt must be valid Unicode text.")
    if len(value) > limits.max_prompt_chars:
        raise ProtocolError(
            ErrorCode.TOO_LARGE,
            f"prompt is {len(value)} characters; the limit is {limits.max_prompt_chars}.",
        )
    return value


def _is_text(value: str) -> bool:
    """False for a lone surrogate (JSON's "\\ud800" is valid JSON, not text): refused here
    rather than failing in the engine, where it would count as an engine error."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_options(raw: object, limits: Limits) -> ChatOptions:
    """A chat's `options` object (None: the defaults) under the stage's limits; raises
    `ProtocolError`. The OpenAI-compatible door validates its sampling options here too."""
    return _options({"options": raw}, limits)


def _options(data: dict[str, Any], limits: Limits) -> ChatOptions:
    raw = data.get("options")
    if raw is None:
        return ChatOptions(max_tokens=min(limits.default_max_tokens, limits.max_tokens_cap))
    if not isinstance(raw, dict):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "options must be an object.")
    unknown = sorted(str(k) for k in raw if k not in OPTION_KEYS)
    if unknown:
        raise ProtocolError(
            ErrorCode.BAD_REQUEST,
            f"Unknown option {unknown[0]!r}; allowed: {', '.join(OPTION_KEYS)}.",
        )
    max_tokens = raw.get("max_tokens")
    if max_tokens is None:
        max_tokens = limits.default_max_tokens
    elif not _is_int(max_tokens) or max_tokens < 1:
        raise ProtocolError(
            ErrorCode.BAD_REQUEST, "max_tokens must be a whole number of at least 1."
        )
    temperature = raw.get("temperature")
    if temperature is not None and (
        not _is_number(temperature) or not 0 <= temperature <= limits.max_temperature
    ):
        raise ProtocolError(
            ErrorCode.BAD_REQUEST,
            f"temperature must be a number from 0 to {limits.max_temperature:g}.",
        )
    top_p = raw.get("top_p")
    if top_p is not None and (not _is_number(top_p) or not 0 < top_p <= 1):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "top_p must be a number above 0 and at most 1.")
    seed = raw.get("seed")
    if seed is not None and (not _is_int(seed) or not 0 <= seed <= MAX_SEED):
        raise ProtocolError(
            ErrorCode.BAD_REQUEST, f"seed must be a whole number from 0 to {MAX_SEED}."
        )
    return ChatOptions(
        # Clamped, not refused: asking for more than the cap is not an error.
        max_tokens=min(int(max_tokens), limits.max_tokens_cap),
        temperature=None if temperature is None else float(temperature),
        top_p=None if top_p is None else float(top_p),
        stop=_stop(raw.get("stop"), limits),
        seed=seed,
    )


def _stop(value: object, limits: Limits) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "stop must be a list of strings.")
    if len(value) > limits.max_stop_sequences:
        raise ProtocolError(
            ErrorCode.BAD_REQUEST, f"stop may hold at most {limits.max_stop_sequences} sequences."
        )
    if not all(_is_text(s) for s in value):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "each stop sequence must be valid Unicode text.")
    if any(not 1 <= len(s) <= MAX_STOP_CHARS for s in value):
        raise ProtocolError(
            ErrorCode.BAD_REQUEST, f"each stop sequence must be 1 to {MAX_STOP_CHARS} characters."
        )
    return tuple(value)


def _is_int(value: object) -> TypeGuard[int]:
    # bool is an int in Python; true/false is not a token count.
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# Server messages -------------------------------------------------------------------


def status(state: str) -> dict[str, Any]:
    """`loading` (a cold instance loads the model) or `generating`."""
    return {"type": MessageType.STATUS, "state": state}


def delta(text: str, seq: int) -> dict[str, Any]:
    return {"type": MessageType.DELTA, "text": text, "seq": seq}


def done(
    reason: str,
    *,
    prompt_tokens: int,
    completion_tokens: int,
    init_ms: int,
    ttft_ms: int | None,
    tokens_per_s: float,
) -> dict[str, Any]:
    if reason not in REASONS:
        raise ValueError(f"unknown done reason {reason!r}")
    return {
        "type": MessageType.DONE,
        "reason": reason,
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
        "timing": {"init_ms": init_ms, "ttft_ms": ttft_ms, "tokens_per_s": tokens_per_s},
    }


def error(code: str, message: str) -> dict[str, Any]:
    return {"type": MessageType.ERROR, "code": code, "message": message}


def pong() -> dict[str, Any]:
    return {"type": MessageType.PONG}


def conversation_started(conversation_id: str) -> dict[str, Any]:
    """Tells the client the id of the conversation its `chat` started."""
    return {"type": MessageType.CONVERSATION, "id": conversation_id}


def in_conversation(message: dict[str, Any], conversation_id: str) -> dict[str, Any]:
    """A reply's message, marked with its conversation."""
    return {**message, "conversation": conversation_id}


def attached(
    conversation_id: str,
    turns: list[dict[str, str]],
    *,
    running_prompt: str | None,
    interrupted: bool,
) -> dict[str, Any]:
    """Answers `attach`: the stored turns, the running reply's prompt (or None), and whether
    the last reply was cut because no client came back in time."""
    return {
        "type": MessageType.ATTACHED,
        "conversation": conversation_id,
        "turns": turns,
        "reply": None if running_prompt is None else {"prompt": running_prompt},
        "interrupted": interrupted,
    }


def history(conversation_id: str, turns: list[dict[str, str]]) -> dict[str, Any]:
    return {"type": MessageType.HISTORY, "conversation": conversation_id, "turns": turns}


def forgotten(conversation_id: str) -> dict[str, Any]:
    return {"type": MessageType.FORGOTTEN, "conversation": conversation_id}


def detached(conversation_id: str) -> dict[str, Any]:
    """Another connection attached the conversation: its replies no longer come here."""
    return {"type": MessageType.DETACHED, "conversation": conversation_id}


def reset_done(*, stopped: bool) -> dict[str, Any]:
    """Acknowledges `reset`: the memory is cleared; `stopped` says a running reply was asked
    to end (it still ends with its own `done`, reason `stopped`)."""
    return {"type": MessageType.RESET, "stopped": stopped}


def encode(message: dict[str, Any]) -> bytes:
    """The frame as posted: compact UTF-8 JSON (not ASCII-escaped, so sizes stay small)."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()

"""The contract between llambda's parts: the one owner of every fact two of them share.

The runtime (this package), `infra/`, `offline/`, the terminal client and the page all
read these facts from here: message types and actions, error codes, API Gateway's limits,
the table's key and TTL attribute, metric names and the image's model folder. The page
reads `web_client/contract.js`, which `python -m llambda.contract` writes from this module
(a test fails when the committed file differs).

Standard library only, and nothing of ours: every part may import it, the terminal client
with nothing but `websockets` installed.
"""

from __future__ import annotations

import json
import secrets
import sys
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

# -- API Gateway's WebSocket quotas (its "Quotas for configuring and running a WebSocket
# API" page). A frame is at most 32 KB both ways; a browser sends each message as one
# frame, so 32 KB is the real limit on what a client sends. A larger message must be
# split into frames of 32 KB or less, and this applies to @connections posts too: a
# larger frame closes the connection with 1009. A message is at most 128 KB in all.
MAX_FRAME_BYTES = 32 * 1024
MAX_MESSAGE_BYTES = 128 * 1024
IDLE_TIMEOUT_SECONDS = 10 * 60
MAX_CONNECTION_SECONDS = 2 * 60 * 60
# The close code for a frame or message over the limit (RFC 6455 "message too big").
CLOSE_MESSAGE_TOO_BIG = 1009


class Action(StrEnum):
    """What a client frame asks for (its `action`)."""

    CHAT = "chat"
    ATTACH = "attach"
    HISTORY = "history"
    FORGET = "forget"
    STOP = "stop"
    RESET = "reset"
    PING = "ping"


class MessageType(StrEnum):
    """The `type` of every message the server sends."""

    CONVERSATION = "conversation"
    STATUS = "status"
    DELTA = "delta"
    DONE = "done"
    ERROR = "error"
    ATTACHED = "attached"
    HISTORY = "history"
    FORGOTTEN = "forgotten"
    DETACHED = "detached"
    PONG = "pong"
    RESET = "reset"
    # One piece of a message too large for one frame (see `PART_FIELDS`).
    PART = "part"


class ErrorCode(StrEnum):
    """The `code` of an `error` message (docs/protocol.md says what each means)."""

    BAD_JSON = "bad_json"
    UNKNOWN_ACTION = "unknown_action"
    BAD_REQUEST = "bad_request"
    TOO_LARGE = "too_large"
    # The prompt, with no history at all, does not fit the model's context with room for
    # the reply: the user's input, not the engine, is at fault.
    CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"
    BUSY = "busy"
    RATE_LIMITED = "rate_limited"
    ENGINE_ERROR = "engine_error"
    # picoLLM could not activate its AccessKey (activation limit reached, throttled,
    # refused): an operator's problem that retrying now will not fix.
    ACTIVATION_LIMIT = "activation_limit"
    UNAVAILABLE = "unavailable"
    # The conversation id is unknown, expired or forgotten.
    NOT_FOUND = "not_found"
    # chat/stop/reset for a conversation attached to another connection: attach it first.
    NOT_ATTACHED = "not_attached"
    # A token budget (the conversation's, the client's or the stage's for the day) is used
    # up: the error says which (`scope`) and when it resets (`resets_at`, ISO UTC).
    BUDGET_EXHAUSTED = "budget_exhausted"
    # The reply stopped where a token budget ran out (its text so far is kept).
    BUDGET_CUT_SHORT = "budget_cut_short"
    # An operator turned generation off for the stage (the kill switch).
    GENERATION_OFF = "generation_off"


# Codes that refuse a `chat` before any reply began: a client may give the prompt back.
REFUSED_CHAT_CODES = frozenset(
    {
        ErrorCode.BAD_JSON,
        ErrorCode.UNKNOWN_ACTION,
        ErrorCode.BAD_REQUEST,
        ErrorCode.TOO_LARGE,
        ErrorCode.CONTEXT_LENGTH_EXCEEDED,
        ErrorCode.BUSY,
        ErrorCode.RATE_LIMITED,
        ErrorCode.UNAVAILABLE,
        ErrorCode.NOT_FOUND,
        ErrorCode.NOT_ATTACHED,
        ErrorCode.BUDGET_EXHAUSTED,
        ErrorCode.GENERATION_OFF,
    }
)


class DoneReason(StrEnum):
    """Why a reply ended: the model finished, `max_tokens` was reached, a stop sequence
    matched, or the client asked (stop, reset, forget, or it went away)."""

    END = "end"
    LENGTH = "length"
    STOP = "stop"
    STOPPED = "stopped"


# A `part` message: {"type": "part", "id": …, "index": i, "count": n, "data": …}. The
# `data` of parts 0…n-1 of one `id`, joined in order, is the JSON text of one message.
# Parts of one message are posted in order by one poster; parts of two messages may mix.
# `split_message` makes them, `PartJoiner` (and the page's copy of it) joins them.
PART_FIELDS = ("id", "index", "count", "data")
# What a part's envelope costs beyond its data, with room for ids and counts of any size
# a 128 KB message could need.
_PART_ENVELOPE = len(
    json.dumps(
        {"type": "part", "id": "0" * 16, "index": 99999, "count": 99999, "data": ""},
        separators=(",", ":"),
    )
)

# -- The table (infra/constructs/conversation_table.py declares it).
TABLE_PARTITION_KEY = "pk"
TABLE_TTL_ATTRIBUTE = "expiresAt"

# -- Metrics (CloudWatch, through Powertools' embedded metric format).
METRICS_NAMESPACE = "Llambda"
METRIC_ERRORS = "Errors"
# An `Errors` code no client is sent: a browser page from an origin the stage does not
# allow, refused at `$connect` (the integration-error alarm leaves these out).
ERRORS_CODE_FORBIDDEN_ORIGIN = "forbidden_origin"
METRIC_TIME_TO_FIRST_TOKEN = "TimeToFirstTokenMs"
METRIC_TOKENS_PER_SECOND = "TokensPerSecond"
METRIC_REPLIES = "Replies"
METRIC_COMPLETION_TOKENS = "CompletionTokens"
METRIC_INIT = "InitMs"
METRIC_ENGINE_LOAD = "EngineLoadMs"
METRIC_INVALID_DISPATCHES = "InvalidDispatches"
# Every invocation's cost at list price, and its billed duration (llambda.cost_meter).
METRIC_ESTIMATED_COST = "EstimatedCostUSD"
METRIC_BILLED_GB_SECONDS = "BilledGBSeconds"

# -- The kill switch: the stage's SSM parameter holds one of these (infra creates it "on").
GENERATION_ON = "on"
GENERATION_OFF = "off"

# -- The inference image: where the Dockerfile puts the model file.
IMAGE_MODEL_DIR = "/opt/models"


# -- The stages' defaults: infra/config.py's StageConfig starts from them, and each function's
# settings (llambda/settings.py) fall back to them when the stack gives no variable.


@dataclass(frozen=True)
class StageDefaults:
    engine: Literal["picollm", "llamacpp"] = "picollm"
    model_file: str = "model.pllm"
    max_prompt_chars: int = 8000
    max_tokens_cap: int = 512
    default_max_tokens: int = 256
    max_temperature: float = 2.0
    max_stop_sequences: int = 4
    messages_per_minute: int = 30
    lease_seconds: int = 60
    conversation_ttl_days: int = 7
    history_max_chars: int = 6000
    coalesce_ms: int = 50
    stop_poll_ms: int = 250
    resume_poll_ms: int = 20
    reply_grace_seconds: int = 60
    conversation_token_budget: int = 50_000
    client_tokens_per_day: int = 100_000
    stage_tokens_per_day: int = 1_000_000
    require_token: bool = False
    allowed_origins: tuple[str, ...] = ()
    openai_require_key: bool = True
    openai_allowed_origins: tuple[str, ...] = ()
    openai_requests_per_minute: int = 60


DEFAULTS = StageDefaults()


def encoded_size(text: str) -> int:
    """Bytes `text` takes in a frame (UTF-8)."""
    return len(text.encode("utf-8"))


def split_message(text: str, *, limit: int = MAX_FRAME_BYTES) -> list[str]:
    """`text` (one message's JSON) as frames of at most `limit` bytes: itself when it fits,
    otherwise `part` messages whose data, joined, is `text` again."""
    if encoded_size(text) <= limit:
        return [text]
    budget = limit - _PART_ENVELOPE
    slices: list[str] = []
    start, used = 0, 0
    costs: dict[str, int] = {}  # a message repeats few characters: each measured once
    for index, char in enumerate(text):
        cost = costs.get(char)
        if cost is None:
            # The character's size inside a JSON string: an escape or its UTF-8 bytes.
            cost = costs[char] = encoded_size(json.dumps(char, ensure_ascii=False)) - 2
        if used + cost > budget:
            slices.append(text[start:index])
            start, used = index, 0
        used += cost
    slices.append(text[start:])
    part_id = secrets.token_hex(8)
    return [
        json.dumps(
            {
                "type": MessageType.PART.value,
                "id": part_id,
                "index": index,
                "count": len(slices),
                "data": data,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )
        for index, data in enumerate(slices)
    ]


class PartJoiner:
    """Joins `part` messages back into the messages they carry. A malformed part, or a
    set that never completes, is dropped, never raised: a client must not die of one."""

    # Sets being joined at once; the oldest is dropped past this (a lost connection's
    # half-sent message must not grow the joiner for ever).
    MAX_PENDING = 8

    def __init__(self) -> None:
        self._pending: dict[str, list[str | None]] = {}

    def feed(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """The message `message` completes (a `part`'s whole message, or `message` itself
        when it is no `part`), or None while parts are missing or when it was malformed."""
        if message.get("type") != MessageType.PART:
            return message
        part_id, index, count, data = (message.get(name) for name in PART_FIELDS)
        if not (
            isinstance(part_id, str)
            and isinstance(index, int)
            and isinstance(count, int)
            and isinstance(data, str)
            and 0 <= index < count <= MAX_MESSAGE_BYTES
        ):
            return None
        slots = self._pending.get(part_id)
        if slots is None:
            if len(self._pending) >= self.MAX_PENDING:
                self._pending.pop(next(iter(self._pending)))
            slots = self._pending[part_id] = [None] * count
        if len(slots) != count:
            self._pending.pop(part_id)
            return None
        slots[index] = data
        if any(slot is None for slot in slots):
            return None
        del self._pending[part_id]
        try:
            whole = json.loads("".join(slot for slot in slots if slot is not None))
        except ValueError:
            return None
        if not isinstance(whole, dict) or whole.get("type") == MessageType.PART:
            return None
        return whole


def page_facts() -> dict[str, Any]:
    """What the page needs of the contract, as `web_client/contract.js` exports it."""
    return {
        "MAX_FRAME_BYTES": MAX_FRAME_BYTES,
        "MAX_MESSAGE_BYTES": MAX_MESSAGE_BYTES,
        "IDLE_TIMEOUT_SECONDS": IDLE_TIMEOUT_SECONDS,
        "MAX_CONNECTION_SECONDS": MAX_CONNECTION_SECONDS,
        "CLOSE_MESSAGE_TOO_BIG": CLOSE_MESSAGE_TOO_BIG,
        "ACTIONS": {member.name: member.value for member in Action},
        "MESSAGE_TYPES": {member.name: member.value for member in MessageType},
        "ERROR_CODES": {member.name: member.value for member in ErrorCode},
        "REFUSED_CHAT_CODES": sorted(REFUSED_CHAT_CODES),
        "DONE_REASONS": {member.name: member.value for member in DoneReason},
    }


def page_module() -> str:
    """The text of `web_client/contract.js`: the page's copy, generated, never edited."""
    lines = [
        "// Generated from lambda_image/llambda/contract.py by `make contract`: do not edit.",
        "// The one owner of these facts is that module; a test fails when this file differs.",
        "",
    ]
    for name, value in page_facts().items():
        text = json.dumps(value, indent=2, ensure_ascii=False)
        if isinstance(value, dict | list):
            text = f"Object.freeze({text})"
        lines.append(f"export const {name} = {text};")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    """`python -m llambda.contract [PATH]`: write the page's copy (to stdout without PATH)."""
    text = page_module()
    if len(argv) > 1:
        Path(argv[1]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


# -- The kill switch's parameter: the environment variable that names it, set by infra on
# every function that reads the switch (infra/constructs/spend_controls.py), read by each
# function's settings (llambda/settings.py).
GENERATION_PARAMETER_VARIABLE = "GENERATION_PARAMETER"


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))

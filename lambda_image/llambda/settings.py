"""What each function reads from its environment, one frozen class per function.

The stack sets the variables (`StageConfig.*_environment` in infra/config.py); each field
here names the variable it reads, so a class lists exactly what its function uses (a test
holds every variable the template gives a function against its class). Defaults equal
StageConfig's, so a missing variable behaves like the default stage (a test compares
every default with StageConfig's).
"""

from __future__ import annotations

import dataclasses
import os
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, get_origin, get_type_hints

from llambda.budgets import BudgetLimits
from llambda.contract import DEFAULTS, GENERATION_PARAMETER_VARIABLE, IMAGE_MODEL_DIR
from llambda.protocol import Limits

T = TypeVar("T", bound="FunctionSettings")


def env_field(variable: str, default: Any = None) -> Any:
    """A setting read from `variable`; the name lives here and nowhere else in the runtime."""
    return dataclasses.field(default=default, metadata={"env": variable})


@dataclass(frozen=True, kw_only=True)
class FunctionSettings:
    """Read with `from_env`; the subclass's fields say which variables and their types."""

    @classmethod
    def variables(cls) -> dict[str, str]:
        """field name → the environment variable it is read from."""
        return {f.name: f.metadata["env"] for f in dataclasses.fields(cls)}

    @classmethod
    def from_env(cls: type[T], env: Mapping[str, str] | None = None) -> T:
        env = os.environ if env is None else env
        hints = get_type_hints(cls)
        values = {}
        for name, variable in cls.variables().items():
            raw = env.get(variable)
            kind = hints[name]
            if raw is None or (kind in (int, float) and not raw.strip()):
                continue  # unset: the default
            values[name] = _convert(kind, raw)
        return cls(**values)


def _convert(kind: Any, raw: str) -> Any:
    if get_origin(kind) is types.UnionType:  # `str | None`: empty means unset
        return raw.strip() or None
    if kind is bool:
        return raw.strip().lower() == "true"
    if get_origin(kind) is tuple:  # a comma-separated list
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    return kind(raw)  # str, int, float


@dataclass(frozen=True, kw_only=True)
class TableSettings(FunctionSettings):
    table_name: str = env_field("TABLE_NAME", "")


@dataclass(frozen=True, kw_only=True)
class ConversationSettings(TableSettings):
    conversation_ttl_days: int = env_field("CONVERSATION_TTL_DAYS", DEFAULTS.conversation_ttl_days)

    @property
    def conversation_ttl_seconds(self) -> int:
        """A conversation is kept this long after its last use (its item's TTL)."""
        return self.conversation_ttl_days * 86_400


@dataclass(frozen=True, kw_only=True)
class LimitSettings(FunctionSettings):
    """The caps on what a client may ask for: both doors (the WebSocket's router and the
    OpenAI-compatible endpoint) read the same ones, so they refuse the same requests."""

    max_prompt_chars: int = env_field("MAX_PROMPT_CHARS", DEFAULTS.max_prompt_chars)
    max_tokens_cap: int = env_field("MAX_TOKENS_CAP", DEFAULTS.max_tokens_cap)
    default_max_tokens: int = env_field("DEFAULT_MAX_TOKENS", DEFAULTS.default_max_tokens)
    max_temperature: float = env_field("MAX_TEMPERATURE", DEFAULTS.max_temperature)
    max_stop_sequences: int = env_field("MAX_STOP_SEQUENCES", DEFAULTS.max_stop_sequences)

    @property
    def limits(self) -> Limits:
        return Limits(
            max_prompt_chars=self.max_prompt_chars,
            max_tokens_cap=self.max_tokens_cap,
            default_max_tokens=self.default_max_tokens,
            max_temperature=self.max_temperature,
            max_stop_sequences=self.max_stop_sequences,
        )


@dataclass(frozen=True, kw_only=True)
class SpendSettings(FunctionSettings):
    """The daily token budgets and the kill switch: both doors count the same budgets (a
    stage's daily one is one counter for both) and obey the same switch."""

    # Token budgets (llambda.budgets); 0 is no cap.
    client_tokens_per_day: int = env_field("CLIENT_TOKENS_PER_DAY", DEFAULTS.client_tokens_per_day)
    stage_tokens_per_day: int = env_field("STAGE_TOKENS_PER_DAY", DEFAULTS.stage_tokens_per_day)
    # The SSM parameter of the kill switch (llambda.generation_switch); unset: always on.
    generation_parameter: str | None = env_field(GENERATION_PARAMETER_VARIABLE)

    @property
    def budgets(self) -> BudgetLimits:
        return BudgetLimits(
            client_tokens_per_day=self.client_tokens_per_day,
            stage_tokens_per_day=self.stage_tokens_per_day,
        )


@dataclass(frozen=True, kw_only=True)
class RouterSettings(LimitSettings, SpendSettings, ConversationSettings):
    inference_function: str = env_field("INFERENCE_FUNCTION", "")
    messages_per_minute: int = env_field("MESSAGES_PER_MINUTE", DEFAULTS.messages_per_minute)
    lease_seconds: int = env_field("LEASE_SECONDS", DEFAULTS.lease_seconds)
    allowed_origins: tuple[str, ...] = env_field("ALLOWED_ORIGINS", DEFAULTS.allowed_origins)
    # A conversation's budget: only the WebSocket door has conversations.
    conversation_token_budget: int = env_field(
        "CONVERSATION_TOKEN_BUDGET", DEFAULTS.conversation_token_budget
    )

    @property
    def budgets(self) -> BudgetLimits:
        return dataclasses.replace(
            super().budgets, conversation_tokens=self.conversation_token_budget
        )


@dataclass(frozen=True, kw_only=True)
class InferenceSettings(ConversationSettings):
    engine: str = env_field("ENGINE", DEFAULTS.engine)
    model_path: str = env_field("MODEL_PATH", f"{IMAGE_MODEL_DIR}/{DEFAULTS.model_file}")
    history_max_chars: int = env_field("HISTORY_MAX_CHARS", DEFAULTS.history_max_chars)
    coalesce_ms: int = env_field("COALESCE_MS", DEFAULTS.coalesce_ms)
    stop_poll_ms: int = env_field("STOP_POLL_MS", DEFAULTS.stop_poll_ms)
    resume_poll_ms: int = env_field("RESUME_POLL_MS", DEFAULTS.resume_poll_ms)
    reply_grace_seconds: int = env_field("REPLY_GRACE_SECONDS", DEFAULTS.reply_grace_seconds)
    lease_seconds: int = env_field("LEASE_SECONDS", DEFAULTS.lease_seconds)
    access_key_secret_arn: str | None = env_field("ACCESS_KEY_SECRET_ARN")


@dataclass(frozen=True, kw_only=True)
class DispatchFailureSettings(TableSettings):
    pass


@dataclass(frozen=True, kw_only=True)
class AuthorizerSettings(FunctionSettings):
    token_secret_arn: str | None = env_field("TOKEN_SECRET_ARN")
    require_token: bool = env_field("REQUIRE_TOKEN", DEFAULTS.require_token)

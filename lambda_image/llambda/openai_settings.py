"""What the OpenAI-compatible door reads from the inference function's environment
(`StageConfig.openai_environment` in infra/config.py, and the kill switch's parameter),
besides `InferenceSettings`: the WebSocket door's caps, daily budgets and switch."""

from __future__ import annotations

from dataclasses import dataclass

from llambda.contract import DEFAULTS
from llambda.settings import LimitSettings, SpendSettings, env_field


@dataclass(frozen=True, kw_only=True)
class OpenAISettings(LimitSettings, SpendSettings):
    openai_require_key: bool = env_field("OPENAI_REQUIRE_KEY", DEFAULTS.openai_require_key)
    openai_allowed_origins: tuple[str, ...] = env_field(
        "OPENAI_ALLOWED_ORIGINS", DEFAULTS.openai_allowed_origins
    )
    openai_requests_per_minute: int = env_field(
        "OPENAI_REQUESTS_PER_MINUTE", DEFAULTS.openai_requests_per_minute
    )

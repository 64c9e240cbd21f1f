"""What the OpenAI-compatible door reads from the inference function's environment
(`StageConfig.openai_environment` in infra/config.py), besides `InferenceSettings`."""

from __future__ import annotations

from dataclasses import dataclass

from llambda.protocol import Limits
from llambda.settings import FunctionSettings, env_field


@dataclass(frozen=True, kw_only=True)
class OpenAISettings(FunctionSettings):
    # The WebSocket door's caps, so both doors refuse the same requests.
    max_prompt_chars: int = env_field("MAX_PROMPT_CHARS", 8000)
    max_tokens_cap: int = env_field("MAX_TOKENS_CAP", 512)
    default_max_tokens: int = env_field("DEFAULT_MAX_TOKENS", 256)
    max_temperature: float = env_field("MAX_TEMPERATURE", 2.0)
    max_stop_sequences: int = env_field("MAX_STOP_SEQUENCES", 4)
    openai_require_key: bool = env_field("OPENAI_REQUIRE_KEY", True)
    openai_allowed_origins: tuple[str, ...] = env_field("OPENAI_ALLOWED_ORIGINS", ())
    openai_requests_per_minute: int = env_field("OPENAI_REQUESTS_PER_MINUTE", 60)

    @property
    def limits(self) -> Limits:
        return Limits(
            max_prompt_chars=self.max_prompt_chars,
            max_tokens_cap=self.max_tokens_cap,
            default_max_tokens=self.default_max_tokens,
            max_temperature=self.max_temperature,
            max_stop_sequences=self.max_stop_sequences,
        )

"""The functions' environment (see `StageConfig.*_environment` in infra/config.py) read
into one frozen `Settings`. Defaults equal StageConfig's, so a missing variable behaves
like the default stage (a test keeps the two in step)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from llambda.protocol import Limits


@dataclass(frozen=True)
class Settings:
    stage_name: str = "Dev"
    table_name: str = ""
    # router
    inference_function: str = ""
    max_prompt_chars: int = 8000
    max_tokens_cap: int = 512
    default_max_tokens: int = 256
    max_temperature: float = 2.0
    max_stop_sequences: int = 4
    messages_per_minute: int = 30
    connection_ttl_seconds: int = 2 * 3600 + 600
    allowed_origins: tuple[str, ...] = ()
    # inference
    engine: str = "picollm"
    model_path: str = "/opt/models/model.pllm"
    history_max_chars: int = 6000
    coalesce_ms: int = 50
    stop_poll_ms: int = 250
    lease_seconds: int = 60
    access_key_secret_arn: str | None = None
    # authorizer
    token_secret_arn: str | None = None
    require_token: bool = False

    @property
    def limits(self) -> Limits:
        return Limits(
            max_prompt_chars=self.max_prompt_chars,
            max_tokens_cap=self.max_tokens_cap,
            default_max_tokens=self.default_max_tokens,
            max_temperature=self.max_temperature,
            max_stop_sequences=self.max_stop_sequences,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        d = cls()

        def num(name: str, default: float, kind: type = int) -> float:
            raw = env.get(name, "").strip()
            return kind(raw) if raw else default

        return cls(
            stage_name=env.get("STAGE_NAME", d.stage_name),
            table_name=env.get("TABLE_NAME", d.table_name),
            inference_function=env.get("INFERENCE_FUNCTION", d.inference_function),
            max_prompt_chars=num("MAX_PROMPT_CHARS", d.max_prompt_chars),
            max_tokens_cap=num("MAX_TOKENS_CAP", d.max_tokens_cap),
            default_max_tokens=num("DEFAULT_MAX_TOKENS", d.default_max_tokens),
            max_temperature=num("MAX_TEMPERATURE", d.max_temperature, float),
            max_stop_sequences=num("MAX_STOP_SEQUENCES", d.max_stop_sequences),
            messages_per_minute=num("MESSAGES_PER_MINUTE", d.messages_per_minute),
            connection_ttl_seconds=num("CONNECTION_TTL_SECONDS", d.connection_ttl_seconds),
            allowed_origins=tuple(
                o.strip() for o in env.get("ALLOWED_ORIGINS", "").split(",") if o.strip()
            ),
            engine=env.get("ENGINE", d.engine),
            model_path=env.get("MODEL_PATH", d.model_path),
            history_max_chars=num("HISTORY_MAX_CHARS", d.history_max_chars),
            coalesce_ms=num("COALESCE_MS", d.coalesce_ms),
            stop_poll_ms=num("STOP_POLL_MS", d.stop_poll_ms),
            lease_seconds=num("LEASE_SECONDS", d.lease_seconds),
            access_key_secret_arn=env.get("ACCESS_KEY_SECRET_ARN") or None,
            token_secret_arn=env.get("TOKEN_SECRET_ARN") or None,
            require_token=env.get("REQUIRE_TOKEN", "false").strip().lower() == "true",
        )

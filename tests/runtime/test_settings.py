"""Settings read the exact environment the stack gives each function."""

from __future__ import annotations

import dataclasses

from infra.config import DEV, PROD, StageConfig
from llambda.settings import Settings


def test_defaults_match_the_stage_config_defaults():
    stage = StageConfig(stage_name="Dev")
    settings = Settings()
    for name in (
        "max_prompt_chars",
        "max_tokens_cap",
        "default_max_tokens",
        "max_temperature",
        "max_stop_sequences",
        "messages_per_minute",
        "connection_ttl_seconds",
        "history_max_chars",
        "coalesce_ms",
        "stop_poll_ms",
        "lease_seconds",
        "engine",
        "require_token",
    ):
        assert getattr(settings, name) == getattr(stage, name), name
    assert settings.model_path == stage.model_path


def test_router_environment():
    config = dataclasses.replace(DEV, max_prompt_chars=123, messages_per_minute=7)
    env = config.router_environment(table_name="T", inference_function="fn:live")
    s = Settings.from_env(env)
    assert (s.table_name, s.inference_function) == ("T", "fn:live")
    assert s.limits.max_prompt_chars == 123
    assert s.messages_per_minute == 7
    assert s.allowed_origins == DEV.allowed_origins
    assert (
        Settings.from_env(
            PROD.router_environment(table_name="T", inference_function="f")
        ).allowed_origins
        == ()
    )


def test_inference_environment():
    env = PROD.inference_environment(table_name="T", access_key_secret_arn="arn:secret")
    s = Settings.from_env(env)
    assert s.engine == "picollm"
    assert s.model_path == PROD.model_path
    assert s.access_key_secret_arn == "arn:secret"
    assert (s.coalesce_ms, s.stop_poll_ms, s.lease_seconds) == (50, 250, 60)


def test_authorizer_environment():
    s = Settings.from_env(PROD.authorizer_environment(token_secret_arn="arn:t"))
    assert s.require_token is True and s.token_secret_arn == "arn:t"
    assert (
        Settings.from_env(DEV.authorizer_environment(token_secret_arn="a")).require_token is False
    )

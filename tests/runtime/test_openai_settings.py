"""The OpenAI-compatible door's settings: what the stack gives the inference function for
it is what `OpenAISettings` reads, defaults equal to the stage config's."""

from __future__ import annotations

import dataclasses

from infra.config import DEV, PROD, StageConfig
from llambda.budgets import BudgetLimits
from llambda.contract import GENERATION_PARAMETER_VARIABLE
from llambda.openai_settings import OpenAISettings

# The kill switch's parameter: the stack wires it in from its resource (spend_controls.py).
WIRING = {"generation_parameter"}


def test_every_default_is_the_stage_config_default():
    stage = StageConfig(stage_name="Dev")
    defaults = OpenAISettings()
    for field in dataclasses.fields(OpenAISettings):
        if field.name not in WIRING:
            assert getattr(defaults, field.name) == getattr(stage, field.name), field.name
    assert defaults.generation_parameter is None  # no parameter: always on


def test_the_environment_reads_back_as_the_stage_set_it():
    for config in (DEV, PROD, DEV.with_overrides({"openaiAllowedOrigins": "https://a.example"})):
        environment = config.openai_environment()
        wired = {GENERATION_PARAMETER_VARIABLE}
        assert set(environment) | wired == set(OpenAISettings.variables().values())
        settings = OpenAISettings.from_env(environment)
        assert settings.openai_allowed_origins == config.openai_allowed_origins
        assert settings.openai_require_key is config.openai_require_key
        assert settings.openai_requests_per_minute == config.openai_requests_per_minute
        assert settings.limits.max_prompt_chars == config.max_prompt_chars


def test_the_daily_budgets_are_the_routers_and_no_conversation_budget():
    config = DEV.with_overrides({"clientTokensPerDay": 700, "stageTokensPerDay": 9000})
    settings = OpenAISettings.from_env(config.openai_environment())
    assert settings.budgets == BudgetLimits(client_tokens_per_day=700, stage_tokens_per_day=9000)

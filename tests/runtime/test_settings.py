"""Each function's settings read the environment the stack gives it, with the defaults of
the stage config. (tests/infra/test_function_settings.py holds each function's variables
against its settings class.)"""

from __future__ import annotations

import dataclasses

import pytest

import llambda.settings as settings_module
from infra.config import DEV, PROD, StageConfig
from llambda.contract import DEFAULTS
from llambda.settings import (
    AuthorizerSettings,
    DispatchFailureSettings,
    FunctionSettings,
    InferenceSettings,
    RouterSettings,
)

CLASSES = (RouterSettings, InferenceSettings, DispatchFailureSettings, AuthorizerSettings)
# Wiring the stack fills in from its resources: no stage default to compare.
WIRING = {
    "table_name",
    "inference_function",
    "access_key_secret_arn",
    "token_secret_arn",
    "generation_parameter",
}


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_default_is_the_contracts_as_the_stage_config_has_it(cls: type[FunctionSettings]):
    # One owner, llambda.contract.DEFAULTS: an unset variable behaves like the default stage.
    stage = StageConfig(stage_name="Dev")
    defaults = cls()
    for field in dataclasses.fields(cls):
        if field.name in WIRING or field.name == "model_path":
            continue
        assert getattr(defaults, field.name) == getattr(DEFAULTS, field.name), field.name
        assert getattr(stage, field.name) == getattr(DEFAULTS, field.name), field.name


def test_every_settings_class_is_compared():
    concrete = {
        c
        for c in vars(settings_module).values()
        if isinstance(c, type) and issubclass(c, FunctionSettings) and not c.__subclasses__()
    }
    assert concrete == set(CLASSES)


def test_router_environment():
    config = dataclasses.replace(DEV, max_prompt_chars=123, messages_per_minute=7)
    env = config.router_environment(table_name="T", inference_function="fn:live")
    s = RouterSettings.from_env(env)
    assert (s.table_name, s.inference_function) == ("T", "fn:live")
    assert s.limits.max_prompt_chars == 123
    assert s.messages_per_minute == 7
    assert s.allowed_origins == DEV.allowed_origins
    prod = PROD.router_environment(table_name="T", inference_function="f")
    assert RouterSettings.from_env(prod).allowed_origins == ()


def test_limits_are_the_router_settings():
    s = RouterSettings.from_env(
        dataclasses.replace(DEV, max_tokens_cap=99, max_temperature=1.5).router_environment(
            table_name="T", inference_function="f"
        )
    )
    assert (s.limits.max_tokens_cap, s.limits.max_temperature) == (99, 1.5)
    assert s.limits.default_max_tokens == DEV.default_max_tokens


def test_inference_environment():
    config = dataclasses.replace(PROD, coalesce_ms=20, stop_poll_ms=100, lease_seconds=30)
    env = config.inference_environment(table_name="T", access_key_secret_arn="arn:secret")
    s = InferenceSettings.from_env(env)
    assert s.engine == "picollm"
    assert s.model_path == PROD.model_path
    assert s.access_key_secret_arn == "arn:secret"
    assert (s.coalesce_ms, s.stop_poll_ms, s.lease_seconds) == (20, 100, 30)


def test_authorizer_environment():
    s = AuthorizerSettings.from_env(PROD.authorizer_environment(token_secret_arn="arn:t"))
    assert s.require_token is True and s.token_secret_arn == "arn:t"
    dev = AuthorizerSettings.from_env(DEV.authorizer_environment(token_secret_arn="a"))
    assert dev.require_token is False


def test_unset_and_empty_variables_mean_the_default():
    assert RouterSettings.from_env({}) == RouterSettings()
    empty = RouterSettings.from_env({"MAX_PROMPT_CHARS": " ", "ALLOWED_ORIGINS": ""})
    assert empty.max_prompt_chars == RouterSettings().max_prompt_chars
    assert empty.allowed_origins == ()
    assert InferenceSettings.from_env({"ACCESS_KEY_SECRET_ARN": ""}).access_key_secret_arn is None

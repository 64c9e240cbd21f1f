"""What `-c` does: the pure context → config rules that app.py applies."""

import pytest

from infra.config import DEV, PROD, context_keys
from infra.context import pipeline_settings, stage_configs, stage_overrides


def test_plain_key_applies_to_every_stage():
    configs = stage_configs({"reservedConcurrency": "5"})
    assert configs["Dev"].reserved_concurrency == 5
    assert configs["Prod"].reserved_concurrency == 5


def test_stage_key_applies_to_one_stage_and_wins_over_plain_key():
    configs = stage_configs({"provisionedConcurrency": "1", "Prod.provisionedConcurrency": "2"})
    assert configs["Dev"].provisioned_concurrency == 1
    assert configs["Prod"].provisioned_concurrency == 2


def test_no_context_keeps_the_defaults():
    configs = stage_configs({"@aws-cdk/core:newStyleStackSynthesis": True})
    assert configs == {"Dev": DEV, "Prod": PROD}


def test_other_context_is_not_an_override():
    assert stage_overrides({"pipeline": "1", "cli-telemetry": False}, "Dev") == {}


def test_types_are_converted_from_cli_strings():
    prod = stage_configs({"Prod.requireToken": "false", "Prod.throttleRateLimit": "7.5"})["Prod"]
    assert prod.require_token is False
    assert prod.throttle_rate_limit == 7.5


@pytest.mark.parametrize(
    "context",
    [{"Dev.provisionedConcurency": "1"}, {"Staging.reservedConcurrency": "1"}],
    ids=["misspelt key", "unknown stage"],
)
def test_a_typo_is_an_error_not_a_silent_no_op(context):
    with pytest.raises(ValueError, match="unknown"):
        stage_configs(context)


def test_every_config_field_but_the_stage_name_is_a_context_key():
    keys = context_keys()
    assert "provisionedConcurrency" in keys and "modelFile" in keys
    assert "stageName" not in keys


def test_pipeline_is_off_unless_asked_for():
    assert pipeline_settings({}) is None
    assert pipeline_settings({"pipeline": "false"}) is None


def test_pipeline_needs_its_source():
    with pytest.raises(ValueError, match="connectionArn"):
        pipeline_settings({"pipeline": "1", "repository": "me/llambda"})
    with pytest.raises(ValueError, match="modelSource"):
        pipeline_settings({"pipeline": "1", "connectionArn": "arn:aws:x", "repository": "me/x"})
    settings = pipeline_settings(
        {
            "pipeline": "1",
            "connectionArn": "arn:aws:x",
            "repository": "me/llambda",
            "modelSource": "s3://models/llambda/",
        }
    )
    assert settings is not None
    assert (settings.repository, settings.branch) == ("me/llambda", "main")
    assert settings.model_url("m.pllm") == "s3://models/llambda/m.pllm"

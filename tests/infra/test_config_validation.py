"""Settings that cannot deploy stop the synth, naming the key and the rule (issue 13, #2, #9)."""

import pytest
from aws_cdk.assertions import Template

from infra.config import DEV, PROD, ConfigError, StageConfig
from infra.context import stage_configs
from tests.infra.cdk_helpers import image_function
from tests.infra.conftest import synthesize


@pytest.mark.parametrize(
    ("context", "words"),
    [
        ({"inferenceMemoryMb": "10241"}, "inferenceMemoryMb is 10241; Lambda allows 128 to 10240"),
        ({"Dev.inferenceMemoryMb": "64"}, "Dev: inferenceMemoryMb is 64"),
        ({"routerMemoryMb": "127"}, "routerMemoryMb is 127"),
        ({"inferenceTimeoutSeconds": "901"}, "inferenceTimeoutSeconds is 901; Lambda allows 1"),
        ({"routerTimeoutSeconds": "0"}, "routerTimeoutSeconds is 0"),
        (
            {"Prod.provisionedConcurrency": "11"},
            "Prod: provisionedConcurrency (11) must not exceed reservedConcurrency (10)",
        ),
        ({"reservedConcurrency": "-1"}, "reservedConcurrency is -1; it must be 0 or more"),
        ({"dispatchMaxEventAgeSeconds": "30"}, "dispatchMaxEventAgeSeconds is 30; Lambda"),
        ({"engine": "llamacpp"}, "modelFile 'model.pllm' must be a .gguf file name"),
        ({"modelFile": "x.gguf"}, "modelFile 'x.gguf' must be a .pllm file name"),
        ({"modelFile": "../x.pllm"}, "modelFile '../x.pllm' must be a .pllm file name"),
        ({"engine": "tensorflow"}, "engine must be picollm or llamacpp"),
        ({"reservedConcurrency": "two"}, "reservedConcurrency must be a whole number, not 'two'"),
        ({"requireToken": "yes"}, "requireToken must be true or false"),
        ({"hosting": "off"}, "hosting must be true or false, not 'off'"),
        ({"Prod.hosting": ""}, "hosting must be true or false, not ''"),
        # 4 bytes a character: 4 x (93,377 + 8,000) + 4 KB is 4 bytes over DynamoDB's item.
        (
            {"historyMaxChars": "93377"},
            "historyMaxChars + maxPromptChars is 101377 characters: up to 409604 bytes",
        ),
        ({"conversationTtlDays": "0"}, "conversationTtlDays is 0; it must be 1 or more"),
        ({"replyGraceSeconds": "0"}, "replyGraceSeconds is 0; it must be 1 or more"),
        ({"resumePollMs": "0"}, "resumePollMs is 0; it must be 1 or more"),
    ],
)
def test_a_setting_that_cannot_deploy_names_its_key_and_rule(context, words):
    with pytest.raises(ConfigError) as failed:
        stage_configs(context)
    assert words in str(failed.value)


def test_every_problem_of_a_stage_is_reported_at_once():
    with pytest.raises(ConfigError) as failed:
        stage_configs({"Dev.inferenceMemoryMb": "1", "Dev.routerTimeoutSeconds": "1000"})
    assert "inferenceMemoryMb" in str(failed.value) and "routerTimeoutSeconds" in str(failed.value)


def test_the_bounds_themselves_are_accepted():
    # The largest history that fits beside the largest prompt: 4 x (93,376 + 8,000) + 4 KB
    # is exactly DynamoDB's 409,600 bytes.
    assert stage_configs({"historyMaxChars": "93376"})["Prod"].history_max_chars == 93376
    configs = stage_configs(
        {
            "inferenceMemoryMb": "128",
            "Prod.inferenceMemoryMb": "10240",
            "inferenceTimeoutSeconds": "900",
            "Prod.provisionedConcurrency": "10",
            "dispatchMaxEventAgeSeconds": "21600",
        }
    )
    assert configs["Prod"].provisioned_concurrency == configs["Prod"].reserved_concurrency


def test_no_reservation_allows_provisioned_concurrency():
    prod = stage_configs({"reservedConcurrency": "0", "Prod.provisionedConcurrency": "3"})["Prod"]
    assert (prod.reserved_concurrency, prod.provisioned_concurrency) == (0, 3)


def test_the_shipped_stages_are_valid():
    for config in (DEV, PROD):
        assert StageConfig(**{**config.__dict__}) == config


@pytest.fixture(scope="module")
def unreserved(tmp_path_factory):
    return synthesize(tmp_path_factory.mktemp("unreserved"), reservedConcurrency="0")


@pytest.mark.parametrize("stage_name", ["Dev", "Prod"])
def test_reserved_concurrency_zero_is_no_reservation_not_a_throttle(unreserved, stage_name):
    template = Template.from_stack(unreserved.stages[stage_name].stateless)
    _, function = image_function(template)
    assert "ReservedConcurrentExecutions" not in function["Properties"]
    (alias,) = template.find_resources("AWS::Lambda::Alias").values()
    provisioned = unreserved.stages[stage_name].config.alias_provisioned_concurrency
    config = alias["Properties"].get("ProvisionedConcurrencyConfig") or {}
    assert config.get("ProvisionedConcurrentExecutions") == (provisioned or None)


def test_a_reservation_is_kept_as_set(stateless, stage):
    _, function = image_function(stateless)
    assert function["Properties"]["ReservedConcurrentExecutions"] == (
        stage.config.reserved_concurrency
    )
    assert stage.config.reserved_concurrency > 0

"""Inference (image, alias `live`), router and failure handler: sizes, wiring, least privilege."""

from tests.infra.cdk_helpers import function_by_handler, image_function, policies_of, role_of


def test_inference_image_function_shape(stage, stateless):
    _, function = image_function(stateless)
    props = function["Properties"]
    assert props["MemorySize"] == 10240 == stage.config.inference_memory_mb
    assert props["Architectures"] == ["x86_64"]
    assert props["Timeout"] == 900
    assert props["ReservedConcurrentExecutions"] == stage.config.reserved_concurrency
    assert "Runtime" not in props and "Handler" not in props
    env = props["Environment"]["Variables"]
    assert env["ENGINE"] == stage.config.engine
    assert env["MODEL_PATH"] == stage.config.model_path
    # Only the secret's ARN: the AccessKey itself is never in the template.
    assert "Ref" in env["ACCESS_KEY_SECRET_ARN"]
    assert not any("ACCESS_KEY" in k and k != "ACCESS_KEY_SECRET_ARN" for k in env)


def test_every_function_logs_to_a_group_with_the_stage_retention(stage, stateless):
    groups = stateless.find_resources("AWS::Logs::LogGroup")
    assert groups
    for group in groups.values():
        assert group["Properties"]["RetentionInDays"] == stage.config.log_retention_days
    for logical_id, function in stateless.find_resources("AWS::Lambda::Function").items():
        if logical_id.startswith("Custom"):  # CDK's own deploy-time handlers
            continue
        assert function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"] in groups


def test_alias_live_and_its_provisioned_concurrency(stage, stateless):
    function_id, _ = image_function(stateless)
    stateless.resource_count_is("AWS::Lambda::Alias", 1)
    (alias,) = stateless.find_resources("AWS::Lambda::Alias").values()
    props = alias["Properties"]
    assert props["Name"] == "live"
    assert props["FunctionName"] == {"Ref": function_id}
    assert "Fn::GetAtt" in props["FunctionVersion"]  # a published version, not $LATEST
    # Dev's is scheduled (tests/infra/test_cdk_spend_controls.py): the alias sets none.
    expected = stage.config.alias_provisioned_concurrency
    assert expected == {"Dev": 0, "Prod": 1}[stage.config.stage_name]
    if expected:
        assert props["ProvisionedConcurrencyConfig"] == {
            "ProvisionedConcurrentExecutions": expected
        }
    else:
        assert "ProvisionedConcurrencyConfig" not in props


def test_alias_async_invoke_config(stage, stateless):
    failure_id, _ = function_by_handler(stateless, "llambda.handlers.dispatch_failure.handler")
    (alias_id,) = stateless.find_resources("AWS::Lambda::Alias")
    stateless.has_resource_properties(
        "AWS::Lambda::EventInvokeConfig",
        {
            "MaximumRetryAttempts": 0,
            "MaximumEventAgeInSeconds": stage.config.dispatch_max_event_age_seconds,
            # The alias's name, taken from its ARN: the config applies to `live` only.
            "Qualifier": {"Fn::Select": [7, {"Fn::Split": [":", {"Ref": alias_id}]}]},
            "DestinationConfig": {
                "OnFailure": {"Destination": {"Fn::GetAtt": [failure_id, "Arn"]}}
            },
        },
    )


def test_router_dispatches_to_the_alias_only(stage, stateless):
    (alias_id,) = stateless.find_resources("AWS::Lambda::Alias")
    _, router = function_by_handler(stateless, "llambda.handlers.router.handler")
    props = router["Properties"]
    assert props["Runtime"] == "python3.12"
    assert props["MemorySize"] == stage.config.router_memory_mb
    assert props["Timeout"] == stage.config.router_timeout_seconds
    env = props["Environment"]["Variables"]
    assert env["INFERENCE_FUNCTION"] == {"Ref": alias_id}  # the alias ARN
    assert env["MAX_PROMPT_CHARS"] == str(stage.config.max_prompt_chars)
    invokes = [
        s for s in policies_of(stateless, role_of(router)) if s["Action"] == "lambda:InvokeFunction"
    ]
    assert invokes == [
        {"Action": "lambda:InvokeFunction", "Effect": "Allow", "Resource": {"Ref": alias_id}}
    ]


def test_only_the_router_may_invoke_inference(stateless):
    function_id, _ = image_function(stateless)
    (alias_id,) = stateless.find_resources("AWS::Lambda::Alias")
    # No policy may invoke the bare function (that is $LATEST, without provisioned concurrency).
    for resource in stateless.find_resources("AWS::IAM::Policy").values():
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
            if "lambda:InvokeFunction" in str(statement["Action"]):
                assert function_id not in str(statement["Resource"])
    _, router = function_by_handler(stateless, "llambda.handlers.router.handler")
    holders = [
        r["Properties"]["Roles"]
        for r in stateless.find_resources("AWS::IAM::Policy").values()
        if alias_id in str(r["Properties"]["PolicyDocument"])
    ]
    assert holders == [[{"Ref": role_of(router)}]]


def test_zip_functions_use_the_runtime_package_and_powertools_layer(stateless):
    for handler in (
        "llambda.handlers.router.handler",
        "llambda.handlers.dispatch_failure.handler",
    ):
        _, function = function_by_handler(stateless, handler)
        (layer,) = function["Properties"]["Layers"]
        assert "AWSLambdaPowertoolsPythonV3-python312-x86_64" in str(layer)
        # The stack's partition and region, never a hard-coded `aws`.
        assert layer["Fn::Join"][1][:4] == [
            "arn:",
            {"Ref": "AWS::Partition"},
            ":lambda:",
            {"Ref": "AWS::Region"},
        ]


def test_failure_handler_has_a_dead_letter_queue(stateless):
    (queue_id,) = stateless.find_resources("AWS::SQS::Queue")
    # The failure handler's own queue keeps an event an hour, not Lambda's 6, then moves it
    # to the dead-letter queue.
    handler_id, _ = function_by_handler(stateless, "llambda.handlers.dispatch_failure.handler")
    stateless.has_resource_properties(
        "AWS::Lambda::EventInvokeConfig",
        {
            "FunctionName": {"Ref": handler_id},
            "MaximumRetryAttempts": 2,
            "MaximumEventAgeInSeconds": 3600,
        },
    )
    # A dead letter holds the failed chat, prompt included: 4 days, not SQS's 14.
    stateless.has_resource_properties(
        "AWS::SQS::Queue", {"MessageRetentionPeriod": 4 * 24 * 3600, "SqsManagedSseEnabled": True}
    )
    _, function = function_by_handler(stateless, "llambda.handlers.dispatch_failure.handler")
    assert function["Properties"]["DeadLetterConfig"] == {
        "TargetArn": {"Fn::GetAtt": [queue_id, "Arn"]}
    }


def test_secret_readers(stage, stateless):
    _, inference = image_function(stateless)
    statements = policies_of(stateless, role_of(inference))
    reads = [s for s in statements if "secretsmanager:GetSecretValue" in s["Action"]]
    assert len(reads) == 1 and "Ref" in reads[0]["Resource"]
    secrets = stateless.find_resources("AWS::SecretsManager::Secret")
    for secret in secrets.values():
        assert "SecretString" not in secret["Properties"]  # values never in the template
    assert len(secrets) == (2 if stage.config.require_token else 1)

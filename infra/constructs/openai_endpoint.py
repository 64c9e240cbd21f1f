"""The OpenAI-compatible endpoint: a Lambda Function URL on the inference alias `live`.

The same alias the WebSocket door dispatches to, so the same provisioned instances (one
warm copy of the model) answer both. `RESPONSE_STREAM`: the image's own runtime loop
(lambda_image/llambda/runtime_loop.py) streams the answer as server-sent events.

Auth type NONE, with the API key checked in the function (docs/architecture.md says why):
OpenAI's clients send `Authorization: Bearer <key>`, which AWS_IAM would need to be a
SigV4 signature instead. The function refuses a request without a valid key (a stage may
not turn that off in Prod), counts each key's requests a minute and its tokens a day (the
stage's budgets, in the table it already reads and writes), and obeys the kill switch.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.config import StageConfig
from infra.constructs.inference_function import InferenceFunction
from infra.constructs.spend_controls import GenerationSwitch
from infra.names import OPENAI_URL_OUTPUT

# A browser's preflight may cache the CORS answer this long (the Function URL's maximum
# is 86400 s; an hour keeps a changed origin list from lingering).
CORS_MAX_AGE = cdk.Duration.hours(1)
ALLOWED_HEADERS = ["authorization", "content-type"]


class OpenAIEndpoint(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        inference: InferenceFunction,
        generation: GenerationSwitch,
    ) -> None:
        super().__init__(scope, construct_id)
        for name, value in config.openai_environment().items():
            inference.function.add_environment(name, value)
        # Off refuses this door's completions too (the WebSocket door's replies, which the
        # same function generates, are refused by the router before they are dispatched).
        generation.read_by(inference.function)
        cors = (
            lambda_.FunctionUrlCorsOptions(
                allowed_origins=list(config.openai_allowed_origins),
                allowed_methods=[lambda_.HttpMethod.GET, lambda_.HttpMethod.POST],
                allowed_headers=ALLOWED_HEADERS,
                max_age=CORS_MAX_AGE,
            )
            if config.openai_allowed_origins
            else None
        )
        self.function_url = lambda_.FunctionUrl(
            self,
            "Url",
            function=inference.alias,
            auth_type=lambda_.FunctionUrlAuthType.NONE,
            invoke_mode=lambda_.InvokeMode.RESPONSE_STREAM,
            cors=cors,
        )
        self.url = self.function_url.url
        output = cdk.CfnOutput(
            self,
            "UrlOutput",
            value=self.url,
            description="The OpenAI-compatible endpoint: base_url is this address + v1",
        )
        output.override_logical_id(OPENAI_URL_OUTPUT)

"""The inference function: generate one reply and stream it over @connections.

The engine lives in the instance's dependencies (`DEPS`), reused by warm invocations.
With provisioned concurrency it loads during init (the 10 s init cap does not apply
there); on demand it loads on the first message, after telling the client `status: loading`.

The reply itself is `llambda.reply.Reply`: its stages, the watcher that polls for a stop
or a new attachment (`llambda.reply_watcher`), and the engine's feeding
(`llambda.generation`) each live in their own module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider

from llambda import contract
from llambda.budgets import BudgetStore
from llambda.conversations import ConversationStore
from llambda.cost_meter import metered
from llambda.dispatch import Dispatch, MalformedDispatch
from llambda.engines import Engine, EngineError, load_engine
from llambda.generation import EngineSource
from llambda.handlers import aws
from llambda.instance import IS_PROVISIONED
from llambda.observability import log_safe, logger, metrics
from llambda.reply import Reply, ReplyOutcome
from llambda.sender import StreamSender
from llambda.settings import InferenceSettings


def load_configured_engine(settings: InferenceSettings, secrets: SecretsProvider) -> Engine:
    """The engine the environment names; the AccessKey comes from Secrets Manager."""
    access_key = None
    if settings.engine == "picollm":
        if not settings.access_key_secret_arn:
            raise EngineError("ACCESS_KEY_SECRET_ARN is not set, so picoLLM has no AccessKey.")
        try:
            access_key = aws.read_secret(
                secrets, settings.access_key_secret_arn, json_key="accessKey"
            )
        except Exception as error:
            raise EngineError(
                "The picoLLM AccessKey could not be read from Secrets Manager."
            ) from error
    return load_engine(settings.engine, settings.model_path, access_key)


@dataclass(frozen=True)
class InferenceDeps:
    """What the inference function uses, built once per instance (`DEPS`) or by a test."""

    settings: InferenceSettings
    store: ConversationStore
    engines: EngineSource
    connections: aws.ManagementApis
    budgets: BudgetStore | None = None  # where the reply gives back what it did not use

    @classmethod
    def from_environment(cls) -> InferenceDeps:
        settings = InferenceSettings.from_env()
        secrets = aws.secrets()
        dynamodb = aws.dynamodb()
        return cls(
            settings=settings,
            store=ConversationStore(dynamodb, settings.table_name),
            budgets=BudgetStore(dynamodb, settings.table_name),
            engines=EngineSource(lambda: load_configured_engine(settings, secrets)),
            connections=aws.ManagementApis(),
        )


# Under provisioned concurrency the engine loads during init (logged and counted there), so
# no reply pays for it; on demand the first message loads it.
DEPS = aws.PerInstance(InferenceDeps.from_environment)
if IS_PROVISIONED:
    try:
        DEPS.get().engines.load()
    except Exception:  # retried on the first message, which then reports the error
        logger.exception("engine failed to load during init")


def run_reply(dispatch: Dispatch, deps: InferenceDeps, sender: StreamSender) -> ReplyOutcome:
    """Generate and stream one reply; always closes the sender and releases the lease."""
    reply = Reply(
        dispatch,
        sender,
        store=deps.store,
        budgets=deps.budgets,
        engines=deps.engines,
        settings=deps.settings,
        connections=deps.connections,
    )
    return reply.run()


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
@metered
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        dispatch = Dispatch.from_event(event)
    except MalformedDispatch as malformed:
        logger.error("malformed dispatch event", extra={"why": str(malformed)})
        metrics.add_metric(name=contract.METRIC_INVALID_DISPATCHES, unit="Count", value=1)
        return {"outcome": "invalid"}
    logger.append_keys(
        connection_id=dispatch.connection_id,
        conversation=log_safe(dispatch.conversation_id),
        reply_id=dispatch.reply_id,
        api_request_id=dispatch.request_id,
    )
    deps = DEPS.get()
    sender = StreamSender(
        deps.connections.poster(dispatch.callback_url, dispatch.connection_id),
        conversation_id=dispatch.conversation_id,
        coalesce_ms=deps.settings.coalesce_ms,
    )
    return run_reply(dispatch, deps, sender).to_json()

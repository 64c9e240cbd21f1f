"""The inference function: generate one reply and stream it over @connections.

The engine lives in the instance's dependencies (`DEPS`), reused by warm invocations.
With provisioned concurrency it loads during init (the 10 s init cap does not apply
there); on demand it loads on the first message, after telling the client `status: loading`.

Generation never waits on the network: text goes to the background sender, and a watcher
thread polls the conversation's item while tokens flow: for a stop mark, for a client that
attached from another connection (the reply resumes there), and to renew the lease. A
reply whose client went away goes on for the stage's grace period, waiting for one to
attach (polling faster then), and stops when none does.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from botocore.exceptions import ClientError

from llambda import contract, protocol
from llambda.contract import ErrorCode
from llambda.conversations import Attachment, ConversationStore, ReplyState
from llambda.dispatch import Dispatch, MalformedDispatch
from llambda.engines import (
    ContextLengthExceeded,
    Engine,
    EngineError,
    GenerationRequest,
    load_engine,
)
from llambda.handlers import aws
from llambda.observability import (
    count_error,
    log_safe,
    logger,
    metrics,
    record_engine_load,
    record_reply,
)
from llambda.sender import StreamSender
from llambda.settings import InferenceSettings


class EngineSource:
    """Loads the engine once per instance; later calls reuse it."""

    def __init__(self, loader: Callable[[], Engine]) -> None:
        self._loader = loader
        self._lock = threading.Lock()
        self.engine: Engine | None = None

    def load(self) -> tuple[Engine, int]:
        """The engine and the milliseconds spent loading it now (0 when already loaded)."""
        with self._lock:
            if self.engine is not None:
                return self.engine, 0
            started = time.monotonic()
            self.engine = self._loader()
            init_ms = round((time.monotonic() - started) * 1000)
            record_engine_load(init_ms, initialization=INITIALIZATION_TYPE)
            return self.engine, init_ms


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

    @classmethod
    def from_environment(cls) -> InferenceDeps:
        settings = InferenceSettings.from_env()
        secrets = aws.secrets()
        return cls(
            settings=settings,
            store=ConversationStore(aws.dynamodb(), settings.table_name),
            engines=EngineSource(lambda: load_configured_engine(settings, secrets)),
            connections=aws.ManagementApis(),
        )


# Under provisioned concurrency the engine loads during init (logged and counted there), so
# no reply pays for it; on demand the first message loads it.
INITIALIZATION_TYPE = os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
DEPS = aws.PerInstance(InferenceDeps.from_environment)
if INITIALIZATION_TYPE == "provisioned-concurrency":
    try:
        DEPS.get().engines.load()
    except Exception:  # retried on the first message, which then reports the error
        logger.exception("engine failed to load during init")


# A poll failing with one of these will fail every time (a missing grant, a wrong table):
# the reply ends with an error rather than run on with no way to stop it.
PERMANENT_ERRORS = frozenset(
    {"AccessDeniedException", "ResourceNotFoundException", "UnrecognizedClientException"}
)


def _error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


class ReplyWatcher:
    """Polls the conversation every `poll_s` (every `detached_poll_s` while no client is
    attached) for a stop mark and a new attachment, and renews the lease now and then."""

    def __init__(
        self,
        store: ConversationStore,
        dispatch: Dispatch,
        sender: StreamSender,
        connections: aws.ManagementApis,
        *,
        settings: InferenceSettings,
        on_stop: Callable[[], None],
    ) -> None:
        self._store = store
        self._dispatch = dispatch
        self._sender = sender
        self._connections = connections
        self._poll_s = settings.stop_poll_ms / 1000
        self._detached_poll_s = settings.resume_poll_ms / 1000
        self._grace_s = settings.reply_grace_seconds
        self._lease_seconds = settings.lease_seconds
        self._on_stop = on_stop
        self._finished = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reply-watcher", daemon=True)
        self.attachment = Attachment(dispatch.connection_id, dispatch.attach_count)
        self.stopped = False
        self.gone = False  # the conversation was forgotten
        self.expired = False  # no client attached within the grace
        self.failure: ClientError | None = None  # a poll that can never succeed

    def start(self) -> ReplyWatcher:
        self._thread.start()
        return self

    def finish(self) -> None:
        self._finished.set()
        self._thread.join(10)

    def follow(self, attachment: Attachment | None, *, reset: bool) -> None:
        """Stream to `attachment` if a client attached since the last one seen.

        While a reply runs, it answers the `attach` itself (the router leaves it to the
        reply), so the answer comes before the replayed deltas: one sender, one order.
        """
        if attachment is None or attachment.count == self.attachment.count:
            return
        logger.info("client attached; resuming there", extra={"seen_seq": attachment.seen_seq})
        self.attachment = attachment
        dispatch = self._dispatch
        self._sender.retarget(
            self._connections.poster(dispatch.callback_url, attachment.connection_id),
            seen_seq=attachment.seen_seq,
            greeting=dispatch.attached(reset=reset),
        )

    def _stop(self) -> None:
        self.stopped = True
        self._on_stop()

    def _run(self) -> None:
        renewed = time.monotonic()
        while not self._finished.wait(
            self._detached_poll_s if self._sender.detached else self._poll_s
        ):
            try:
                check = self._store.reply_check(
                    self._dispatch.conversation_id, self._dispatch.reply_id
                )
                self.follow(check.attachment, reset=check.epoch != self._dispatch.epoch)
                if check.state is ReplyState.RUN and (
                    time.monotonic() - renewed >= self._lease_seconds / 3
                ):
                    self._store.renew_lease(
                        self._dispatch.conversation_id,
                        self._dispatch.reply_id,
                        self._lease_seconds,
                    )
                    renewed = time.monotonic()
            except Exception as error:  # a failed poll is tried again, unless it always will
                logger.exception("reply poll failed")
                if isinstance(error, ClientError) and _error_code(error) in PERMANENT_ERRORS:
                    self.failure = error
                    self._stop()
                    return
                continue
            if check.state is not ReplyState.RUN:
                logger.info("reply asked to stop", extra={"state": check.state.value})
                self.gone = check.state is ReplyState.GONE
                self._stop()
                return
            if self._sender.detached and self._sender.detached_seconds() >= self._grace_s:
                logger.info("no client attached within the grace; stopping the reply")
                self.expired = True
                self._stop()
                return


@dataclass(frozen=True)
class ReplyOutcome:
    outcome: str  # "done" | "error" | "gone"
    reason: str | None = None
    completion_tokens: int = 0
    error_code: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "reason": self.reason,
            "completionTokens": self.completion_tokens,
            "errorCode": self.error_code,
        }


def run_reply(dispatch: Dispatch, deps: InferenceDeps, sender: StreamSender) -> ReplyOutcome:
    """Generate and stream one reply; always closes the sender and releases the lease."""
    conversation = dispatch.conversation_id
    store, engines, settings = deps.store, deps.engines, deps.settings
    watcher: ReplyWatcher | None = None
    released = False

    def free_conversation() -> None:
        """Release the lease once, before the final message goes out: a client that sends
        its next chat the moment it sees `done` must not find this reply still holding it."""
        nonlocal released
        if released:
            return
        released = True
        if watcher is not None:
            watcher.finish()
        try:
            store.release_lease(conversation, dispatch.reply_id)
        except Exception:  # the lease lapses by itself
            logger.exception("lease release failed")

    sender.start()
    try:
        engine = engines.engine

        def interrupt_engine() -> None:
            if engine is not None:  # a stop during the load is seen at the first token
                engine.interrupt()

        # Watch from the start: a cold load of a large model can outlast the lease the
        # router took, and a stop may come while it loads.
        watcher = ReplyWatcher(
            store,
            dispatch,
            sender,
            deps.connections,
            settings=settings,
            on_stop=interrupt_engine,
        ).start()
        init_ms = 0
        if engine is None:
            sender.send(protocol.status("loading"))
            engine, init_ms = engines.load()
        sender.send(protocol.status("generating"))
        first_token_at: float | None = None

        def on_text(text: str) -> None:
            nonlocal first_token_at
            if first_token_at is None:
                first_token_at = time.monotonic()
            sender.push(text)

        history = list(dispatch.history)  # as the router's lease-taking write returned it
        turn = {"role": "user", "content": dispatch.prompt}
        options = dispatch.options
        started = time.monotonic()
        result = engine.generate(
            GenerationRequest(
                messages=[*history, turn],
                max_tokens=options.max_tokens,
                temperature=options.temperature,
                top_p=options.top_p,
                stop=options.stop,
            ),
            on_text,
            should_stop=lambda: sender.broken or watcher.stopped,
        )
        elapsed = time.monotonic() - started
        watcher.finish()
        if watcher.failure is not None:
            raise watcher.failure
        if watcher.gone:
            # The conversation was forgotten: nothing to keep and no one to tell.
            logger.info("conversation forgotten mid-reply")
            sender.close()
            return ReplyOutcome("gone", result.reason, result.completion_tokens)
        # Saved and freed in one write, before `done` goes out: a client that sends its
        # next chat the moment it sees `done` finds the conversation free. The write
        # answers where the conversation is attached now, so a client that attached after
        # the last poll still gets the end of the reply.
        finished = store.finish_reply(
            conversation,
            dispatch.reply_id,
            [*history, turn, {"role": "assistant", "content": result.text}],
            epoch=dispatch.epoch,
            max_chars=settings.history_max_chars,
            ttl_seconds=settings.conversation_ttl_seconds,
            interrupted=watcher.expired,
        )
        released = True
        watcher.follow(finished.attachment, reset=not finished.saved)
        if sender.detached:
            logger.info(
                "reply ended with no client attached",
                extra={"tokens": result.completion_tokens, "expired": watcher.expired},
            )
            sender.close()
            outcome = "expired" if watcher.expired else "kept"
            return ReplyOutcome(outcome, result.reason, result.completion_tokens)
        ttft_ms = None if first_token_at is None else round((first_token_at - started) * 1000)
        tokens_per_s = round(result.completion_tokens / elapsed, 1) if elapsed > 0 else 0.0
        sender.close(
            protocol.done(
                "stopped" if watcher.expired else result.reason,
                prompt_tokens=result.prompt_tokens,
                completion_tokens=result.completion_tokens,
                init_ms=init_ms,
                ttft_ms=ttft_ms,
                tokens_per_s=tokens_per_s,
            )
        )
        record_reply(
            init_ms=init_ms,
            ttft_ms=ttft_ms,
            tokens_per_s=tokens_per_s,
            completion_tokens=result.completion_tokens,
        )
        logger.info(
            "reply done",
            extra={"reason": result.reason, "tokens": result.completion_tokens, "ttft_ms": ttft_ms},
        )
        return ReplyOutcome("done", result.reason, result.completion_tokens)
    except ContextLengthExceeded as refused:
        # The user's input, not a failure: counted under its own code, never engine_error.
        logger.info(
            "prompt does not fit the context",
            extra={"prompt_tokens": refused.prompt_tokens, "limit": refused.limit},
        )
        count_error(refused.code)
        free_conversation()
        sender.close(protocol.error(refused.code, str(refused)))
        return ReplyOutcome("error", error_code=refused.code)
    except EngineError as failure:
        logger.exception("engine error")
        # An engine may name a more specific code (picoLLM's activation_limit).
        code = getattr(failure, "code", ErrorCode.ENGINE_ERROR)
        count_error(code)
        free_conversation()
        sender.close(protocol.error(code, str(failure)))
        return ReplyOutcome("error", error_code=code)
    except Exception:
        logger.exception("reply failed")
        count_error(ErrorCode.ENGINE_ERROR)
        free_conversation()
        sender.close(
            protocol.error(ErrorCode.ENGINE_ERROR, "The reply failed unexpectedly; try again.")
        )
        return ReplyOutcome("error", error_code=ErrorCode.ENGINE_ERROR)
    finally:
        if watcher is not None:
            watcher.finish()
        sender.close()
        free_conversation()


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
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

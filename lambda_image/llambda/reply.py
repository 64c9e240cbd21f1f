"""One reply, from the lease the router took to the message that ends it.

A `Reply` goes through named stages: it starts its sender and watcher, loads the engine
on a cold instance (`status: loading`), generates (`status: generating`, deltas), then
saves the turns and frees the conversation in one write and tells the client (`done`).
Whatever happens, it ends by closing the sender and freeing the lease: a failure is one
`error` to the client, never a hung reply or a held conversation.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from llambda import protocol
from llambda.budgets import BudgetStore, cut_short
from llambda.contract import ErrorCode
from llambda.conversations import ConversationStore
from llambda.dispatch import Dispatch
from llambda.engines import ContextLengthExceeded, Engine, EngineError
from llambda.generation import EngineSource, Generated, generate
from llambda.handlers import aws
from llambda.observability import count_error, logger, record_reply
from llambda.reply_watcher import ReplyWatcher
from llambda.sender import StreamSender
from llambda.settings import InferenceSettings


class Stage(Enum):
    STARTING = "starting"  # the sender and the watcher start
    LOADING = "loading"  # a cold instance loads its engine
    GENERATING = "generating"
    SAVING = "saving"  # the turns are kept and the lease freed, in one write
    ENDED = "ended"


@dataclass(frozen=True)
class ReplyOutcome:
    outcome: str  # "done" | "error" | "gone" | "kept" | "expired"
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


class Reply:
    """Generate and stream the reply to `dispatch` through `sender` (`run`, once)."""

    def __init__(
        self,
        dispatch: Dispatch,
        sender: StreamSender,
        *,
        store: ConversationStore,
        budgets: BudgetStore | None = None,
        engines: EngineSource,
        settings: InferenceSettings,
        connections: aws.ManagementApis,
    ) -> None:
        self._dispatch = dispatch
        self._sender = sender
        self._store = store
        self._engines = engines
        self._settings = settings
        self._connections = connections
        self._budgets = budgets
        self._used: int | None = None  # tokens generated, once known
        self.stage = Stage.STARTING
        self._engine: Engine | None = engines.engine
        self._init_ms = 0
        self._watcher: ReplyWatcher | None = None
        self._released = False  # the lease, freed once
        self._settled = False  # the budget's reservation, settled once

    def run(self) -> ReplyOutcome:
        """Always closes the sender and frees the lease."""
        self._sender.start()
        try:
            watcher = self._watch()
            generated = self._generate(self._load(), watcher)
            return self._save_and_tell(generated, watcher)
        except ContextLengthExceeded as refused:
            # The user's input, not a failure: counted under its own code, never engine_error.
            logger.info(
                "prompt does not fit the context",
                extra={"prompt_tokens": refused.prompt_tokens, "limit": refused.limit},
            )
            return self._fail(refused.code, str(refused))
        except EngineError as failure:
            logger.exception("engine error")
            # An engine may name a more specific code (picoLLM's activation_limit).
            return self._fail(failure.code, str(failure))
        except Exception:
            logger.exception("reply failed")
            return self._fail(ErrorCode.ENGINE_ERROR, "The reply failed unexpectedly; try again.")
        finally:
            self._end()

    # The stages, in order -------------------------------------------------------------

    def _watch(self) -> ReplyWatcher:
        # From the start: a cold load of a large model can outlast the lease the router
        # took, and a stop may come while it loads.
        self._watcher = ReplyWatcher(
            self._store,
            self._dispatch,
            self._sender,
            self._connections,
            settings=self._settings,
            on_stop=self._interrupt,
        ).start()
        return self._watcher

    def _interrupt(self) -> None:
        if self._engine is not None:  # a stop during the load is seen at the first token
            self._engine.interrupt()

    def _load(self) -> Engine:
        if self._engine is None:
            self.stage = Stage.LOADING
            self._sender.send(protocol.status("loading"))
            self._engine, self._init_ms = self._engines.load()
        return self._engine

    def _generate(self, engine: Engine, watcher: ReplyWatcher) -> Generated:
        self.stage = Stage.GENERATING
        self._sender.send(protocol.status("generating"))
        generated = generate(
            engine,
            self._dispatch,
            self._sender.push,
            should_stop=lambda: self._sender.broken or watcher.stopped,
        )
        watcher.finish()
        if watcher.failure is not None:
            raise watcher.failure
        return generated

    def _save_and_tell(self, generated: Generated, watcher: ReplyWatcher) -> ReplyOutcome:
        result, dispatch, settings = generated.result, self._dispatch, self._settings
        self._used = result.completion_tokens
        if watcher.gone:
            # The conversation was forgotten: nothing to keep and no one to tell.
            logger.info("conversation forgotten mid-reply")
            self._sender.close()
            return ReplyOutcome("gone", result.reason, result.completion_tokens)
        # Saved and freed in one write, before `done` goes out: a client that sends its
        # next chat the moment it sees `done` finds the conversation free. The write
        # answers where the conversation is attached now, so a client that attached after
        # the last poll still gets the end of the reply.
        self.stage = Stage.SAVING
        finished = self._store.finish_reply(
            dispatch.conversation_id,
            dispatch.reply_id,
            [*dispatch.messages(), {"role": "assistant", "content": result.text}],
            epoch=dispatch.epoch,
            max_chars=settings.history_max_chars,
            ttl_seconds=settings.conversation_ttl_seconds,
            interrupted=watcher.expired,
        )
        self._released = True
        watcher.follow(finished.attachment, reset=not finished.saved)
        # Before the end goes out: a client that chats again the moment it sees it must
        # find the unused tokens given back.
        self._settle()
        if self._sender.detached:
            logger.info(
                "reply ended with no client attached",
                extra={"tokens": result.completion_tokens, "expired": watcher.expired},
            )
            self._sender.close()
            outcome = "expired" if watcher.expired else "kept"
            return ReplyOutcome(outcome, result.reason, result.completion_tokens)
        usage = {"prompt_tokens": result.prompt_tokens, "completion_tokens": self._used}
        self._sender.close(
            cut_short(dispatch.budget, result.reason, usage)
            or protocol.done(
                "stopped" if watcher.expired else result.reason,
                prompt_tokens=result.prompt_tokens,
                completion_tokens=result.completion_tokens,
                init_ms=self._init_ms,
                ttft_ms=generated.ttft_ms,
                tokens_per_s=generated.tokens_per_s,
            )
        )
        record_reply(
            init_ms=self._init_ms,
            ttft_ms=generated.ttft_ms,
            tokens_per_s=generated.tokens_per_s,
            completion_tokens=result.completion_tokens,
        )
        logger.info(
            "reply done",
            extra={
                "reason": result.reason,
                "tokens": result.completion_tokens,
                "ttft_ms": generated.ttft_ms,
            },
        )
        return ReplyOutcome("done", result.reason, result.completion_tokens)

    # Ending, however it went -----------------------------------------------------------

    def _fail(self, code: str, message: str) -> ReplyOutcome:
        count_error(code)
        self._settle()
        self._free()
        self._sender.close(protocol.error(code, message))
        return ReplyOutcome("error", error_code=code)

    def _free(self) -> None:
        """Release the lease once, before the final message goes out: a client that sends
        its next chat the moment it sees the end must not find this reply holding it."""
        if self._released:
            return
        self._released = True
        if self._watcher is not None:
            self._watcher.finish()
        try:
            self._store.release_lease(self._dispatch.conversation_id, self._dispatch.reply_id)
        except Exception:  # the lease lapses by itself
            logger.exception("lease release failed")

    def _settle(self) -> None:
        """Give back what the reply's reservation did not use, once."""
        if self._settled or self._budgets is None:
            return
        self._settled = True
        # Unknown when it failed while generating: counted in full, the safe side.
        allowed = self._dispatch.budget.allowed if self._dispatch.budget else 0
        failed_at = allowed if self.stage is Stage.GENERATING else 0
        used = failed_at if self._used is None else self._used
        self._budgets.reply_ended(self._dispatch.budget, used)

    def _end(self) -> None:
        self._settle()
        self.stage = Stage.ENDED
        if self._watcher is not None:
            self._watcher.finish()
        self._sender.close()
        self._free()

"""The Engine interface every model runtime implements."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from llambda.contract import ErrorCode
from llambda.history import Message, drop_oldest_turns
from llambda.protocol import ChatOptions

# The fewest reply tokens worth generating: a prompt that leaves less of the context is
# refused, not answered with a word or two.
MIN_REPLY_TOKENS = 64


class EngineError(Exception):
    """The model failed to load or to generate; the message is safe to show a client."""

    code: str = ErrorCode.ENGINE_ERROR


class ContextLengthExceeded(EngineError):
    """The new message alone leaves too little of the model's context for a reply: the
    user's input is at fault, not the engine, so it has its own client code."""

    code = ErrorCode.CONTEXT_LENGTH_EXCEEDED

    def __init__(self, prompt_tokens: int, *, limit: int, context_tokens: int) -> None:
        self.prompt_tokens = prompt_tokens
        self.limit = limit
        super().__init__(
            f"The message is {prompt_tokens} tokens; with room for a reply the model takes "
            f"at most {limit} (its context holds {context_tokens}). Shorten the message, "
            "or send it in several parts."
        )


@dataclass(frozen=True)
class GenerationRequest:
    """The conversation so far, ending with the new user message, and how to sample the
    reply (the chat's own options, as the protocol parsed them)."""

    messages: list[Message]
    options: ChatOptions


@dataclass(frozen=True)
class FittedPrompt:
    """What of a request goes to the model: the latest exchanges that fit its context with
    room for the reply, ending with the new message, their tokens, and the reply's budget."""

    messages: list[Message]
    tokens: list[int]
    max_tokens: int


def fit_to_context(
    messages: list[Message],
    *,
    max_tokens: int,
    context_tokens: int,
    tokenize: Callable[[list[Message]], list[int]],
) -> FittedPrompt:
    """Drop the oldest exchanges until the prompt, in the model's own tokens, leaves
    `max_tokens` for the reply. When the new message alone leaves less, the reply gets
    what is left (it ends with reason `length`), unless that is under `MIN_REPLY_TOKENS`
    (or `max_tokens`, if smaller): then `ContextLengthExceeded`."""
    tokenized: dict[int, list[int]] = {}  # by message count: each count is one suffix

    def fits(kept: list[Message]) -> bool:
        tokenized[len(kept)] = tokenize(kept)
        return len(tokenized[len(kept)]) + max_tokens <= context_tokens

    kept = drop_oldest_turns(messages, fits)
    tokens = tokenized[len(kept)] if len(kept) in tokenized else tokenize(kept)
    reply_room = min(MIN_REPLY_TOKENS, max_tokens)
    if len(tokens) + reply_room > context_tokens:
        raise ContextLengthExceeded(
            len(tokens), limit=context_tokens - reply_room, context_tokens=context_tokens
        )
    return FittedPrompt(kept, tokens, min(max_tokens, context_tokens - len(tokens)))


@dataclass(frozen=True)
class GenerationResult:
    reason: str  # "end" | "length" | "stop" | "stopped"
    prompt_tokens: int
    completion_tokens: int
    text: str = ""


class Engine(ABC):
    """One loaded model. `generate` runs on the caller's thread; `interrupt` may be called
    from any other thread and makes a running `generate` return with reason `stopped`."""

    kind: str = ""

    @abstractmethod
    def generate(
        self,
        request: GenerationRequest,
        on_text: Callable[[str], None],
        should_stop: Callable[[], bool],
    ) -> GenerationResult:
        """Generate a reply, calling `on_text` with each new piece of text and checking
        `should_stop` before each token. Raises `EngineError`."""

    @abstractmethod
    def interrupt(self) -> None:
        """Ask the running generation to end at its next token."""


class SerialEngine(Engine):
    """What the real engines share: one generation at a time per loaded model, `interrupt`
    from any thread, and the runtime's own exceptions turned into `EngineError`."""

    def __init__(self) -> None:
        self._interrupted = threading.Event()
        self._lock = threading.Lock()

    def interrupt(self) -> None:
        self._interrupted.set()

    def generate(
        self,
        request: GenerationRequest,
        on_text: Callable[[str], None],
        should_stop: Callable[[], bool],
    ) -> GenerationResult:
        with self._lock:
            self._interrupted.clear()
            try:
                return self._generate(request, on_text, should_stop)
            except EngineError:
                raise
            except Exception as error:
                mapped = self._engine_error(error)
                if mapped is None:
                    raise
                raise mapped from error

    @property
    @abstractmethod
    def context_length(self) -> int:
        """The model's context window in tokens: the prompt and the reply share it."""

    @abstractmethod
    def tokenize_messages(self, messages: list[Message]) -> list[int]:
        """The prompt tokens for `messages`, as the model will be given them."""

    def fit(self, request: GenerationRequest) -> FittedPrompt:
        """The part of `request` that fits the context (see `fit_to_context`)."""
        if not request.messages:
            raise EngineError("Nothing to answer: the conversation is empty.")
        return fit_to_context(
            request.messages,
            max_tokens=request.options.max_tokens,
            context_tokens=self.context_length,
            tokenize=self.tokenize_messages,
        )

    @abstractmethod
    def _generate(
        self,
        request: GenerationRequest,
        on_text: Callable[[str], None],
        should_stop: Callable[[], bool],
    ) -> GenerationResult:
        """`generate` itself, run under the lock with the interrupt flag cleared."""

    @abstractmethod
    def _engine_error(self, error: Exception) -> EngineError | None:
        """The client-safe error for one of the runtime's exceptions, or None to re-raise."""

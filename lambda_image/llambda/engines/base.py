"""The Engine interface every model runtime implements."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

from llambda.history import Message


class EngineError(Exception):
    """The model failed to load or to generate; the message is safe to show a client."""


@dataclass(frozen=True)
class GenerationRequest:
    """The conversation so far, ending with the new user message, and sampling options.

    `temperature`/`top_p` None means the engine's default.
    """

    messages: list[Message]
    max_tokens: int
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = field(default=())


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

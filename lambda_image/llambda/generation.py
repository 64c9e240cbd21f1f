"""Feeding the engine: loading it once per instance, and running one generation for a
dispatched chat with its text streamed on and its timings taken."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from llambda.dispatch import Dispatch
from llambda.engines import Engine, GenerationRequest, GenerationResult
from llambda.instance import INITIALIZATION_TYPE
from llambda.observability import record_engine_load


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


@dataclass(frozen=True)
class Generated:
    """One generation's result and the timings `done` reports."""

    result: GenerationResult
    ttft_ms: int | None  # from the start of generation to the first text; None: no text
    tokens_per_s: float


def generate(
    engine: Engine,
    dispatch: Dispatch,
    on_text: Callable[[str], None],
    *,
    should_stop: Callable[[], bool],
) -> Generated:
    """Answer `dispatch` (its history and prompt, with its options), handing each piece of
    text to `on_text`; raises the engine's `EngineError`."""
    request = GenerationRequest(messages=dispatch.messages(), options=dispatch.options)
    first_text_at: list[float] = []  # set once, from the generating thread

    def stream(text: str) -> None:
        if not first_text_at:
            first_text_at.append(time.monotonic())
        on_text(text)

    started = time.monotonic()
    result = engine.generate(request, stream, should_stop)
    elapsed = time.monotonic() - started
    return Generated(
        result=result,
        ttft_ms=round((first_text_at[0] - started) * 1000) if first_text_at else None,
        tokens_per_s=round(result.completion_tokens / elapsed, 1) if elapsed > 0 else 0.0,
    )
